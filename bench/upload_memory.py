"""Peak memory of the server's upload check on a 20 MB and a 500 MB chat file.

    python bench/upload_memory.py [--sizes 20 500] [--pythonpath OLD_CHECKOUT/src]

Generates bench/data.py's support-desk conversations up to each size, then runs
`strop.store.validation.check_training_file` (what the server runs on every upload) on each in a
fresh Python process and prints its peak RSS (getrusage's ru_maxrss), next to the baseline of
the same process before the check (Python with strop imported). The check streams the file, so
the ratio of the peaks 500 MB / 20 MB should be ~1 (it was 12 when every record was held:
139 MiB and 1,667 MiB).
`--pythonpath` measures another tree (e.g. a checkout of an older commit) the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from data import conversation  # noqa: E402  (bench/data.py: the same generated conversations)

CHECK = """
import json, resource, sys, time
from pathlib import Path
from strop.store.validation import check_training_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
report = check_training_file(Path(sys.argv[1]))
seconds = time.perf_counter() - started
print(json.dumps({"ok": report.ok, "examples": report.n_examples, "seconds": seconds,
                  "baseline_kib": before,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def generate(path: Path, megabytes: int) -> int:
    """Conversations until the file holds `megabytes` MB; returns how many."""
    import random

    rng, limit, n = random.Random(0), megabytes * 1_000_000, 0
    with open(path, "w", encoding="utf-8") as handle:
        while handle.tell() < limit:
            handle.write(json.dumps(conversation(rng, n)) + "\n")
            n += 1
    return n


def measure(path: Path, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHECK, str(path)], capture_output=True,
                         text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 500], help="file sizes, MB")
    parser.add_argument("--pythonpath", help="measure the strop found here instead")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="strop-bench-memory-"))
    peaks = []
    print(f"upload check (check_training_file), peak RSS of a fresh process"
          f"{' with ' + args.pythonpath if args.pythonpath else ''}:")
    for size in args.sizes:
        path = folder / f"chat-{size}mb.jsonl"
        started = time.perf_counter()
        n = generate(path, size)
        made = time.perf_counter() - started
        result = measure(path, args.pythonpath)
        path.unlink()
        assert result["ok"], result
        peaks.append(result["peak_kib"])
        print(f"  {size:>5} MB ({n:,} examples, made in {made:.0f} s): peak {result['peak_kib'] / 1024:,.0f} MiB"
              f" (baseline before the check {result['baseline_kib'] / 1024:,.0f} MiB, "
              f"+{(result['peak_kib'] - result['baseline_kib']) / 1024:,.0f} MiB), "
              f"{n / result['seconds']:,.0f} examples/s")
    folder.rmdir()
    if len(peaks) > 1:
        print(f"  ratio of peaks {args.sizes[-1]} MB / {args.sizes[0]} MB: "
              f"{peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
