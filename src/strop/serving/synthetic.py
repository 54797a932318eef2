"""Random LoRA adapters for benchmarks and tests: real PEFT folders whose weights are noise.

PEFT initialises LoRA's B matrices to zero, which would make every adapter identical to the
base model; here B is drawn at random too, so each adapter changes the model's outputs in its
own way, which is what isolation tests and memory benchmarks need.
"""

from __future__ import annotations

from pathlib import Path


def make_random_adapter(base_folder: str | Path, output_dir: str | Path, seed: int,
                        rank: int = 8, scale: float = 0.05, base_model=None,
                        target_modules: str | list[str] = "all-linear") -> Path:
    """Write a LoRA adapter (rank `rank`; all linear layers unless `target_modules` says) and
    the base's tokenizer to `output_dir`, in the layout the training engine writes.
    `base_model` skips reloading the base weights when the caller has them (it is not
    modified)."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from strop.models.adapters import write_adapter_metadata

    base_folder, output_dir = Path(base_folder), Path(output_dir)
    if base_model is None:
        base_model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    else:
        base_model = copy.deepcopy(base_model)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=target_modules,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base_model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    model.peft_config["default"].base_model_name_or_path = str(base_folder)
    model.save_pretrained(output_dir)
    write_adapter_metadata(output_dir, str(base_folder))
    AutoTokenizer.from_pretrained(base_folder).save_pretrained(output_dir)
    return output_dir
