"""From a model name to the folders the evaluation and the report need.

A tuned model is named by its ft: name (looked up in the store, any organisation: this is the
local administrator's view), by a job's output folder, or by its adapter folder. A job output
folder holds `adapter/`, `manifest.json`, `results.csv` and, once evaluated, `evaluation.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EVALUATION_FILE = "evaluation.json"
MANIFEST_FILE = "manifest.json"


class LocateError(ValueError):
    """A model name that names no tuned model here; the message says what was tried."""


@dataclass
class TunedModelPaths:
    name: str  # as the user gave it
    model_dir: Path  # what strop.models.load takes (adapter or full model folder)
    job_dir: Path | None  # the run's output folder, when known
    job_id: str | None = None

    @property
    def manifest_path(self) -> Path | None:
        if self.job_dir and (self.job_dir / MANIFEST_FILE).is_file():
            return self.job_dir / MANIFEST_FILE
        return None

    def manifest(self) -> dict | None:
        path = self.manifest_path
        return json.loads(path.read_text()) if path else None

    @property
    def evaluation_path(self) -> Path:
        return (self.job_dir or self.model_dir) / EVALUATION_FILE


def _job_dir_of(folder: Path) -> Path | None:
    """The run folder above an adapter or checkpoint folder: the nearest with a manifest."""
    for candidate in (folder, *list(folder.parents)[:3]):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    return None


def _from_store(name: str) -> tuple[Path, str]:
    from strop.settings import Settings
    from strop.store import Store
    from strop.store.jobs import tuned_model_any_organization

    store = Store(Settings.load().database_url)
    try:
        with store.session() as session:
            row = tuned_model_any_organization(session, name)
            if row is None:
                raise LocateError(f"no fine-tuned model named '{name}' in this strop's "
                                  "database (deleted, failed, or another installation)")
            return Path(row.path), row.job_id
    finally:
        store.close()


def locate(name: str) -> TunedModelPaths:
    if name.startswith("ft:"):
        folder, job_id = _from_store(name)
        return TunedModelPaths(name, folder, _job_dir_of(folder), job_id)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise LocateError(f"'{name}' is neither an ft: model name nor a folder")
    if (folder / "adapter").is_dir() and (folder / MANIFEST_FILE).is_file():
        return TunedModelPaths(name, folder / "adapter", folder)
    return TunedModelPaths(name, folder, _job_dir_of(folder))


def load_pair(model: str, base: str | None = None, dtype: str = "float32",
              progress=None):
    """Base and tuned `LoadedModel`s for a tuned model name, and where its files are; an adapter is applied over the very base object (one copy of
    the weights in memory; the evaluation switches the adapter off for the base)."""
    from strop.models import ModelSource, load
    from strop.models.adapters import adapter_base, is_adapter_folder

    paths = locate(model)
    if is_adapter_folder(paths.model_dir):
        from peft import PeftModel
        from transformers import AutoTokenizer

        from strop.models import LoadedModel

        base_name = base or adapter_base(paths.model_dir)
        base_loaded = load(base_name, dtype=dtype, progress=progress)
        network = PeftModel.from_pretrained(base_loaded.model, paths.model_dir)
        network.eval()
        tokenizer = base_loaded.tokenizer
        if (paths.model_dir / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(paths.model_dir)
        tuned = LoadedModel(ModelSource(model, "local", str(paths.model_dir)), network,
                            tokenizer, paths.model_dir)
        return base_loaded, tuned, paths
    manifest = paths.manifest() or {}
    base_name = base or manifest.get("base_model")
    if not base_name:
        raise ValueError(f"'{model}' is a full model with no manifest naming its base: pass "
                         "--base")
    tuned = load(str(paths.model_dir), dtype=dtype, progress=progress)
    tuned.source = ModelSource(model, "local", str(paths.model_dir))
    return load(base_name, dtype=dtype, progress=progress), tuned, paths


def evaluate_tuned_model(model: str, base: str | None = None, data_path=None,
                         suites=("retention", "hallucination"), limit: int | None = None,
                         max_new_tokens: int = 64, dtype: str = "float32", progress=None,
                         save: bool = True, name: str | None = None):
    """Load a tuned model and its base, evaluate, and (with `save`) write evaluation.json and
    evaluation.png beside the job. What the worker calls after a job succeeds, with `name` the
    ft: name to label the tuned model by."""
    from strop.evaluate.charts import plot_comparison
    from strop.evaluate.compare import evaluate_models

    from strop.models import ModelSource

    base_model, tuned_model, paths = load_pair(model, base, dtype, progress)
    if name:  # how results and charts label the tuned model, e.g. its ft: name
        tuned_model.source = ModelSource(name, tuned_model.source.kind,
                                         tuned_model.source.location)
    manifest = paths.manifest() or {}
    if data_path is None:  # the job's own held-out data: its validation file or split
        data_path = next((manifest[key] for key in ("validation_file", "held_out_file")
                          if manifest.get(key) and Path(manifest[key]).is_file()), None)
    result = evaluate_models(base_model, tuned_model, data_path=data_path, suites=suites,
                             max_new_tokens=max_new_tokens, limit=limit, progress=progress)
    if save:
        result.save(paths.evaluation_path)
        plot_comparison(result, paths.evaluation_path.with_suffix(".png"))
    return result, paths
