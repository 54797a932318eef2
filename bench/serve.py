"""Serving benchmark: control-plane latency, tuned-model decode speed, memory of many adapters.

    python bench/serve.py [--part latency|latency-training|decode|memory|all] [--tokens 64]
                          [--rounds 3]

With STROP_DATABASE_URL set (e.g. a PostgreSQL database), the control-plane server uses it.

Prints, in one run:
  1. p95 latency of job create / list / retrieve with 32 concurrent clients against the real app
     over HTTP (goal <= 50 ms);
  2. single-stream decode tokens/s of an ft: model (a rank-16 LoRA over the embedded
     SmolLM2-135M) through the serving engine, against naive `transformers` generate() on the
     same model (PEFT, float32; goal >= 4x), plus the intermediate variants;
  3. the engine's memory with 20 adapters loaded against the base alone (goal: the 20 adapters
     cost at most 1.5x their size on disk).
Variants are measured in interleaved rounds and the best round is reported, which is the least
disturbed by other processes on a shared machine; the median is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Write a short story about a fox who learns to fly."}]
TRAINING_ROWS = [
    {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                  {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
    for a in range(4) for b in range(4)
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- 1. control plane ----------------------------------------------------------------------

# The app as `strop serve --no-access-log --workers N` runs it; with no worker, jobs created
# here stay queued.
SERVER = """
import sys, uvicorn
from strop.server import create_app
from strop.settings import Settings
uvicorn.run(create_app(Settings.load(), workers=int(sys.argv[2])), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def bench_latency(clients: int = 32, per_client: int = 20, load=None,
                  training: bool = False) -> dict:
    """Against `strop serve`'s app in its own process, as clients would meet it (32 client
    threads inside the server's process would compete with it for one interpreter lock).
    Also reports the server's CPU time per request (Linux): with every client always waiting,
    a request waits for about `clients` others, so p95 tracks `clients` x that CPU time."""
    import socket

    load = load or _latency_against
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="strop-bench-"))  # a throwaway store
    if training:  # the converted model of the user's home, so the worker need not convert it
        from strop.settings import Settings

        (home / "models").symlink_to(Settings.load().models_dir, target_is_directory=True)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(int(training))],
                              env={**os.environ, "STROP_HOME": str(home),
                                   "STROP_EVALUATION_AFTER_TRAINING": "false"})
    try:
        base = f"http://127.0.0.1:{port}/v1"
        file_id = _prepare(base)
        if training:
            _start_training(base, file_id)
        before = _cpu_seconds(server.pid)
        result = load(base, file_id, clients, per_client)
        requests = sum(result[kind]["requests"] for kind in ("create", "list", "retrieve"))
        if before is not None:
            result["server_cpu_ms_per_request"] = (
                1000 * (_cpu_seconds(server.pid) - before) / requests)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def _start_training(base: str, file_id: str) -> str:
    """A long job on the embedded model, running in the worker process before the load."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as setup:
        job = setup.post("/fine_tuning/jobs", json={
            "model": MODEL, "training_file": file_id, "suffix": "training-under-load",
            "hyperparameters": {"n_epochs": 50, "batch_size": 1}}).json()
        deadline = time.monotonic() + 600
        while setup.get(f"/fine_tuning/jobs/{job['id']}").json()["status"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job['id']} did not start training")
            time.sleep(0.5)
        while not any(event["type"] == "metrics" for event in
                      setup.get(f"/fine_tuning/jobs/{job['id']}/events").json()["data"]):
            time.sleep(0.5)  # the first optimizer step done: the worker is training now
    return job["id"]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for(base: str, seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base}/models", timeout=5)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _prepare(base: str) -> str:
    """Upload a training file and make one request of each kind (the first call of a route
    builds its validators); returns the file id the timed job creations use."""
    import httpx

    _wait_for(base)
    data = "\n".join(json.dumps(row) for row in TRAINING_ROWS).encode()
    with httpx.Client(base_url=base, timeout=60) as setup:
        uploaded = setup.post("/files", data={"purpose": "fine-tune"},
                              files={"file": ("train.jsonl", data)}).json()
        file_id = uploaded["id"]
        for _ in range(100):
            if setup.get(f"/files/{file_id}").json().get("status") in ("processed", "error"):
                break
            time.sleep(0.1)
        job_id = setup.post("/fine_tuning/jobs",
                            json={"model": MODEL, "training_file": file_id}).json()["id"]
        setup.get("/fine_tuning/jobs")
        setup.get(f"/fine_tuning/jobs/{job_id}")
    return file_id


def _summary(timings: dict[str, list[float]], failures: list[str]) -> dict:
    result = {op: {"p50_ms": 1000 * percentile(v, 0.5), "p95_ms": 1000 * percentile(v, 0.95),
                   "requests": len(v)} for op, v in timings.items()}
    result["failures"] = failures[:5]
    result["failed_requests"] = len(failures)
    return result


def _latency_against(base: str, file_id: str, clients: int, per_client: int) -> dict:
    """Each of `clients` keeps one connection and sends create, list, retrieve in turn, as fast
    as the answers come. The load generator is a few lines of asyncio over raw HTTP/1.1 (like
    wrk or hey, it costs ~0.1 ms of CPU a request), so on a 2-core machine it leaves the
    server its core; `_latency_with_httpx_threads` measures the heavier alternative."""
    import asyncio
    from urllib.parse import urlsplit

    url = urlsplit(base)
    body = json.dumps({"model": MODEL, "training_file": file_id, "suffix": "bench"}).encode()
    head = f"Host: {url.hostname}:{url.port}\r\n"
    create = (f"POST {url.path}/fine_tuning/jobs HTTP/1.1\r\n{head}Content-Type: application/json"
              f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    listing = f"GET {url.path}/fine_tuning/jobs?limit=20 HTTP/1.1\r\n{head}\r\n".encode()
    timings: dict[str, list[float]] = {"create": [], "list": [], "retrieve": []}
    failures: list[str] = []

    async def send(reader, writer, request: bytes) -> tuple[int, bytes]:
        writer.write(request)
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        return int(lines[0].split()[1]), await reader.readexactly(length)

    async def client(start: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        await start.wait()
        job_id = None
        for _ in range(per_client):
            for operation in ("create", "list", "retrieve"):
                request = {"create": create, "list": listing}.get(operation) or (
                    f"GET {url.path}/fine_tuning/jobs/{job_id} HTTP/1.1\r\n{head}\r\n".encode())
                started = time.perf_counter()
                status, content = await send(reader, writer, request)
                timings[operation].append(time.perf_counter() - started)
                if status != 200:
                    failures.append(f"{operation}: {status} {content[:200]!r}")
                elif operation == "create":
                    job_id = json.loads(content)["id"]
        writer.close()

    async def run() -> None:
        start = asyncio.Event()
        tasks = [asyncio.create_task(client(start)) for _ in range(clients)]
        await asyncio.sleep(0.2)  # every connection open before the first request
        start.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    return _summary(timings, failures)


def _latency_with_httpx_threads(base: str, file_id: str, clients: int, per_client: int) -> dict:
    """The same load from 32 threads with an httpx client each, in one Python process: its
    clients spend about as much CPU per request as the server, so on 2 cores this measures the
    client process's queue for the interpreter lock as much as the server."""
    import httpx

    timings: dict[str, list[float]] = {"create": [], "list": [], "retrieve": []}
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            barrier.wait()
            for _ in range(per_client):
                for operation in ("create", "list", "retrieve"):
                    started = time.perf_counter()
                    if operation == "create":
                        response = http.post("/fine_tuning/jobs", json={
                            "model": MODEL, "training_file": file_id, "suffix": "bench"})
                        job_id = response.json().get("id")
                    elif operation == "list":
                        response = http.get("/fine_tuning/jobs", params={"limit": 20})
                    else:
                        response = http.get(f"/fine_tuning/jobs/{job_id}")
                    timings[operation].append(time.perf_counter() - started)
                    if response.status_code != 200:
                        failures.append(f"{operation}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()
    return _summary(timings, failures)


# -- 2. decode speed -----------------------------------------------------------------------

def make_adapters(count: int, folder: Path, rank: int = 16) -> tuple[Path, list[Path]]:
    from strop.models import load
    from strop.serving.synthetic import make_random_adapter

    loaded = load(MODEL)
    adapters = [make_random_adapter(loaded.folder, folder / f"adapter-{seed:02d}", seed=seed,
                                    rank=rank, scale=0.02, base_model=loaded.model)
                for seed in range(count)]
    return loaded.folder, adapters


def bench_decode(tokens: int, rounds: int, adapter: Path, base_folder: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from strop.serving.generation import SamplingParams, generate_token_ids, render_chat
    from strop.serving import Engine, ServedModel
    from strop.settings import ServingSettings

    tokenizer = AutoTokenizer.from_pretrained(adapter)
    prompt = render_chat(tokenizer, PROMPT)
    never_stop: set[int] = set()  # every variant decodes exactly `tokens` tokens

    def peft_model(dtype, merged=False):
        base = AutoModelForCausalLM.from_pretrained(base_folder, dtype=dtype)
        model = PeftModel.from_pretrained(base, str(adapter)).eval()
        return model.merge_and_unload() if merged else model

    naive_model = peft_model(torch.float32)

    def naive() -> int:
        with torch.inference_mode():
            output = naive_model.generate(torch.tensor([prompt]), max_new_tokens=tokens,
                                          min_new_tokens=tokens, do_sample=False)
        return output.shape[1] - len(prompt)

    def loop(model):
        def run() -> int:
            params = SamplingParams(max_tokens=tokens, temperature=0)
            return len(list(generate_token_ids(model, prompt, params, never_stop)))
        return run

    engines = {}
    for dtype in ("float32", "bfloat16", "float16"):
        engine = Engine(lambda name, org: ServedModel(str(base_folder), adapter),
                        ServingSettings(dtype=dtype))
        engine.complete("ft:bench", PROMPT, SamplingParams(max_tokens=2, temperature=0))
        engines[dtype] = engine

    def through_engine(dtype):
        import strop.serving.generation as generation

        def run() -> int:
            original = generation.stop_token_ids
            generation.stop_token_ids = lambda model, tok: set()
            try:
                return engines[dtype].complete(
                    "ft:bench", PROMPT, SamplingParams(max_tokens=tokens, temperature=0)
                ).completion_tokens
            finally:
                generation.stop_token_ids = original
        return run

    variants = {
        "naive generate(), PEFT fp32 (baseline)": naive,
        "KV-cache loop, PEFT fp32 unmerged": loop(naive_model),
        "KV-cache loop, PEFT bf16 unmerged": loop(peft_model(torch.bfloat16)),
        "engine, fp32, adapter merged": through_engine("float32"),
        "engine, bf16, adapter merged (served default)": through_engine("bfloat16"),
        "engine, fp16, adapter merged (STROP_SERVING_DTYPE)": through_engine("float16"),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for name, run in variants.items():
        run()  # warm up kernels and caches
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            produced = run()
            rates[name].append(produced / (time.perf_counter() - started))
    baseline = max(rates["naive generate(), PEFT fp32 (baseline)"])
    return {name: {"best_tokens_per_s": max(values), "median_tokens_per_s": statistics.median(values),
                   "speedup_vs_naive": max(values) / baseline}
            for name, values in rates.items()}


def agreement(adapter: Path, base_folder: Path, prompts: list[str], tokens: int = 32) -> dict:
    """Greedy outputs of the served precision against float32, prompt by prompt."""
    from strop.serving.generation import SamplingParams
    from strop.serving import Engine, ServedModel
    from strop.settings import ServingSettings

    def outputs(dtype):
        engine = Engine(lambda name, org: ServedModel(str(base_folder), adapter),
                        ServingSettings(dtype=dtype))
        params = SamplingParams(max_tokens=tokens, temperature=0)
        return [engine.complete("ft:bench", [{"role": "user", "content": p}], params).text
                for p in prompts]

    reference, served = outputs("float32"), outputs("bfloat16")
    same = sum(a == b for a, b in zip(reference, served))
    common = [len(os.path.commonprefix([a, b])) / max(1, len(a)) for a, b in zip(reference, served)]
    return {"identical": same, "prompts": len(prompts),
            "mean_common_prefix_fraction": statistics.mean(common)}


# -- 3. memory -----------------------------------------------------------------------------

def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def bench_memory_child(base_folder: str, adapters: list[str]) -> dict:
    """Runs in a fresh process so that nothing else inflates its memory."""
    import gc

    from strop.serving.generation import SamplingParams
    from strop.serving import Engine, ServedModel
    from strop.settings import ServingSettings

    table = {f"ft:bench::{i}": ServedModel(base_folder, Path(a)) for i, a in enumerate(adapters)}
    engine = Engine(lambda name, org: table.get(name) or ServedModel(base_folder),
                    ServingSettings())
    one = SamplingParams(max_tokens=1, temperature=0)
    engine.complete("base", PROMPT, one)
    gc.collect()
    base_rss = rss_bytes()
    for name in table:
        engine.complete(name, PROMPT, one)
    gc.collect()
    loaded_rss = rss_bytes()
    on_disk = sum((Path(a) / "adapter_model.safetensors").stat().st_size for a in adapters)
    (base,) = engine.loaded().values()
    return {"base_rss_bytes": base_rss, "with_adapters_rss_bytes": loaded_rss,
            "adapters_loaded": len(base["adapters"]), "adapters_on_disk_bytes": on_disk,
            "adapter_weights_in_memory_bytes": engine.adapter_bytes(),
            "increase_over_adapter_size": (loaded_rss - base_rss) / on_disk}


def bench_memory(base_folder: Path, adapters: list[Path]) -> dict:
    code = ("import json, sys; sys.path.insert(0, 'bench'); import serve; "
            f"print(json.dumps(serve.bench_memory_child({str(base_folder)!r}, "
            f"{[str(a) for a in adapters]!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["latency", "latency-training", "decode", "memory",
                                           "all"], default="all")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start "
          "(numbers taken on a shared machine vary with its load)")

    if args.part in ("latency", "all"):
        print("\n1. control plane, 32 concurrent clients over HTTP, each sending create, list "
              "(20), retrieve back to back (goal p95 <= 50 ms)")
        for title, load in (("clients: raw asyncio HTTP/1.1 (like wrk)", _latency_against),
                            ("clients: 32 httpx threads in one Python process",
                             _latency_with_httpx_threads)):
            latency = bench_latency(load=load)
            cpu = latency.get("server_cpu_ms_per_request")
            print(f"   {title}" + (f"; server CPU {cpu:.2f} ms a request" if cpu else ""))
            for operation in ("create", "list", "retrieve"):
                row = latency[operation]
                print(f"     {operation:9s} p50 {row['p50_ms']:7.1f} ms   "
                      f"p95 {row['p95_ms']:7.1f} ms   ({row['requests']} requests)")
            if latency["failed_requests"]:
                print(f"     {latency['failed_requests']} requests failed, e.g. "
                      f"{latency['failures'][0]}")

    if args.part in ("latency-training", "all"):
        database = os.environ.get("STROP_DATABASE_URL", "SQLite")
        print("\n1b. control plane as in 1 (raw asyncio clients) while a worker process trains "
              f"a LoRA job on the embedded model (database: {database.split('@')[-1]})")
        latency = bench_latency(training=True)
        cpu = latency.get("server_cpu_ms_per_request")
        print(f"   server CPU {cpu:.2f} ms a request" if cpu else "")
        for operation in ("create", "list", "retrieve"):
            row = latency[operation]
            print(f"     {operation:9s} p50 {row['p50_ms']:7.1f} ms   "
                  f"p95 {row['p95_ms']:7.1f} ms   ({row['requests']} requests)")

    if args.part in ("decode", "memory", "all"):
        home = Path(tempfile.mkdtemp(prefix="strop-bench-adapters-"))
        count = 20 if args.part in ("memory", "all") else 1
        base_folder, adapters = make_adapters(count, home)

    if args.part in ("decode", "all"):
        decode = bench_decode(args.tokens, args.rounds, adapters[0], base_folder)
        print(f"\n2. single-stream decode, ft: model = SmolLM2-135M + rank-16 LoRA, "
              f"{args.tokens} tokens, best of {args.rounds} (goal >= 4x naive)")
        for name, row in decode.items():
            print(f"   {name:50s} {row['best_tokens_per_s']:6.1f} tok/s "
                  f"(median {row['median_tokens_per_s']:5.1f})  {row['speedup_vs_naive']:4.1f}x")
        prompts = ["What is the capital of France?", "Write a haiku about the sea.",
                   "Explain photosynthesis briefly.", "List three prime numbers.",
                   "How do I reverse a list in Python?", "Who wrote Hamlet?"]
        agree = agreement(adapters[0], base_folder, prompts)
        print(f"   faithfulness: bf16 serving vs float32, greedy 32 tokens: {agree['identical']}/"
              f"{agree['prompts']} identical, mean common prefix "
              f"{100 * agree['mean_common_prefix_fraction']:.0f}%")

    if args.part in ("memory", "all"):
        memory = bench_memory(base_folder, adapters)
        mib = 1 / (1024 * 1024)
        growth = memory["with_adapters_rss_bytes"] - memory["base_rss_bytes"]
        print("\n3. memory, 20 rank-16 adapters over one base (goal: growth <= 1.5x their size)")
        print(f"   base alone            {memory['base_rss_bytes'] * mib:8.0f} MiB RSS")
        print(f"   with {memory['adapters_loaded']} adapters      "
              f"{memory['with_adapters_rss_bytes'] * mib:8.0f} MiB RSS "
              f"(+{growth * mib:.0f} MiB)")
        print(f"   adapters on disk      {memory['adapters_on_disk_bytes'] * mib:8.0f} MiB; "
              f"growth = {memory['increase_over_adapter_size']:.2f}x their size")


if __name__ == "__main__":
    main()
