"""PII detection without a language model: the goals on a seeded Faker set (a seed the docs'
table does not use), the cases Presidio's patterns missed or over-matched, names and places
from a spaCy pipeline, and a report that says what was not scanned."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strop.data import clean_file, pii_ner
from strop.data.pii import NOT_SCANNED_NOTICE, PiiRedactor

BENCH = Path(__file__).resolve().parents[1] / "bench" / "pii.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_pii", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_goal_is_met_on_a_seed_the_docs_do_not_report():
    bench = _bench()
    samples, clean = bench.pii_samples(5, 1_800), bench.clean_samples(5, 800)
    result = bench.score(bench.strop_finder(), samples, clean)
    for kind, goal in bench.GOALS.items():
        assert result["recall"][kind] >= goal, (kind, result["misses"][kind][:10])
    assert result["changed"] <= bench.NON_PII_CHANGED_GOAL, result["false_positives"][:10]


FOUND = [
    ("write to maria.lopez at gmail dot com please", "EMAIL_ADDRESS", "maria.lopez at gmail dot com"),
    ("mail: k.weber [at] web [dot] de", "EMAIL_ADDRESS", "k.weber [at] web [dot] de"),
    ("My SSN is 536228726.", "US_SSN", "536228726"),
    ("Card 2223 0000 4840 0011 was declined", "CREDIT_CARD", "2223 0000 4840 0011"),  # 2-series MC
    ("Maestro 6759 6498 2643 8453 on file", "CREDIT_CARD", "6759 6498 2643 8453"),
    ("Diners 3056-930902-5904 expired", "CREDIT_CARD", "3056-930902-5904"),  # 14 digits
    ("old visa 4222222222222 here", "CREDIT_CARD", "4222222222222"),  # 13 digits
    ("iban gb82 west 1234 5698 7654 32, thanks", "IBAN_CODE", "gb82 west 1234 5698 7654 32"),
    ("I was born on 12 March 1985 in Leeds.", "DATE_OF_BIRTH", "12 March 1985"),
    ("Geburtsdatum: 03.07.1962", "DATE_OF_BIRTH", "03.07.1962"),
    ("Appelez-moi au 04 42 85 31 94, merci.", "PHONE_NUMBER", "04 42 85 31 94"),
    ("Call me on 783-339-6947x751 after six.", "PHONE_NUMBER", "783-339-6947x751"),
    ("logged in from 203.0.113.7 today", "IP_ADDRESS", "203.0.113.7"),
]

NOT_FOUND = [
    "See ISBN 978-0-306-40615-7 for the reference edition.",
    "ISBN-10: 0-306-40615-2",
    "Upgrade to version 1.2.3.4 before Friday.",
    "Use `df.groupby('region').sum()` and then `os.path.join(root, name)`.",
    "The invoice is dated 12 March 2021.",  # a date, but nobody's birth
    "Reference 4111 1111 1111 1112 was rejected.",  # fails Luhn
    "Order 9041300 shipped on 12/27/2020.",
    "Unix time 1669003108 marks the cut-over.",
    "Meet me at the station at noon.",
]


@pytest.mark.parametrize("text,entity,value", FOUND)
def test_what_presidios_patterns_missed_is_found(text, entity, value):
    findings = PiiRedactor("report").find(text)
    assert [(f.entity_type, text[f.start:f.end]) for f in findings] == [(entity, value)]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_checksums_and_context_keep_lookalikes(text):
    assert PiiRedactor("report").find(text) == []


def _chat_file(path: Path, user: str) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"{user} ({i})"},
                          {"role": "assistant", "content": f"Noted, ticket {i}."}]}
            for i in range(10)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_report_says_names_and_addresses_were_not_scanned(tmp_path):
    path = _chat_file(tmp_path / "in.jsonl", "I am Ada Lovelace, mail ada@example.com")
    report = clean_file(path, tmp_path / "out.jsonl", pii="mask")
    assert report.pii_not_scanned == ["PERSON", "LOCATION"]
    saved = json.loads(Path(report.report_path).read_text())
    assert saved["pii_notice"] == NOT_SCANNED_NOTICE and "not scanned" in NOT_SCANNED_NOTICE
    assert "Ada Lovelace" in (tmp_path / "out.jsonl").read_text()  # and indeed it was not

    from strop.cli import app

    printed = CliRunner().invoke(app, ["data", "clean", str(path), "-o",
                                       str(tmp_path / "out2.jsonl")])
    assert printed.exit_code == 0 and "were not scanned" in printed.output


@pytest.fixture
def ruler_pipeline(tmp_path):
    """A spaCy pipeline with an entity ruler, standing in for a trained one (none can be
    installed from the package index)."""
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([
        {"label": "PERSON", "pattern": "Ada Lovelace"}, {"label": "GPE", "pattern": "London"}])
    nlp.to_disk(tmp_path / "pipeline")
    return str(tmp_path / "pipeline")


def test_a_spacy_pipeline_adds_names_and_places(tmp_path, ruler_pipeline):
    redactor = PiiRedactor("mask", ner=ruler_pipeline)
    assert redactor.not_scanned == ()
    text = "Ada Lovelace moved to London; mail ada@example.com"
    assert redactor.redact(text)[0] == "<PERSON> moved to <LOCATION>; mail <EMAIL_ADDRESS>"
    path = _chat_file(tmp_path / "in.jsonl", "I am Ada Lovelace")
    report = clean_file(path, tmp_path / "out.jsonl", pii="mask", ner=ruler_pipeline)
    assert report.pii_counts["PERSON"] == 10 and report.pii_notice is None


def test_ner_without_a_pipeline_says_why_and_how(monkeypatch, tmp_path):
    monkeypatch.setattr(pii_ner, "installed_pipeline", lambda: None)
    with pytest.raises(ValueError, match="not on the Python package index"):
        PiiRedactor("mask", ner=True)
    from strop.cli import app

    path = _chat_file(tmp_path / "in.jsonl", "hello")
    printed = CliRunner().invoke(app, ["data", "clean", str(path), "-o",
                                       str(tmp_path / "out.jsonl"), "--ner"])
    assert printed.exit_code == 2 and "spacy download" in printed.output
