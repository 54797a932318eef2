"""Finding and redacting personal data, offline and without a language model by default.

The detectors (`pii_detectors`) propose candidates with loose patterns and decide with
checksums, validators and the words around: phone numbers by phonenumbers, cards, IBANs, SSNs
and Bitcoin addresses by python-stdnum, domains by tldextract's bundled suffix list, dates of
birth by a birth word before the date. Names and street addresses need a language model:
`ner=True` adds them from an installed spaCy pipeline (`pii_ner`); without one the report says
they were not scanned.

Speed: a pre-filter per entity type (an '@', a run of seven digits, a dotted quad, a birth
word, ...) decides which detectors can possibly match a text, so most texts run none.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Literal

from strop.data import pii_detectors
from strop.data.pii_ner import load_ner

Policy = Literal["report", "mask", "pseudonymize", "hash"]
POLICIES = ("report", "mask", "pseudonymize", "hash")

ENTITIES = tuple(entity for entity, _ in pii_detectors.DETECTORS)
NER_ENTITIES = ("PERSON", "LOCATION")
NOT_SCANNED_NOTICE = ("Names and street addresses were not scanned: that needs a language "
                      "model (--ner with a spaCy pipeline installed); only pattern, checksum "
                      "and context detectors ran.")
# Entity type -> fewest digits in a run of its detector's match (a run: digits joined by at
# most 3 of the separators below), so a text with shorter runs cannot match.
MIN_DIGITS = {"PHONE_NUMBER": pii_detectors.MIN_PHONE_DIGITS, "US_SSN": 9, "CREDIT_CARD": 12}
_DIGIT_RUN = re.compile(r"\d(?:[\s()./+-]{0,3}\d)*")
_WWW = re.compile(r"www\.", re.IGNORECASE)
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d")
_IPV6 = re.compile(r"[0-9a-f]{0,4}:[0-9a-f]{0,4}:", re.IGNORECASE)
_IBAN = re.compile(r"[A-Za-z]{2}\d{2}")
_AT = re.compile(r"@|\bat\b", re.IGNORECASE)
_DETECTOR = dict(pii_detectors.DETECTORS)


def prefilter(text: str) -> set[str]:
    """Entity types whose detector could match somewhere in `text`."""
    found = set()
    if _AT.search(text):
        found.add("EMAIL_ADDRESS")
    if "." in text and ("/" in text or _WWW.search(text)):
        found.add("URL")
    if ":" in text and _IPV6.search(text):
        found.add("IP_ADDRESS")
    if pii_detectors.CRYPTO_PATTERN.search(text):
        found.add("CRYPTO")
    most = 0
    runs = _DIGIT_RUN.findall(text)
    for run in runs:
        if len(run) >= 7:
            most = max(most, sum(ch.isdigit() for ch in run))
    for entity, digits in MIN_DIGITS.items():
        if most >= digits:
            found.add(entity)
    if runs:  # the remaining detectors all need a digit
        if "." in text and _IPV4.search(text):
            found.add("IP_ADDRESS")
        if _IBAN.search(text):
            found.add("IBAN_CODE")
        if pii_detectors.BIRTH_WORDS.search(text):
            found.add("DATE_OF_BIRTH")
    return found


@dataclass(frozen=True, slots=True)
class Finding:
    entity_type: str
    start: int
    end: int
    score: float


def _normalise_value(entity_type: str, value: str) -> str:
    """So that the same person's data gets the same pseudonym however it was typed."""
    if entity_type in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return value.strip().lower()


