"""The compute of one training step: log-probabilities of target tokens, and nothing else.

The language-model head is the single largest matrix of a small model (vocabulary x hidden),
and most tokens of a chat (system prompt, user turns, padding) carry no loss. So the decoder
runs on the packed rows, and the head runs only on the hidden states of positions that have a
target. Supervised loss, DPO and validation all read from the same per-token log-probabilities.

`TargetLogProbs` is an `nn.Module` so that accelerate can wrap it (DDP/FSDP) and gradients
flow through the wrapper's forward as those wrappers require.
"""

from __future__ import annotations

import torch
from torch import nn

from strop.train.packing import IGNORE, PackedBatch


def causal_lm(model):
    """The transformers *ForCausalLM under a PEFT wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class TargetLogProbs(nn.Module):
    """`precision="bf16"` runs the forward under bf16 autocast (weights stay float32). The
    autocast is ours rather than accelerate's mixed_precision because that one is fixed once
    per process, and a worker runs many jobs with different settings in one process."""

    def __init__(self, model, precision: str = "fp32"):
        super().__init__()
        self.model = model
        self.bf16 = precision == "bf16"

    def forward(self, input_ids, position_ids, targets):
        lm = causal_lm(self.model)
        decoder = getattr(lm, lm.base_model_prefix)
        selected = targets != IGNORE
        with torch.autocast(input_ids.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            hidden = decoder(input_ids=input_ids, position_ids=position_ids,
                             use_cache=False).last_hidden_state
            logits = lm.get_output_embeddings()(hidden[selected])
        logits = logits.float()
        wanted = targets[selected]
        log_probs = -nn.functional.cross_entropy(logits, wanted, reduction="none")
        correct = logits.argmax(dim=-1) == wanted
        return log_probs, correct


def batch_log_probs(module, batch: PackedBatch):
    """Per target token: log-probability, whether argmax was right, and its sequence index."""
    log_probs, correct = module(batch.input_ids, batch.position_ids, batch.targets)
    owners = batch.sequence_index[batch.targets != IGNORE]
    return log_probs, correct, owners


def sequence_sums(values, owners, n_sequences: int):
    out = torch.zeros(n_sequences, dtype=values.dtype, device=values.device)
    return out.index_add(0, owners, values)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Sigmoid DPO (Rafailov et al. 2023) on summed sequence log-probabilities."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -nn.functional.logsigmoid(margin), margin


def cpu_has_fast_bf16() -> bool:
    """bf16 only pays on CPUs with native bf16 matmul (AVX-512 BF16 or AMX); elsewhere
    oneDNN emulates it and it is many times slower than float32."""
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(requested: str) -> str:
    """"bf16" or "fp32" for this machine: "auto" picks bf16 where the hardware computes it
    natively (CUDA with bf16 support, or a CPU with AVX-512 BF16/AMX), else fp32."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"
