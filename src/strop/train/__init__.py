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
           "TrainingError", "openai_default_epochs"]
