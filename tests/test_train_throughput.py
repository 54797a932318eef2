"""Calibrated training throughput: measured once per model and machine, then read from cache."""

from __future__ import annotations

import json

import pytest
import torch


def test_calibration_measures_once_and_caches(tiny_model_dir, strop_home, monkeypatch,
                                              one_thread):
    # the thread count is part of the cache key, so it stays the same for the whole test
    from strop.train import throughput

    first = throughput.tokens_per_second(str(tiny_model_dir), "lora", 64)
    assert first > 0
    cache = json.loads((strop_home / "calibration.json").read_text())
    (key,) = cache
    assert str(tiny_model_dir) in key and "|lora|64|" in key and torch.__version__ in key
    assert "x1 threads" in key

    def no_measuring(*args):
        raise AssertionError("a cached rate must not be measured again")

    monkeypatch.setattr(throughput, "_measure", no_measuring)
    assert throughput.tokens_per_second(str(tiny_model_dir), "lora", 64) == first
    monkeypatch.setattr(throughput, "_measure", lambda *args: 123.0)
    assert throughput.tokens_per_second(str(tiny_model_dir), "full", 64) == 123.0
    assert throughput.tokens_per_second(str(tiny_model_dir), "lora", 64, recalibrate=True) == 123.0
