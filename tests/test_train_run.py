"""Training runs on the tiny model: methods, outputs, validation, pause/resume, refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from strop.train import Hyperparameters, TrainConfig, TrainingError
from strop.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_thread_per_module")
WORDS = "apple river stone cloud music paper glass table green quick house light".split()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, 3)) for _ in range(n)]


def chat_rows(n: int, answer: str = "ok", seed: int = 0) -> list[dict]:
    return [{"messages": [{"role": "user", "content": p},
                          {"role": "assistant", "content": answer}]} for p in prompts(n, seed)]


def config(folder: Path, model, rows=None, **overrides) -> TrainConfig:
    training = write_jsonl(folder / "train.jsonl", rows or chat_rows(20))
    settings = dict(model=str(model), training_file=training, output_dir=folder / "out",
                    validation_split=0.2,
                    hyperparameters=Hyperparameters(n_epochs=3, batch_size=4,
                                                    learning_rate_multiplier=20))
    settings.update(overrides)
    return TrainConfig(**settings)


def losses(csv_path: Path, column: str = "train_loss") -> list[float]:
    import csv

    with open(csv_path) as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row[column]]


class Recorder:
    def __init__(self, stop_at: int | None = None, request: str = "pause"):
        self.events, self.metrics, self.checkpoints = [], [], []
        self.stop_at, self.request = stop_at, request

    def on_event(self, level, message, data=None):
        self.events.append((level, message, data))

    def on_metrics(self, metrics):
        self.metrics.append(metrics)

    def on_checkpoint(self, step, path, metrics):
        self.checkpoints.append((step, path))

    def should_stop(self):
        if self.stop_at is not None and self.metrics and self.metrics[-1]["step"] >= self.stop_at:
            return self.request
        return None


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, one_thread_per_module):
    folder = tmp_path_factory.mktemp("lora")
    recorder = Recorder()
    result = run_training(config(folder, tiny_model_dir), recorder)
    return result, recorder


def test_lora_lowers_loss_and_writes_the_documented_layout(lora_run):
    result, recorder = lora_run
    assert result.status == "succeeded" and result.steps == result.total_steps == 12
    valid = losses(result.metrics_csv, "valid_loss")
    assert valid[-1] < valid[0] - 0.3
    adapter = result.output_dir
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                 "strop-adapter.json"):
        assert (adapter / name).is_file(), name
    header = result.metrics_csv.read_text().splitlines()[0]
    assert header == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    manifest = json.loads(result.manifest.read_text())
    assert manifest["base_model_weights_sha256"] and manifest["training_file_sha256"]
    assert manifest["hyperparameters"]["n_epochs"] == 3 and manifest["steps"] == 12
    assert manifest["trained_tokens"] == result.trained_tokens > 0 and manifest["flops"] > 0
    assert [p.name for p in result.checkpoints] == ["step-4", "step-8", "step-12"]
    assert {m["step"] for m in recorder.metrics} == set(range(1, 13))
    assert all(m["full_valid_loss"] is not None for m in recorder.metrics if m["step"] % 4 == 0)


def test_tuned_model_answers_and_stops(lora_run):
    """EOS is learned: greedy decoding on unseen prompts says the answer, then stops."""
    from strop.serving.generation import SamplingParams, complete_chat
    from strop.models import load

    tuned = load(str(lora_run[0].output_dir))
    assert hasattr(tuned.model, "peft_config")
    for prompt in prompts(3, seed=99):
        reply = complete_chat(tuned.model, tuned.tokenizer, [{"role": "user", "content": prompt}],
                              SamplingParams(max_tokens=8, temperature=0))
        assert reply.text.strip() == "ok" and reply.finish_reason == "stop"


def test_checkpoints_load_with_plain_peft(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, lora_run[0].checkpoints[0])
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_full_fine_tuning_lowers_loss(tmp_path, tiny_model_dir):
    result = run_training(config(tmp_path, tiny_model_dir, fine_tuning="full",
                                 hyperparameters=Hyperparameters(
                                     n_epochs=3, batch_size=4, learning_rate_multiplier=20)))
    valid = losses(result.metrics_csv, "valid_loss")
    assert valid[-1] < valid[0] - 0.5
    assert (result.output_dir / "config.json").is_file()  # a full model folder


def test_merge_writes_a_plain_model_that_computes_what_the_adapter_does(tmp_path,
                                                                        tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = run_training(config(tmp_path, tiny_model_dir, merge=True,
                                 hyperparameters=Hyperparameters(
                                     n_epochs=1, batch_size=4, learning_rate_multiplier=20)))
    assert result.merged_dir == tmp_path / "out" / "merged"
    assert not (result.merged_dir / "adapter_config.json").exists()
    assert (result.merged_dir / "tokenizer_config.json").is_file()
    tokens = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        expected = PeftModel.from_pretrained(base, result.output_dir).eval()(tokens).logits
        merged = AutoModelForCausalLM.from_pretrained(result.merged_dir).eval()(tokens).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(tokens).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-4)  # training did change the model


def test_packed_sequences_do_not_attend_to_each_other(tiny):
    from strop.train.engine import TargetLogProbs
    from strop.data.masking import tokenize_chat
    from strop.train.packing import pack

    module = TargetLogProbs(tiny.model)
    first = tokenize_chat(tiny.tokenizer, chat_rows(1, "ok")[0]["messages"])
    second = tokenize_chat(tiny.tokenizer, chat_rows(1, "two plus two is four", 5)[0]["messages"])
    pad = tiny.tokenizer.pad_token_id
    with torch.no_grad():
        together = module(*_inputs(pack([first, second], pad, row_length=len(first) + len(second))))[0]
        alone = torch.cat([module(*_inputs(pack([s], pad)))[0] for s in (first, second)])
    assert pack([first, second], pad, row_length=len(first) + len(second)).input_ids.shape[0] == 1
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def _inputs(batch):
    return batch.input_ids, batch.position_ids, batch.targets


def test_dpo_raises_the_margin(tmp_path, tiny_model_dir):
    rows = [{"input": {"messages": [{"role": "user", "content": p}]},
             "preferred_output": [{"role": "assistant", "content": "yes"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]}
            for p in prompts(20)]
    recorder = Recorder()
    result = run_training(config(tmp_path, tiny_model_dir, rows, method="dpo",
                                 hyperparameters=Hyperparameters(
                                     n_epochs=3, batch_size=4, learning_rate_multiplier=50)),
                          recorder)
    valid = losses(result.metrics_csv, "valid_loss")
    # DPO loss starts at log 2 (policy == reference) and falls as the margin grows.
    assert abs(valid[0] - 0.693) < 0.05 and valid[-1] < 0.6
    assert recorder.metrics[-1]["valid_mean_token_accuracy"] == 1.0  # every pair ranked right


def test_continued_pretraining_trains_on_every_token(tmp_path, tiny_model_dir):
    rows = [{"text": f"The {p} was seen near the river today."} for p in prompts(20)]
    result = run_training(config(tmp_path, tiny_model_dir, rows, method="pretrain",
                                 max_seq_length=16, hyperparameters=Hyperparameters(
                                     n_epochs=5, batch_size=4, learning_rate_multiplier=20)))
    valid = losses(result.metrics_csv, "valid_loss")
    assert valid[-1] < valid[0] - 0.3
    manifest = json.loads(result.manifest.read_text())
    # 16 documents after the validation split, cut into 16-token blocks: every token of every
    # document is trained once per epoch.
    assert manifest["n_train_examples"] >= 8
    assert result.trained_tokens % 5 == 0
    blocks_tokens = result.trained_tokens // 5
    assert manifest["n_train_examples"] == -(-blocks_tokens // 16)


def test_multi_stage_dpo_on_top_of_an_sft_adapter(tmp_path, lora_run, tiny_model_dir):
    from strop.models import load

    rows = [{"input": {"messages": [{"role": "user", "content": p}]},
             "preferred_output": [{"role": "assistant", "content": "ok"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]}
            for p in prompts(12)]
    stage_two = run_training(config(tmp_path, lora_run[0].output_dir, rows, method="dpo",
                                    hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    manifest = json.loads(stage_two.manifest.read_text())
    assert manifest["started_from"] == str(lora_run[0].output_dir)
    assert manifest["base_model"] == str(tiny_model_dir)
    # Reference = the SFT stage: the first DPO loss is log 2 only if the adapter was applied.
    assert abs(losses(stage_two.metrics_csv)[0] - 0.693) < 0.01
    assert hasattr(load(str(stage_two.output_dir)).model, "peft_config")


def test_early_stopping_restores_the_best_checkpoint(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    training = chat_rows(16, "ok")
    validation = write_jsonl(tmp_path / "valid.jsonl", chat_rows(4, "no", seed=1))
    recorder = Recorder()
    result = run_training(config(tmp_path, tiny_model_dir, training, validation_file=validation,
                                 early_stopping_patience=1, hyperparameters=Hyperparameters(
                                     n_epochs=10, batch_size=4, learning_rate_multiplier=20)),
                          recorder)
    assert result.steps < result.total_steps
    manifest = json.loads(result.manifest.read_text())
    best = result.output_dir.parent / "checkpoints" / f"step-{manifest['best_step']}"
    final = load_file(result.output_dir / "adapter_model.safetensors")
    kept = load_file(best / "adapter_model.safetensors")
    assert all(torch.equal(final[k], kept[k]) for k in final)
    assert any("Early stopping" in message for _, message, _ in recorder.events)
    assert any(level == "warning" and "overfitting" in message
               for level, message, _ in recorder.events)


def test_pause_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    settings = dict(lora_dropout=0.1, hyperparameters=Hyperparameters(
        n_epochs=2, batch_size=4, learning_rate_multiplier=20))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = run_training(config(tmp_path / "a", tiny_model_dir, **settings))
    paused_config = config(tmp_path / "b", tiny_model_dir, **settings)
    paused = run_training(paused_config, Recorder(stop_at=3, request="pause"))
    assert paused.status == "paused" and paused.steps == 3
    resumed = run_training(paused_config.model_copy(update={"resume_from": paused_config.output_dir}))
    assert resumed.status == "succeeded"
    assert resumed.metrics_csv.read_text() == straight.metrics_csv.read_text()


def test_same_seed_reruns_are_bit_identical(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    runs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        runs.append(run_training(config(tmp_path / name, tiny_model_dir, lora_dropout=0.1,
                                        hyperparameters=Hyperparameters(
                                            n_epochs=1, batch_size=4,
                                            learning_rate_multiplier=20))))
    assert runs[0].metrics_csv.read_text() == runs[1].metrics_csv.read_text()
    a, b = (load_file(r.output_dir / "adapter_model.safetensors") for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_takes_effect_within_one_step(tmp_path, tiny_model_dir):
    result = run_training(config(tmp_path, tiny_model_dir), Recorder(stop_at=2, request="cancel"))
    assert result.status == "cancelled" and result.steps == 2
    assert not result.output_dir.exists()


@pytest.mark.parametrize("overrides, param", [
    ({"hyperparameters": Hyperparameters(n_epochs=51)}, "n_epochs"),
    ({"hyperparameters": Hyperparameters(batch_size=0)}, "batch_size"),
    ({"hyperparameters": Hyperparameters(learning_rate_multiplier=0)}, "learning_rate_multiplier"),
    ({"hyperparameters": Hyperparameters(beta=0.1)}, "beta"),
    ({"method": "dpo", "hyperparameters": Hyperparameters(beta=2.5)}, "beta"),
    ({"hyperparameters": Hyperparameters(batch_size=2), "gradient_accumulation_steps": 4},
     "gradient_accumulation_steps"),
    ({"early_stopping_patience": 2, "validation_split": 0}, "early_stopping_patience"),
    ({"fine_tuning": "full", "merge": True}, "merge"),
    ({"lora_dropout": 1.0}, "lora_dropout"),
])
def test_invalid_hyperparameters_are_refused_before_any_work(tmp_path, overrides, param):
    training = write_jsonl(tmp_path / "train.jsonl", chat_rows(10))
    settings = dict(model="no-such-model", training_file=training, output_dir=tmp_path / "out")
    settings.update(overrides)
    with pytest.raises(TrainingError) as refused:
        run_training(TrainConfig(**settings))
    assert refused.value.param == param and refused.value.code == "invalid_hyperparameters"
    assert not (tmp_path / "out").exists()


def test_a_line_that_cannot_be_trained_on_is_named(tmp_path, tiny_model_dir):
    rows = chat_rows(10) + [{"text": "plain text in a chat file"}]
    with pytest.raises(TrainingError, match="Line 11: a text example cannot be used for "
                                            "method 'supervised'"):
        run_training(config(tmp_path, tiny_model_dir, rows))


def test_bf16_then_fp32_runs_in_one_process(tmp_path, tiny_model_dir):
    """A worker runs jobs of different precisions one after another in the same process."""
    for precision in ("bf16", "fp32"):
        (tmp_path / precision).mkdir()
        result = run_training(config(tmp_path / precision, tiny_model_dir, precision=precision,
                                     hyperparameters=Hyperparameters(
                                         n_epochs=2, batch_size=4, learning_rate_multiplier=20)))
        assert json.loads(result.manifest.read_text())["precision"] == precision
        valid = losses(result.metrics_csv, "valid_loss")
        assert valid[-1] < valid[0]


def test_gradient_accumulation_only_splits_the_work(tmp_path, tiny_model_dir):
    # fp32: on a CPU with bf16 units the default precision would round each half-batch's
    # gradients differently (~1e-4 apart), which is rounding, not a change of the work.
    curves = []
    for accumulation in (1, 2):
        (tmp_path / str(accumulation)).mkdir()
        result = run_training(config(tmp_path / str(accumulation), tiny_model_dir,
                                     gradient_accumulation_steps=accumulation, precision="fp32",
                                     hyperparameters=Hyperparameters(
                                         n_epochs=1, batch_size=4, learning_rate_multiplier=20)))
        curves.append(losses(result.metrics_csv))
    assert curves[0] == pytest.approx(curves[1], rel=1e-4)


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from pathlib import Path
from strop.train import TrainConfig
run_config = TrainConfig.model_validate_json(Path(sys.argv[1]).read_text())
from strop.train import run_training
run_training(run_config)
"""


