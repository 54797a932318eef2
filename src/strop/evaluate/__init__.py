"""Evaluation: held-out task metrics, capability retention and hallucination, base vs tuned,
every number with a 95% interval."""

from strop.evaluate.backends import EndpointModel, LocalModel
from strop.evaluate.charts import plot_comparison, plot_loss_curves, read_results_csv
from strop.evaluate.compare import (
    Comparison,
    EvaluationResult,
    as_result,
    evaluate_models,
    load_task_examples,
)
from strop.evaluate.stats import Estimate
from strop.evaluate.suite import SuiteError, load_suite

__all__ = ["Comparison", "EndpointModel", "Estimate", "EvaluationResult", "LocalModel",
           "SuiteError", "as_result", "evaluate_models", "load_suite", "load_task_examples",
           "plot_comparison", "plot_loss_curves", "read_results_csv"]
