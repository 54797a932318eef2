"""Names and places from a spaCy pipeline's named-entity recognizer, for `--ner`.

spaCy (the `ner` extra) is on the package index; its trained pipelines are not: they are
published as GitHub release files (`python -m spacy download en_core_web_sm` fetches one), so
a machine that reaches only the package index cannot get one, and strop does not download one.
Any installed pipeline with an `ner` component works (a package such as en_core_web_sm, or a
folder saved with `nlp.to_disk`), not only the English web models.
"""

from __future__ import annotations

from typing import Callable

# spaCy's labels (OntoNotes scheme) -> strop's entity types
LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION",
          "FAC": "LOCATION"}
SCORE = 0.55  # below the checksum detectors: a card number inside a "name" stays a card

MISSING = ("Name and address detection (--ner) needs a spaCy pipeline with a named-entity "
           "recognizer, and none is installed. spaCy's pipelines are not on the Python package "
           "index: they are downloaded from GitHub (`python -m spacy download en_core_web_sm`, "
           "on a machine that can reach it, then copy the wheel), so strop cannot install one "
           "for you. Without --ner, names and street addresses are not scanned and the report "
           "says so.")


def installed_pipeline() -> str | None:
    """The name of an installed spaCy pipeline package with an NER component, if any."""
    try:
        import spacy.util
    except ImportError:
        return None
    for name in sorted(spacy.util.get_installed_models()):
        meta = spacy.util.get_package_meta(name) if hasattr(spacy.util, "get_package_meta") \
            else {}
        if "ner" in (meta.get("pipeline") or ["ner"]):
            return name
    return None


def load_ner(pipeline: str | None = None) -> Callable[[str], list[tuple[str, int, int, float]]]:
    """text -> [(entity type, start, end, score)] of its people and places, from `pipeline`
    (a package name or folder; default: the installed one). ValueError when there is none."""
    try:
        import spacy
    except ImportError:
        raise ValueError(MISSING) from None
    pipeline = pipeline or installed_pipeline()
    if pipeline is None:
        raise ValueError(MISSING)
    nlp = spacy.load(pipeline)
    if "ner" not in nlp.pipe_names and "entity_ruler" not in nlp.pipe_names:
        raise ValueError(f"The spaCy pipeline {pipeline!r} has no named-entity recognizer.")
    keep = {"ner", "entity_ruler", "tok2vec", "transformer"}
    disabled = [name for name in nlp.pipe_names if name not in keep]

    def find(text: str) -> list[tuple[str, int, int, float]]:
        with nlp.select_pipes(disable=disabled):
            doc = nlp(text)
        return [(LABELS[ent.label_], ent.start_char, ent.end_char, SCORE) for ent in doc.ents
                if ent.label_ in LABELS]

    return find