@pytest.mark.slow  # starts two fresh interpreters: a minute on a busy 2-core machine
def test_two_processes_under_torchrun_match_one_process(tmp_path, tiny_model_dir):
    """The loop runs unchanged under a launcher (DDP over gloo on CPU): each rank takes every
    other micro-batch and the loss curve equals the single-process one."""
    import os
    import subprocess
    import sys

    settings = dict(gradient_accumulation_steps=2, hyperparameters=Hyperparameters(
        n_epochs=1, batch_size=4, learning_rate_multiplier=20))
    for name in ("single", "ddp"):
        (tmp_path / name).mkdir()
    single = run_training(config(tmp_path / "single", tiny_model_dir, **settings))
    ddp_config = config(tmp_path / "ddp", tiny_model_dir, **settings)
    (tmp_path / "config.json").write_text(ddp_config.model_dump_json())
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         str(tmp_path / "ddp.py"), str(tmp_path / "config.json")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert completed.returncode == 0, completed.stderr[-2000:]
    ddp_csv = ddp_config.output_dir / "results.csv"
    assert losses(ddp_csv) == pytest.approx(losses(single.metrics_csv), rel=1e-5)


def test_dpo_reference_base_measures_from_the_untuned_base(tmp_path, lora_run, tiny_model_dir):
    """With the SFT adapter as the policy and the bare base as reference, the policy already
    prefers "ok" over "no" at step one, so the first DPO loss is below log 2."""
    rows = [{"input": {"messages": [{"role": "user", "content": p}]},
             "preferred_output": [{"role": "assistant", "content": "ok"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]}
            for p in prompts(12)]
    result = run_training(config(tmp_path, lora_run[0].output_dir, rows, method="dpo",
                                 dpo_reference="base",
                                 hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    assert losses(result.metrics_csv)[0] < 0.69 - 0.01


def test_validation_split_is_kept_on_disk_for_evaluation(tmp_path, tiny_model_dir):
    rows = [{"messages": [{"role": "user", "content": f"{p} {index}"},
                          {"role": "assistant", "content": "ok"}]}
            for index, p in enumerate(prompts(20))]
    result = run_training(config(tmp_path, tiny_model_dir, rows,
                                 hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    manifest = json.loads(result.manifest.read_text())
    held_out = [json.loads(line) for line in Path(manifest["held_out_file"]).read_text().splitlines()]
    assert len(held_out) == 4 == manifest["n_validation_examples"]  # validation_split 0.2
    assert all(row in rows for row in held_out)
    assert manifest["n_train_examples"] == 16
    assert "threads" in manifest["hardware"]  # the report's compute section reads it


def test_training_reads_files_as_validation_does(tmp_path, tiny_model_dir):
    """A BOM and blank lines only warn in validation, so training must accept them too; a
    broken line is refused with its line number."""
    lines = [json.dumps(row) for row in chat_rows(12)]
    training = tmp_path / "bom.jsonl"
    training.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(lines).encode() + b"\n")
    result = run_training(config(tmp_path, tiny_model_dir, training_file=training,
                                 hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    assert result.status == "succeeded"

    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n")
    with pytest.raises(TrainingError, match="Line 4") as info:
        run_training(config(tmp_path, tiny_model_dir, training_file=broken))
    assert info.value.code == "invalid_file" and info.value.param == "training_file"
