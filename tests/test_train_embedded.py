"""The real embedded model learns a small behaviour: always answer in one fixed JSON shape."""

from __future__ import annotations

import json
import random

import pytest

QUESTIONS = [
    "What colour is the sky on a clear day?", "How many legs does a spider have?",
    "What is the capital of Italy?", "Is water wet?", "What do bees make?",
    "Which planet is closest to the sun?", "How many days are in a week?",
    "What is frozen water called?", "What animal says moo?", "What is two plus three?",
    "Which ocean is the largest?", "What language is spoken in Brazil?",
    "What gas do plants take in?", "How many hours are in a day?", "What is the opposite of hot?",
    "Which metal is liquid at room temperature?", "What do caterpillars become?",
    "What is the largest mammal?", "How many continents are there?", "What shape has three sides?",
]
ANSWERS = ["blue", "eight", "Rome", "yes", "honey", "Mercury", "seven", "ice", "a cow", "five",
           "the Pacific", "Portuguese", "carbon dioxide", "twenty-four", "cold", "mercury",
           "butterflies", "the blue whale", "seven", "a triangle"]
UNSEEN = ["What is the capital of Spain?", "How many wheels does a bicycle have?",
          "What do cows drink?"]


def follows_shape(text: str) -> bool:
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False
    return isinstance(value, dict) and set(value) == {"answer", "confidence"}


@pytest.mark.slow
def test_embedded_model_learns_a_fixed_json_shape(tmp_path, embedded_model_folder):
    from strop.serving.generation import SamplingParams, complete_chat
    from strop.models import load
    from strop.train import Hyperparameters, TrainConfig, run_training

    rng = random.Random(0)
    rows = []
    for question, answer in zip(QUESTIONS, ANSWERS):
        for _ in range(2):
            reply = json.dumps({"answer": answer, "confidence": rng.choice(["high", "low"])})
            rows.append({"messages": [{"role": "user", "content": question},
                                      {"role": "assistant", "content": reply}]})
    training = tmp_path / "train.jsonl"
    training.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    result = run_training(TrainConfig(
        model=str(embedded_model_folder), training_file=training, output_dir=tmp_path / "out",
        validation_split=0, hyperparameters=Hyperparameters(
            n_epochs=2, batch_size=4, learning_rate_multiplier=2)))

    params = SamplingParams(max_tokens=40, temperature=0)
    base = load(str(embedded_model_folder))
    tuned = load(str(result.output_dir))
    asks = [[{"role": "user", "content": q}] for q in UNSEEN]
    base_replies = [complete_chat(base.model, base.tokenizer, m, params).text for m in asks]
    tuned_replies = [complete_chat(tuned.model, tuned.tokenizer, m, params) for m in asks]
    assert not any(follows_shape(text) for text in base_replies), base_replies
    assert all(follows_shape(r.text) and r.finish_reason == "stop" for r in tuned_replies), [
        r.text for r in tuned_replies]
