"""OpenAI's hyperparameter ranges are defined once (train/config.py): the API's request schema,
the training config check and the estimate accept and refuse exactly the same values, in the
same words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from strop.estimate import EstimateError, resolve_epochs
from strop.server.schemas import JobCreate
from strop.train import Hyperparameters, TrainConfig, TrainingError
from strop.train.hyperparameters import check

EDGES = {
    "n_epochs": [0, 1, 50, 51, -3, "auto"],
    "batch_size": [0, 1, 256, 257, "auto"],
    "learning_rate_multiplier": [0, -0.5, 1e-9, 3.0, 100, "auto"],
    "beta": [0, -1, 1e-6, 2, 2.0001, "auto"],
}
EXPECTED_REFUSALS = {("n_epochs", 0), ("n_epochs", 51), ("n_epochs", -3),
                     ("batch_size", 0), ("batch_size", 257),
                     ("learning_rate_multiplier", 0), ("learning_rate_multiplier", -0.5),
                     ("beta", 0), ("beta", -1), ("beta", 2.0001)}


def _api_problem(name, value) -> str | None:
    method = "dpo" if name == "beta" else "supervised"
    body = {"model": "m", "training_file": "file-x",
            "method": {"type": method, method: {"hyperparameters": {name: value}}}}
    try:
        JobCreate(**body)
    except ValidationError as exc:
        (error,) = exc.errors()
        assert error["loc"] == ("method", method, "hyperparameters", name)
        return error["msg"]
    return None


def _training_problem(tmp_path: Path, name, value) -> str | None:
    training = tmp_path / "train.jsonl"
    training.write_text("{}\n")
    config = TrainConfig(model="m", training_file=training, output_dir=tmp_path / "out",
                         method="dpo" if name == "beta" else "supervised",
                         hyperparameters=Hyperparameters(**{name: value}))
    try:
        check(config)
    except TrainingError as exc:
        assert exc.param == name and exc.code == "invalid_hyperparameters"
        return exc.message
    return None


@pytest.mark.parametrize("name,value", [(n, v) for n, values in EDGES.items() for v in values])
def test_api_and_training_draw_the_same_line_in_the_same_words(tmp_path, name, value):
    api, training = _api_problem(name, value), _training_problem(tmp_path, name, value)
    assert (api is not None) == ((name, value) in EXPECTED_REFUSALS)
    if api is None:
        assert training is None
    else:
        # the API coerces ints to floats for float fields ("got 0.0" for 0): same sentence
        assert training is not None and training.split(", got")[0] == api.split(", got")[0]
        assert api.startswith(f"{name} must be ")


@pytest.mark.parametrize("value", EDGES["n_epochs"])
def test_estimate_epochs_follow_the_same_range(tmp_path, value):
    refused = ("n_epochs", value) in EXPECTED_REFUSALS
    if refused:
        with pytest.raises(EstimateError, match=re.escape(_training_problem(tmp_path, "n_epochs", value))):
            resolve_epochs(value, 100)
    else:
        assert resolve_epochs(value, 100)[0] >= 1
