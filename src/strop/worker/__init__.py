"""Runs fine-tuning jobs from the store: claim, validate, train, record; cancel/pause/resume."""

from strop.worker.runner import Worker, new_worker_id

__all__ = ["Worker", "new_worker_id"]
