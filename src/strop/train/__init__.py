"""Training engine: supervised fine-tuning (LoRA, full), DPO and continued pretraining."""

from strop.train.config import (
    Hyperparameters,
    NullCallback,
    TrainCallback,
    TrainConfig,
    TrainingError,
    TrainResult,
    openai_default_epochs,
)

__all__ = ["Hyperparameters", "NullCallback", "TrainCallback", "TrainConfig", "TrainResult",
           "TrainingError", "openai_default_epochs", "run_training"]


def run_training(config: TrainConfig, callback: TrainCallback = NullCallback()) -> TrainResult:
    """Run one training job (see strop.train.run); imported lazily so that reading the
    contract does not load torch."""
    from strop.train.run import run_training as run

    return run(config, callback)
