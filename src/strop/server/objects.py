"""Rows of the store as OpenAI's JSON objects (field for field what the `openai` client expects)."""

from __future__ import annotations

from strop.store.tables import Checkpoint, Event, Job, StoredFile, TunedModel


def file_object(row: StoredFile) -> dict:
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": row.created_at,
            "filename": row.filename, "purpose": row.purpose, "status": row.status,
            "status_details": row.status_details, "expires_at": None}


def job_object(job: Job) -> dict:
    method = job.method or {"type": "supervised"}
    hyperparameters = dict((method.get(method["type"]) or {}).get("hyperparameters") or {})
    hyperparameters.pop("beta", None)  # the top-level field carries supervised-style values
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": job.created_at,
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at,
        "hyperparameters": hyperparameters,
        "model": job.model,
        "organization_id": job.organization_id,
        "result_files": list(job.result_files or []),
        "seed": job.seed,
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "estimated_finish": job.estimated_finish,
        "integrations": [],
        "metadata": job.job_metadata,
        "method": method,
        "suffix": job.suffix,
    }


def event_object(event: Event) -> dict:
    return {"id": event.id, "object": "fine_tuning.job.event", "created_at": event.created_at,
            "level": event.level, "message": event.message, "type": event.type,
            "data": event.data or {}}


def checkpoint_object(checkpoint: Checkpoint) -> dict:
    return {"id": checkpoint.id, "object": "fine_tuning.job.checkpoint",
            "created_at": checkpoint.created_at,
            "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
            "fine_tuning_job_id": checkpoint.job_id, "metrics": checkpoint.metrics,
            "step_number": checkpoint.step_number}


def model_object(name: str, created: int, owned_by: str) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": owned_by}


def tuned_model_object(row: TunedModel, organization_name: str) -> dict:
    return model_object(row.name, row.created_at, organization_name)


def cursor_page(items: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": items, "has_more": has_more,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None}
