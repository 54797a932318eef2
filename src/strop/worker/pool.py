"""Worker processes beside the API: `strop serve` starts them, restarts one that dies, and
stops them (each checkpoints its job and re-queues it) when the server stops.

A worker is a process of its own, not a thread of the API: training holds the interpreter for
seconds at a time, which a thread in the API process would take from every request.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("strop.worker.pool")
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)  # a worker that keeps dying is retried slower
STOP_GRACE_SECONDS = 60  # one optimizer step and a checkpoint


class WorkerPool:
    def __init__(self, settings, size: int):
        self.settings = settings
        self.size = size
        self.processes: list[subprocess.Popen | None] = [None] * size
        self._restarts = [0] * size
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self, index: int) -> subprocess.Popen:
        # The settings travel as environment variables, so the worker loads exactly these.
        environment = os.environ | self.settings.environment()
        process = subprocess.Popen([sys.executable, "-m", "strop.cli", "worker"],
                                   env=environment, stdin=subprocess.DEVNULL)
        log.info("worker process %d started (pid %d)", index, process.pid)
        return process

    def start(self) -> "WorkerPool":
        for index in range(self.size):
            self.processes[index] = self._spawn(index)
        self._watcher = threading.Thread(target=self._watch, name="strop-worker-pool",
                                         daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self.processes):
                if process is None or process.poll() is None:
                    continue
                delay = RESTART_BACKOFF_SECONDS[min(self._restarts[index],
                                                    len(RESTART_BACKOFF_SECONDS) - 1)]
                log.warning("worker process %d (pid %d) exited with %s; restarting in %d s",
                            index, process.pid, process.returncode, delay)
                self.processes[index] = None
                if self._stopping.wait(delay):
                    return
                self._restarts[index] += 1
                self.processes[index] = self._spawn(index)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (each checkpoints and re-queues its job), SIGKILL after
        `grace` seconds; the next worker to start resumes from the checkpoint either way."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        running = [process for process in self.processes if process and process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
