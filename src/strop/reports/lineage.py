"""Lineage of a tuned model: back to its base weights and data, forward to its uses.

The training manifest says what went in (base model hash, data hashes, hyperparameters, seed,
versions, compute); the audit log says what happened around it (uploads, validation, cleaning
and redaction, the job's states, evaluations, exports, serving, deletion).
"""

from __future__ import annotations

from typing import Iterable

# Actions in the audit log, by the part of a model's life they belong to.
DATA_ACTIONS = ("file.", "data.")
EVALUATION_ACTIONS = ("evaluation.", "model.evaluated")
DEPLOYMENT_ACTIONS = ("model.served", "model.exported", "model.deleted", "model.deployed",
                      "model.loaded", "model.unloaded")


def related_records(object_ids: Iterable[str], records: Iterable[dict], hops: int = 2) -> list[dict]:
    """Records naming any of `object_ids`, then records naming any object those name, `hops`
    times: from an ft: model to its job, from the job to its files, from the files to their
    upload and validation."""
    pool = list(records)
    wanted = {object_id for object_id in object_ids if object_id}
    chosen: dict[int, dict] = {}
    for _ in range(hops + 1):
        grown = set(wanted)
        for position, record in enumerate(pool):
            names = set((record.get("objects") or {}).values())
            if names & wanted:
                chosen[position] = record
                grown |= {value for value in names if isinstance(value, str)}
        if grown == wanted:
            break
        wanted = grown
    return [chosen[position] for position in sorted(chosen)]


def _starts(action: str, prefixes: tuple[str, ...]) -> bool:
    return any(action.startswith(prefix) for prefix in prefixes)


def _summary(record: dict) -> dict:
    return {key: record.get(key) for key in ("seq", "time", "actor", "organization", "action",
                                             "objects", "hashes", "details")}


def lineage(manifest: dict, audit_records: Iterable[dict]) -> dict:
    """Everything known about where a tuned model came from and where it went."""
    records = list(audit_records)
    config = manifest.get("config") or {}
    data_records = [_summary(r) for r in records if _starts(r.get("action", ""), DATA_ACTIONS)]
    cleaning = [entry for entry in data_records
                if any(word in entry["action"] for word in ("clean", "redact", "pii", "dedup"))]
    return {
        "model": manifest.get("fine_tuned_model") or manifest.get("output_dir"),
        "base_model": {
            "name": manifest.get("base_model"),
            "weights_sha256": manifest.get("base_model_weights_sha256"),
            "started_from": manifest.get("started_from"),
        },
        "data": {
            "training_file": manifest.get("training_file"),
            "training_file_sha256": manifest.get("training_file_sha256"),
            "validation_file": manifest.get("validation_file"),
            "validation_file_sha256": manifest.get("validation_file_sha256"),
            "n_train_examples": manifest.get("n_train_examples"),
            "n_validation_examples": manifest.get("n_validation_examples"),
            "cleaning_and_redaction": cleaning,
            "history": data_records,
        },
        "training": {
            "method": manifest.get("method"),
            "fine_tuning": manifest.get("fine_tuning"),
            "precision": manifest.get("precision"),
            "hyperparameters": manifest.get("hyperparameters"),
            "auto_chose": manifest.get("auto_chose"),
            "seed": manifest.get("seed"),
            "lora": {key: config.get(key) for key in ("lora_rank", "lora_alpha", "lora_dropout",
                                                      "lora_target_modules")}
            if manifest.get("fine_tuning") == "lora" else None,
            "max_seq_length": config.get("max_seq_length"),
            "status": manifest.get("status"),
            "steps": manifest.get("steps"),
        },
        "compute": {
            "trained_tokens": manifest.get("trained_tokens"),
            "flops": manifest.get("flops"),
            "wall_time_seconds": manifest.get("wall_time_seconds"),
            "hardware": manifest.get("hardware"),
        },
        "versions": manifest.get("versions") or {},
        "job_history": [_summary(r) for r in records if r.get("action", "").startswith("job.")],
        "evaluations": [_summary(r) for r in records
                        if _starts(r.get("action", ""), EVALUATION_ACTIONS)],
        "deployments": [_summary(r) for r in records
                        if _starts(r.get("action", ""), DEPLOYMENT_ACTIONS)],
    }
