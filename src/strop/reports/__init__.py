"""Documents people read about a tuned model, written from its manifest, evaluation and audit
records: `model_card` (Hugging Face's format), `annex_iv` (technical documentation after Annex
IV of the EU AI Act), `lineage` (where a model came from and went), `evaluation_table` (the
base-vs-tuned rows they share), `document` (one set of blocks written as Markdown and HTML) and
`auditor_package` (all of it for one model, as `strop report` writes it).

Kept apart from `strop.audit`, which every route calls on the hot path: these pull in the
evaluation and plotting code, so callers import them only when they write a report.
"""
