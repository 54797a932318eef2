"""Request bodies, validated with OpenAI's ranges; a bad value is a 400 naming the field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from strop.train.config import Auto, out_of_range


def _in_range(name: str):
    """A validator refusing what the training config would refuse, in the same words."""
    def check(value):
        problem = out_of_range(name, value)
        if problem:
            raise PydanticCustomError("out_of_range", problem)
        return value
    return AfterValidator(check)


Epochs = Annotated[Auto | int, _in_range("n_epochs")]
BatchSize = Annotated[Auto | int, _in_range("batch_size")]
LearningRate = Annotated[Auto | float, _in_range("learning_rate_multiplier")]
Beta = Annotated[Auto | float, _in_range("beta")]


class SupervisedHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Epochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRate = "auto"


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = "auto"


class SupervisedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: SupervisedHyperparameters = Field(default_factory=SupervisedHyperparameters)


class DpoSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised", "dpo"]
    supervised: SupervisedSpec | None = None
    dpo: DpoSpec | None = None

    @model_validator(mode="after")
    def _matches_type(self):
        other = "dpo" if self.type == "supervised" else "supervised"
        if getattr(self, other) is not None:
            raise ValueError(f"method.type is '{self.type}' but method.{other} is set")
        return self

    def normalized(self) -> dict:
        spec = getattr(self, self.type) or (SupervisedSpec() if self.type == "supervised"
                                            else DpoSpec())
        return {"type": self.type, self.type: spec.model_dump()}


Suffix = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9._-]*$")]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    training_file: Annotated[str, StringConstraints(min_length=1)]
    hyperparameters: SupervisedHyperparameters | None = None
    method: Method | None = None
    suffix: Suffix | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    validation_file: str | None = None
    metadata: dict[Annotated[str, StringConstraints(max_length=64)],
                   Annotated[str, StringConstraints(max_length=512)]] | None = None
    integrations: list[dict] | None = None

    @field_validator("metadata")
    @classmethod
    def _few_pairs(cls, value):
        if value is not None and len(value) > 16:
            raise ValueError("at most 16 key-value pairs")
        return value

    @field_validator("integrations")
    @classmethod
    def _no_integrations(cls, value):
        if value:
            raise ValueError("integrations (e.g. Weights & Biases) are not supported by strop")
        return value

    @model_validator(mode="after")
    def _one_place_for_hyperparameters(self):
        if self.hyperparameters is not None and self.method is not None:
            raise ValueError("give hyperparameters either at the top level or inside method, "
                             "not both")
        return self

    def normalized_method(self) -> dict:
        if self.method is not None:
            return self.method.normalized()
        hyperparameters = self.hyperparameters or SupervisedHyperparameters()
        return {"type": "supervised", "supervised": {"hyperparameters": hyperparameters.model_dump()}}
