"""Evaluate a tuned model, named as users name it, against its base, and keep the result
beside the run that made it: what `strop eval` and the worker after a job call."""

from __future__ import annotations

from pathlib import Path

from strop.evaluate.backends import LocalModel
from strop.serving import Engine, ModelNotFoundError, ServedModel
from strop.serving.resolver import served_folder
from strop.settings import ServingSettings
from strop.store.served import TunedModelPaths, locate


def served_pair(paths: TunedModelPaths, base: str | None = None) -> tuple[ServedModel, ServedModel]:
    """What to serve as the base and as the tuned model. `base` overrides the base model (by
    default the adapter's own, or for a full fine-tuned model the one its manifest names)."""
    tuned = served_folder(paths.model_dir, base=base, job_id=paths.job_id)
    if tuned.adapter_dir is not None:
        return ServedModel(tuned.base), tuned
    base = base or (paths.manifest() or {}).get("base_model")
    if not base:
        raise ValueError(f"'{paths.name}' is a full model with no manifest naming its base: "
                         "pass --base")
    return ServedModel(base), tuned


def evaluate_tuned_model(settings, model: str, base: str | None = None, data_path=None,
                         suites=("retention", "hallucination"), limit: int | None = None,
                         max_new_tokens: int = 64, dtype: str | None = None, progress=None,
                         save: bool = True, name: str | None = None):
    """Serve a tuned model and its base from one engine, evaluate, and (with `save`) write
    evaluation.json and evaluation.png beside the job. `settings` (strop.settings.Settings)
    say where ft: names are looked up and how models are served; `dtype` overrides the serving
    precision; `name` labels the tuned model in the results (e.g. its ft: name). Returns the
    result and the tuned model's paths."""
    from strop.evaluate.charts import plot_comparison
    from strop.evaluate.compare import evaluate_models

    paths = locate(model, settings)
    base_served, tuned_served = served_pair(paths, base)
    served = {"base": base_served, "tuned": tuned_served}

    def resolve(requested: str, organization: str | None) -> ServedModel:
        if requested not in served:
            raise ModelNotFoundError(requested)
        return served[requested]

    serving = settings.serving
    if dtype is not None:
        serving = ServingSettings(**{**serving.model_dump(), "dtype": dtype})  # checked
    engine = Engine(resolve, serving, progress=progress)
    manifest = paths.manifest() or {}
    if data_path is None:  # the job's own held-out data: its validation file or split
        data_path = next((manifest[key] for key in ("validation_file", "held_out_file")
                          if manifest.get(key) and Path(manifest[key]).is_file()), None)
    result = evaluate_models(LocalModel(engine, "base", label=base_served.base),
                             LocalModel(engine, "tuned", label=name or model),
                             data_path=data_path, suites=suites, max_new_tokens=max_new_tokens,
                             limit=limit, progress=progress)
    if save:
        result.save(paths.evaluation_path)
        plot_comparison(result, paths.evaluation_path.with_suffix(".png"))
    return result, paths
