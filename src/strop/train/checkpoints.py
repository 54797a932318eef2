"""Checkpoints: what an epoch end or a pause saves, and what a resumed run reads back.

A checkpoint folder (output_dir/checkpoints/step-N/) is an inference folder like the final
adapter, plus STATE_FILE: the run's `Progress`, the optimizer, scheduler and random states, and
a fingerprint of what must match for a resumed run to be the same run. Resuming restores all of
it, so a paused and resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from strop.train.config import TrainConfig, TrainingError
from strop.train.outputs import STATE_FILE, sha256_file


@dataclass
class Progress:
    """Everything that must survive a pause for the resumed run to continue identically."""

    step: int = 0
    trained_tokens: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)
    best_loss: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    epoch_loss_sum: float = 0.0
    epoch_steps: int = 0
    previous_epoch: dict | None = None  # mean train loss and full valid loss of the last epoch
    checkpoints: list = field(default_factory=list)


def fingerprint(config: TrainConfig, plan) -> dict:
    """What must match for a resumed run to be the same run."""
    return {"method": config.method, "model": config.model, "seed": config.seed,
            "fine_tuning": config.fine_tuning,
            "training_file": sha256_file(config.training_file),
            "validation_file": sha256_file(config.validation_file)
            if config.validation_file else None,
            "plan": {k: v for k, v in plan.as_dict().items() if k != "auto"}}


def save_state(folder: Path, progress: Progress, optimizer, scheduler, run_fingerprint: dict,
               reason: str) -> None:
    """The training state beside a checkpoint's weights (`reason`: "epoch" or "pause")."""
    torch.save({"progress": progress.__dict__, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                "python_rng": random.getstate(), "fingerprint": run_fingerprint,
                "reason": reason}, folder / STATE_FILE)


def rotate(progress: Progress, keep: int) -> None:
    """Keep the newest `keep` checkpoints, and always the best one (early stopping needs it)."""
    best = f"step-{progress.best_step}" if progress.best_step is not None else None
    candidates = [c for c in progress.checkpoints if Path(c).name != best]
    while len(candidates) > keep:
        oldest = candidates.pop(0)
        shutil.rmtree(oldest, ignore_errors=True)
        progress.checkpoints.remove(oldest)


def load_weights(model, folder: Path) -> None:
    from safetensors.torch import load_file

    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        state = load_file(folder / "adapter_model.safetensors")
        set_peft_model_state_dict(model, state)
    else:
        state = {}
        for path in sorted(folder.glob("*.safetensors")):
            state.update(load_file(path))
        model.load_state_dict(state, strict=False)


def restore_best(progress: Progress, model, callback) -> None:
    folder = Path(progress.checkpoints[0]).parent / f"step-{progress.best_step}"
    if progress.best_step == progress.step or not folder.exists():
        return
    load_weights(model, folder)
    callback.on_event("info", f"Restored the best checkpoint (step {progress.best_step})")


def _checkpoint_to_resume(path: Path) -> Path:
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    folders = sorted((path / "checkpoints").glob("step-*"),
                     key=lambda p: int(p.name.split("-")[1]))
    folders = [f for f in folders if (f / STATE_FILE).is_file()]
    if not folders:
        raise TrainingError(f"{path} holds no checkpoint to resume from", "invalid_checkpoint",
                            "resume_from")
    return folders[-1]


def resume(config: TrainConfig, model, optimizer, scheduler, plan, callback) -> Progress:
    """Restore `model`, optimizer, scheduler and random states from `config.resume_from` (a
    checkpoint folder, or a run folder whose newest checkpoint is taken)."""
    folder = _checkpoint_to_resume(config.resume_from)
    state = torch.load(folder / STATE_FILE, weights_only=False)
    expected = fingerprint(config, plan)
    differing = [k for k in expected if state["fingerprint"].get(k) != expected[k]]
    if differing:
        raise TrainingError(f"cannot resume from {folder}: the run differs in "
                            f"{', '.join(differing)}", "invalid_checkpoint", "resume_from")
    load_weights(model, folder)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    random.setstate(state["python_rng"])
    progress = Progress(**state["progress"])
    callback.on_event("info", f"Resumed from {folder} at step {progress.step}")
    return progress
