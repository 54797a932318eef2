"""Evaluation benchmark: wall and CPU time of `evaluate_tuned_model` on the real model.

    python bench/evaluate.py [--limit 20] [--max-new-tokens 48] [--dtype bfloat16]

A random rank-16 LoRA over the embedded SmolLM2-135M against its base: `--limit` items per
shipped suite (retention, hallucination) plus 8 held-out examples, the way `strop eval` and the
worker run it (one engine serving both models, the serving precision unless --dtype). CPU time
is printed beside wall time because a shared machine's load moves wall time a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()

    from strop.evaluate.tuned import evaluate_tuned_model
    from strop.models import load
    from strop.serving.synthetic import make_random_adapter
    from strop.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="strop-bench-eval-"))
    loaded = load("smollm2-135m-instruct")
    adapter = make_random_adapter(loaded.folder, work / "adapter", seed=0, rank=16, scale=0.02,
                                  base_model=loaded.model)
    del loaded
    data = work / "valid.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {a} plus {a}? Reply with the number only."},
        {"role": "assistant", "content": str(2 * a)}]}) + "\n" for a in range(2, 10)))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    wall, cpu = time.perf_counter(), time.process_time()
    result, _ = evaluate_tuned_model(Settings.load(), str(adapter), data_path=data,
                                     limit=args.limit, max_new_tokens=args.max_new_tokens,
                                     dtype=args.dtype, save=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"evaluation: {wall:.1f} s wall, {cpu:.1f} s CPU, load average "
          f"{os.getloadavg()[0]:.1f} at the end; {result.settings['n_retention_items']} "
          f"retention + {result.settings['n_hallucination_items']} hallucination items + "
          f"{result.settings['n_task_examples']} task examples, base and tuned, "
          f"{result.tuned['dtype']}")
    for comparison in result.comparisons:
        print(f"  {comparison.group:13s} {comparison.metric:30s} base "
              f"{comparison.base.value!s:>6.6} tuned {comparison.tuned.value!s:>6.6}")


if __name__ == "__main__":
    main()
