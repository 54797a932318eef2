"""Benchmark of the data toolkit on realistic synthetic chat data.

    python bench/data.py [--examples 100000] [--pii-examples 20000] [--model M] [--part check|pii]

Generates support-desk conversations (shared system prompt, one to three turns, order numbers,
dates and prices in the text, ~3% carrying personal data, ~2% exact and ~1% near duplicates) into
a temporary file, then prints examples/s for:
- check = validate + token stats (the model's tokenizer and chat template) + exact and
  near-duplicate detection, next to the baseline of only running json.loads on every line;
- PII redaction (clean_file, mask policy, duplicates removed too), next to the baseline of
  running Presidio's analyzer (its default recognizers, offline: bench/pii.py) on every message.
Each rate comes by wall clock and by CPU time; CPU time counts the worker processes a large
check forks (one per core) as well as this one.
Goals on a 2-core machine: >= 20,000 examples/s for check, >= 1,000 examples/s with PII.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

SYSTEM = ("You are the support assistant of Northwind Outfitters. Answer politely in at most "
          "three sentences, never promise refunds you cannot grant, and offer a human agent "
          "when the customer is upset.")
PRODUCTS = ["hiking boots", "rain jacket", "sleeping bag", "tent", "headlamp", "backpack",
            "water filter", "trekking poles", "camp stove", "fleece", "gaiters", "map case"]
ISSUES = ["arrived damaged", "has not arrived", "is the wrong size", "was charged twice",
          "stopped working", "is missing a part", "came in the wrong colour"]
ACTIONS = ["I have opened a replacement order", "I have issued a return label",
           "I have asked the warehouse to check the parcel", "I have refunded the second charge",
           "I have sent the missing part", "I have escalated this to a human agent"]
PII = ["You can reach me at {first}.{last}@example.com.", "Call me on +1 415 555 {n4:04d}.",
       "My card ending 4111 1111 1111 1111 was charged.", "My IBAN is GB82 WEST 1234 5698 7654 32.",
       "I logged in from 203.0.113.{n3}."]
NAMES = ["maria", "li", "omar", "anna", "joao", "fatima", "ken", "ingrid", "ravi", "chloe"]


def conversation(rng: random.Random, index: int) -> dict:
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(rng.choice((1, 1, 1, 2, 3))):
        product, issue = rng.choice(PRODUCTS), rng.choice(ISSUES)
        order = rng.randint(10_000, 99_999)
        user = (f"Hi, my {product} from order {order} {issue}. I ordered it on "
                f"{rng.randint(1, 28)} March and paid ${rng.randint(20, 400)}.")
        if rng.random() < 0.03:
            user += " " + rng.choice(PII).format(first=rng.choice(NAMES), last=rng.choice(NAMES),
                                                 n4=rng.randint(0, 9999), n3=rng.randint(1, 254))
        if turn:
            user = f"Also, {user[4:]}"
        reply = (f"I am sorry your {product} {issue}. {rng.choice(ACTIONS)} for order {order}; "
                 f"you will get an update within {rng.randint(1, 5)} business days. Ticket "
                 f"{index}-{turn} is open if you need anything else.")
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"messages": messages}


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    made: list[dict] = []
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(n):
            roll = rng.random()
            if made and roll < 0.02:
                example = rng.choice(made)  # exact duplicate
            elif made and roll < 0.03:
                example = json.loads(json.dumps(rng.choice(made)))  # near duplicate
                example["messages"][-1]["content"] += " Thank you for your patience."
            else:
                example = conversation(rng, index)
                if len(made) < 5000:
                    made.append(example)
            handle.write(json.dumps(example) + "\n")


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the check's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rate(n: int, seconds: float, cpu: float | None = None) -> str:
    """Wall-clock rate, plus the rate by CPU time (this process and its workers): on a shared
    machine the wall rate drops with others' load, the CPU rate much less (the check runs
    worker processes on every core, so CPU time exceeds wall time on a quiet machine)."""
    text = f"{n / seconds:>10,.0f} ex/s  ({n:,} examples in {seconds:.2f} s"
    return text + (f"; {n / cpu:,.0f} ex/s by CPU time)" if cpu else ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--pii-examples", type=int, default=20_000,
                        help="examples for the PII run (a prefix of the generated file)")
    parser.add_argument("--baseline-pii-examples", type=int, default=500,
                        help="examples for the naive Presidio baseline (slow)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--part", choices=("check", "pii", "all"), default="all")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="strop-bench-data-"))
    path = folder / "chat.jsonl"
    started = time.perf_counter()
    generate(path, args.examples)
    print(f"generated {args.examples:,} examples ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s -> {path}")
    if args.part != "pii":
        bench_check(args, path)
    if args.part != "check":
        bench_pii(args, folder, path)


def bench_check(args, path: Path) -> None:
    from strop.data import validate_file
    from strop.data.tokenizer import load_tokenizer

    tokenizer, context = load_tokenizer(args.model)
    started, cpu = time.perf_counter(), cpu_seconds()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
    baseline, baseline_cpu = time.perf_counter() - started, cpu_seconds() - cpu

    started, cpu = time.perf_counter(), cpu_seconds()
    report = validate_file(path, tokenizer, context, near_duplicate_threshold=0.85)
    check, check_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert report.ok, report.openai_error()
    stats = report.stats
    exact = sum(d["kind"] == "exact" for d in report.duplicates)

    started = time.perf_counter()
    validate_file(path)
    structure = time.perf_counter() - started

    print(f"\ncheck (validate + token stats + exact/near duplicates), model {args.model}:")
    print(f"  baseline json.loads only   {rate(args.examples, baseline, baseline_cpu)}")
    print(f"  strop data check           {rate(args.examples, check, check_cpu)}")
    print(f"  ratio to baseline          {baseline / check:.2f}x the baseline's speed")
    print(f"  (validation alone          {rate(args.examples, structure)})")
    print(f"  found: {exact:,} exact + {len(report.duplicates) - exact:,} near duplicates; "
          f"{stats['tokens']['total']:,} tokens ({'exact' if stats['exact'] else 'sampled on ' + format(stats['counted_examples'], ',') + ' examples'})")


def bench_pii(args, folder: Path, path: Path) -> None:
    from strop.data import clean_file

    subset = folder / "pii.jsonl"
    with open(path, encoding="utf-8") as source, open(subset, "w", encoding="utf-8") as target:
        for index, line in enumerate(source):
            if index >= args.pii_examples:
                break
            target.write(line)
    from pii import presidio_analyzer  # bench/pii.py; imported here so its start-up is not timed

    started, cpu = time.perf_counter(), cpu_seconds()
    cleaned = clean_file(subset, folder / "clean.jsonl", pii="mask")
    redaction, redaction_cpu = time.perf_counter() - started, cpu_seconds() - cpu

    analyzer = presidio_analyzer()
    lines = subset.read_text(encoding="utf-8").splitlines()[:args.baseline_pii_examples]
    naive_found = 0
    started, cpu = time.perf_counter(), cpu_seconds()
    for line in lines:
        for message in json.loads(line)["messages"]:
            naive_found += len(analyzer.analyze(message["content"], language="en",
                                                score_threshold=0.4))
    naive, naive_cpu = time.perf_counter() - started, cpu_seconds() - cpu

    print(f"\nPII redaction (mask), {args.pii_examples:,} examples:")
    print(f"  baseline Presidio on every message {rate(len(lines), naive, naive_cpu)}")
    print(f"  strop data clean --pii mask        {rate(args.pii_examples, redaction, redaction_cpu)}")
    print(f"  ratio to baseline                  "
          f"{(args.pii_examples / redaction) / (len(lines) / naive):.1f}x")
    print(f"  found: {sum(cleaned.pii_counts.values()):,} entities in {cleaned.pii_examples:,} "
          f"examples {dict(sorted(cleaned.pii_counts.items()))}")


if __name__ == "__main__":
    main()