class PiiRedactor:
    """Finds entities in texts and rewrites them according to a policy.

    One instance per file: pseudonyms are consistent across every text it sees.
    """

    def __init__(self, policy: Policy = "mask", entities: tuple[str, ...] | None = None,
                 score_threshold: float = 0.4, ner: bool | str = False,
                 hash_key: bytes | None = None, prefilter: bool = True):
        if policy not in POLICIES:
            raise ValueError(f"Unknown PII policy {policy!r}; use one of {', '.join(POLICIES)}.")
        self.policy = policy
        self.entities = tuple(entities or ENTITIES) + (NER_ENTITIES if ner else ())
        unknown = set(self.entities) - set(ENTITIES) - set(NER_ENTITIES)
        if unknown:
            raise ValueError(f"Unknown entity types {sorted(unknown)}; known: "
                             f"{', '.join(ENTITIES + NER_ENTITIES)}.")
        self.score_threshold = score_threshold
        self.prefilter = prefilter
        # a spaCy pipeline: installed (ner=True) or named (a package or folder)
        self.ner = load_ner(None if ner is True else ner) if ner else None
        self.not_scanned = () if self.ner else NER_ENTITIES
        # A random key per run unless given: hashes stay consistent within a file but cannot be
        # reversed by hashing guessed phone numbers, nor linked across runs.
        self._hash_key = hash_key or secrets.token_bytes(32)
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}

    def candidate_entities(self, text: str) -> list[str]:
        """Entity types whose detector could match somewhere in `text` (the pattern ones;
        names and places, when asked for, are looked for in every text)."""
        if not self.prefilter:
            return [name for name in self.entities if name in _DETECTOR]
        found = prefilter(text)
        return [name for name in self.entities if name in found]

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, highest score winning an overlap."""
        spans = [span for entity in self.candidate_entities(text)
                 for span in _DETECTOR[entity](text)]
        if self.ner is not None:
            spans += [span for span in self.ner(text) if span[0] in self.entities]
        chosen: list[Finding] = []
        for entity, start, end, score in sorted(spans, key=lambda s: (-s[3], s[1] - s[2], s[1])):
            if score >= self.score_threshold and all(end <= kept.start or start >= kept.end
                                                     for kept in chosen):
                chosen.append(Finding(entity, start, end, score))
        return sorted(chosen, key=lambda f: f.start)

    def replacement(self, entity_type: str, value: str) -> str:
        if self.policy == "mask":
            return f"<{entity_type}>"
        if self.policy == "hash":
            digest = hmac.new(self._hash_key, _normalise_value(entity_type, value).encode(),
                              hashlib.sha256).hexdigest()[:12]
            return f"<{entity_type}:{digest}>"
        key = (entity_type, _normalise_value(entity_type, value))
        if key not in self._pseudonyms:
            self._counters[entity_type] = self._counters.get(entity_type, 0) + 1
            self._pseudonyms[key] = f"<{entity_type}_{self._counters[entity_type]}>"
        return self._pseudonyms[key]

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        """(`text` with findings replaced per policy, the findings). "report" keeps the text."""
        findings = self.find(text)
        if not findings or self.policy == "report":
            return text, findings
        parts, cursor = [], 0
        for finding in findings:
            parts.append(text[cursor:finding.start])
            parts.append(self.replacement(finding.entity_type, text[finding.start:finding.end]))
            cursor = finding.end
        parts.append(text[cursor:])
        return "".join(parts), findings


def map_texts(record: dict, kind: str, rewrite: Callable[[str, str], str]) -> dict:
    """A copy of `record` with every free-text field passed through rewrite(text, where).

    Covers message contents (strings and text parts), tool-call arguments, prompt/completion,
    preference outputs and plain text; structure and other fields are kept as they are.
    """
    if kind == "prompt_completion":
        return {**record, "prompt": rewrite(record["prompt"], "prompt"),
                "completion": rewrite(record["completion"], "completion")}
    if kind == "text":
        return {**record, "text": rewrite(record["text"], "text")}
    if kind == "chat":
        return {**record, "messages": _map_messages(record["messages"], "messages", rewrite)}
    copy = dict(record)
    copy["input"] = {**record["input"], "messages": _map_messages(
        record["input"]["messages"], "input.messages", rewrite)}
    for key in ("preferred_output", "non_preferred_output", "preferred_completion",
                "non_preferred_completion"):
        if key in record:
            value = record[key]
            copy[key] = (rewrite(value, key) if isinstance(value, str)
                         else _map_messages(value, key, rewrite))
    return copy


def _map_messages(messages: list, param: str, rewrite) -> list:
    mapped = []
    for index, message in enumerate(messages):
        where = f"{param}[{index}]"
        message = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = rewrite(content, f"{where}.content")
        elif isinstance(content, list):
            message["content"] = [{**part, "text": rewrite(part["text"], f"{where}.content[{i}]")}
                                  for i, part in enumerate(content)]
        if message.get("tool_calls"):
            message["tool_calls"] = [_map_call(call, f"{where}.tool_calls[{i}]", rewrite)
                                     for i, call in enumerate(message["tool_calls"])]
        mapped.append(message)
    return mapped


def _map_call(call: dict, where: str, rewrite) -> dict:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    # Replacements contain no quotes or backslashes, so arguments stay valid JSON.
    return {**call, "function": {**function, "arguments": rewrite(function["arguments"],
                                                                  f"{where}.function.arguments")}}
