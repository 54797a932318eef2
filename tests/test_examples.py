"""The committed example datasets: well-formed, held out properly, planted flaws where documented.

Standard library only, so these run without torch. Similarity is recomputed here rather than
imported from the generator, so a bug there cannot hide itself.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SUPPORT = EXAMPLES / "support"
COUNTS = {"support": (300, 40), "json-extraction": (200, 30), "preference": (120, 20)}
ACCIDENTAL_LIMIT = 0.5
PLANTED_NEAR_MIN = 0.88


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            pytest.fail(f"{path}:{number} is not JSON: {error}")
        assert isinstance(record, dict), f"{path}:{number} is not an object"
        records.append(record)
    return records


def data(name: str, split: str) -> list[dict]:
    return read_jsonl(EXAMPLES / name / f"{split}.jsonl")


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key in sorted(value) for s in strings(value[key])]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def normalized(record: dict) -> str:
    return " ".join("\n".join(strings(record)).lower().split())


def trigrams(text: str) -> frozenset:
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    return frozenset(" ".join(tokens[i:i + 3]) for i in range(max(len(tokens) - 2, 1)))


def similarity(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


def user_message(record: dict) -> str:
    messages = record["messages"] if "messages" in record else record["input"]["messages"]
    return next(m["content"] for m in messages if m["role"] == "user")


@pytest.fixture(scope="module")
def planted() -> dict:
    return json.loads((SUPPORT / "planted.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def questions() -> dict:
    return json.loads((SUPPORT / "questions.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_line_parses_and_the_counts_match(name):
    train, validation = data(name, "train"), data(name, "validation")
    assert (len(train), len(validation)) == COUNTS[name]
    readme = (EXAMPLES / name / "README.md").read_text(encoding="utf-8")
    assert f"{COUNTS[name][0]} examples" in readme and f"{COUNTS[name][1]} held-out examples" in readme
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert f"| {COUNTS[name][0]} | {COUNTS[name][1]} |" in index


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_validation_is_disjoint_from_train_and_has_no_near_duplicates_of_it(name):
    train, validation = data(name, "train"), data(name, "validation")
    assert not {normalized(r) for r in train} & {normalized(r) for r in validation}
    train_grams = [trigrams("\n".join(strings(r))) for r in train]
    for number, record in enumerate(validation, 1):
        grams = trigrams("\n".join(strings(record)))
        closest = max(similarity(grams, other) for other in train_grams)
        assert closest < ACCIDENTAL_LIMIT, f"{name} validation line {number} resembles a training example"


def test_support_train_holds_exactly_the_planted_duplicates(planted):
    train = data("support", "train")
    exact = {(e["duplicate_of"], e["line"]) for e in planted["exact_duplicates"]}
    near = {(e["near_duplicate_of"], e["line"]) for e in planted["near_duplicates"]}
    assert len(exact) == 10 and len(near) == 10
    assert {e["variant"] for e in planted["exact_duplicates"]} == {
        "verbatim copy", "user message in different letter case", "extra spaces inside the user message"}
    # Some exact duplicates differ in bytes, so only normalisation finds them.
    assert sum(json.dumps(train[a - 1]) != json.dumps(train[b - 1]) for a, b in exact) >= 5

    grams = [trigrams("\n".join(strings(r))) for r in train]
    keys = [normalized(r) for r in train]
    for first, second in itertools.combinations(range(1, len(train) + 1), 2):
        same = keys[first - 1] == keys[second - 1]
        score = similarity(grams[first - 1], grams[second - 1])
        if (first, second) in exact:
            assert same, f"lines {first} and {second} should normalise to the same text"
        elif (first, second) in near:
            assert not same and score >= PLANTED_NEAR_MIN, f"lines {first} and {second}: {score:.2f}"
        else:
            assert not same and score < ACCIDENTAL_LIMIT, f"unplanned near duplicate: lines {first}, {second}"


def test_support_validation_has_no_duplicates():
    validation = data("support", "validation")
    grams = [trigrams("\n".join(strings(r))) for r in validation]
    for a, b in itertools.combinations(range(len(validation)), 2):
        assert similarity(grams[a], grams[b]) < ACCIDENTAL_LIMIT, f"validation lines {a + 1} and {b + 1}"


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
PHONE = re.compile(r"(?:\+\d{1,2}[ .-]?)?\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
DIGIT_RUN = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def personal_data(text: str) -> list[tuple[str, str]]:
    found = [("EMAIL_ADDRESS", m) for m in EMAIL.findall(text)]
    found += [("IP_ADDRESS", m) for m in IPV4.findall(text)]
    found += [("PHONE_NUMBER", m) for m in PHONE.findall(text)]
    found += [("IBAN_CODE", m) for m in IBAN.findall(text)]
    found += [("CREDIT_CARD", m) for m in DIGIT_RUN.findall(text) if luhn_valid(re.sub(r"\D", "", m))]
    return found


def test_planted_personal_data_is_in_train_where_documented_and_nowhere_else(planted):
    train = data("support", "train")
    pii = planted["pii"]
    assert {e["entity"] for e in pii} == {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"}
    assert sum(e["entity"] == "CREDIT_CARD" for e in pii) >= 3
    assert any(e["echoed_by_assistant"] for e in pii)
    emails = [e["value"] for e in pii if e["entity"] == "EMAIL_ADDRESS"]
    assert len(emails) > len(set(emails)), "one email should recur, to show consistent pseudonyms"
    for entry in pii:
        record = train[entry["line"] - 1]
        assert entry["value"] in user_message(record), entry
        assert (entry["value"] in record["messages"][-1]["content"]) == entry["echoed_by_assistant"], entry
        if entry["entity"] == "CREDIT_CARD":
            assert luhn_valid(re.sub(r"\D", "", entry["value"])), entry
        if entry["entity"] == "PHONE_NUMBER":
            assert "555" in entry["value"], "phone numbers come from the fictional 555 block"

    documented_lines = {e["line"] for e in pii}
    for number, record in enumerate(train, 1):
        found = personal_data("\n".join(strings(record)))
        if number in documented_lines:
            assert found, f"line {number} should carry personal data"
        else:
            assert not found, f"line {number} has undocumented personal data: {found}"


@pytest.mark.parametrize("name, split", [("support", "validation"), ("json-extraction", "train"),
                                         ("json-extraction", "validation"), ("preference", "train"),
                                         ("preference", "validation")])
def test_only_the_support_training_file_carries_personal_data(name, split):
    for number, record in enumerate(data(name, split), 1):
        assert not personal_data("\n".join(strings(record))), f"{name}/{split} line {number}"


def test_the_generator_is_deterministic(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*")
                       if p.is_file() and p.name != "make_examples.py" and "__pycache__" not in p.parts)
    assert written == committed
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (EXAMPLES / relative).read_bytes(), relative


def test_every_support_reply_speaks_in_the_brand_voice(questions):
    greeting, sign_off = questions["voice"]["greeting"], questions["voice"]["sign_off"]
    for split in ("train", "validation"):
        for number, record in enumerate(data("support", split), 1):
            roles = [m["role"] for m in record["messages"]]
            assert roles == ["system", "user", "assistant"], f"{split} line {number}"
            reply = record["messages"][-1]["content"].strip()
            assert reply.startswith(greeting) and reply.endswith(sign_off), f"{split} line {number}"
            assert 20 <= len(reply.split()) <= 65, f"{split} line {number}: {len(reply.split())} words"
            system = record["messages"][0]["content"]
            assert system == questions["system"]
            voice_words = set(re.findall(r"\w+", f"{greeting} {sign_off}".lower())) - {"at", "fernhollow", "outfitters"}
            assert not voice_words & set(re.findall(r"\w+", system.lower())), "the system prompt gives the voice away"


def test_demo_questions_are_unseen(questions):
    assert len(questions["questions"]) == 5
    assert len({q["topic"] for q in questions["questions"]}) == 5
    users = [user_message(r) for name in ("support", "preference") for split in ("train", "validation")
             for r in data(name, split)]
    user_grams = [trigrams(u) for u in users]
    for question in questions["questions"]:
        text = " ".join(question["content"].lower().split())
        assert not any(text in " ".join(u.lower().split()) for u in users), question["content"]
        closest = max(similarity(trigrams(question["content"]), grams) for grams in user_grams)
        assert closest < ACCIDENTAL_LIMIT, question["content"]


def test_extraction_answers_are_compact_json_in_the_fixed_shape():
    issues = {"damaged", "defective", "wrong_item", "wrong_size", "late", "missing_part", "billing"}
    seen_urgency, seen_null = set(), False
    for split in ("train", "validation"):
        for number, record in enumerate(data("json-extraction", split), 1):
            answer = record["messages"][-1]["content"]
            parsed = json.loads(answer)
            assert list(parsed) == ["product", "issue", "urgency"], f"{split} line {number}"
            assert json.dumps(parsed, separators=(",", ":")) == answer, f"{split} line {number} is not compact"
            assert parsed["issue"] in issues and parsed["urgency"] in {"low", "medium", "high"}
            if parsed["product"] is None:
                seen_null = True
            else:
                assert parsed["product"].lower() in user_message(record).lower(), f"{split} line {number}"
            seen_urgency.add(parsed["urgency"])
    assert seen_urgency == {"low", "medium", "high"} and seen_null


def test_preference_pairs_prefer_the_concise_voice(questions):
    greeting, sign_off = questions["voice"]["greeting"], questions["voice"]["sign_off"]
    support_held_out = {" ".join(user_message(r).lower().split()) for r in data("support", "validation")}
    prompts = {}
    for split in ("train", "validation"):
        prompts[split] = set()
        for number, record in enumerate(data("preference", split), 1):
            assert set(record) == {"input", "preferred_output", "non_preferred_output"}
            assert record["input"]["messages"][-1]["role"] == "user"
            preferred = record["preferred_output"][0]
            rejected = record["non_preferred_output"][0]
            assert preferred["role"] == rejected["role"] == "assistant"
            assert preferred["content"].startswith(greeting) and preferred["content"].endswith(sign_off)
            assert len(preferred["content"].split()) <= 65 and preferred["content"] != rejected["content"]
            prompt = " ".join(user_message(record).lower().split())
            assert prompt not in support_held_out, f"preference {split} line {number} is a support validation prompt"
            prompts[split].add(prompt)
    assert not prompts["train"] & prompts["validation"]
