"""Finding and redacting personal data with Microsoft Presidio, offline.

The analyzer runs Presidio's pattern recognizers on a no-op NLP engine, so nothing is downloaded
and no spaCy model is needed. Presidio's email recognizer validates domains with tldextract,
whose default extractor fetches the public suffix list over the network on first use; strop
hands it an extractor that reads only the snapshot bundled with tldextract.

Speed: Presidio costs about a millisecond per message even when there is nothing to find. Each
recognizer here has a cheap pre-filter regex that matches a superset of what the recognizer can
match (an '@' for email, a run of seven digits for a phone number, ...), and Presidio runs only
the recognizers whose pre-filter fired, only on the texts where it fired.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Literal

Policy = Literal["report", "mask", "pseudonymize", "hash"]
POLICIES = ("report", "mask", "pseudonymize", "hash")

# Entity type -> a test that is true wherever that recognizer could match (a superset, never a
# subset: tests/test_data_clean.py checks each against real samples). Digit counts come from
# runs of digits joined by the separators Presidio's patterns and phonenumbers accept.
ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
            "URL", "CRYPTO")
MIN_DIGITS = {"PHONE_NUMBER": 7, "US_SSN": 9, "CREDIT_CARD": 12}  # phonenumbers finds no
# shorter number in Presidio's default regions (tested); SSNs have 9 digits, cards 12 to 19
NER_ENTITIES = ("PERSON", "LOCATION")
_DIGIT_RUN = re.compile(r"\d(?:[\s()./+-]{0,3}\d)*")
_URL = re.compile(r"[a-z0-9.-]\.[a-z]{2,}", re.IGNORECASE)
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d")
_IPV6 = re.compile(r"[0-9a-f]{0,4}:[0-9a-f]{0,4}:", re.IGNORECASE)
_IBAN = re.compile(r"[A-Z]{2}\d{2}")  # Presidio's IBAN pattern is upper-case only
_CRYPTO = re.compile(r"(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25}", re.IGNORECASE)


def prefilter(text: str) -> set[str]:
    """Entity types whose recognizer could match somewhere in `text`."""
    found = set()
    if "@" in text:
        found.add("EMAIL_ADDRESS")
    if "." in text and _URL.search(text):
        found.add("URL")
    if ":" in text and _IPV6.search(text):
        found.add("IP_ADDRESS")
    most = 0
    runs = _DIGIT_RUN.findall(text)
    for run in runs:
        if len(run) >= 7:
            most = max(most, sum(ch.isdigit() for ch in run))
    for entity, digits in MIN_DIGITS.items():
        if most >= digits:
            found.add(entity)
    if runs:  # the remaining patterns all contain a digit
        if "." in text and _IPV4.search(text):
            found.add("IP_ADDRESS")
        if _IBAN.search(text):
            found.add("IBAN_CODE")
        if len(text) >= 26 and _CRYPTO.search(text):
            found.add("CRYPTO")
    return found


def _offline_email_recognizer():
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No suffix-list URLs and no cache directory: tldextract uses its bundled snapshot only.
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()


def installed_spacy_model() -> str | None:
    import spacy.util

    for name in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf"):
        if spacy.util.is_package(name):
            return name
    return None


def build_analyzer(ner: bool = False):
    """A Presidio AnalyzerEngine with strop's offline recognizers (NER only when asked)."""
    import warnings

    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider, NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer, CryptoRecognizer, IbanRecognizer, IpRecognizer, PhoneRecognizer,
        UrlRecognizer, UsSsnRecognizer,
    )

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (_offline_email_recognizer(), PhoneRecognizer(), CreditCardRecognizer(),
                       UsSsnRecognizer(), IbanRecognizer(), IpRecognizer(), UrlRecognizer(),
                       CryptoRecognizer()):
        registry.add_recognizer(recognizer)
    if ner:
        model = installed_spacy_model()
        if model is None:
            raise ValueError("Name detection (NER) needs a spaCy English model, and none is "
                             "installed: `pip install en_core_web_sm` (or _md/_lg), or run "
                             "without --ner to use the pattern recognizers only.")
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}],
        }).create_engine()
        registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    else:
        engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    with warnings.catch_warnings():  # "context words unavailable with NoOpNlpEngine": known
        warnings.simplefilter("ignore")
        return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


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
                 score_threshold: float = 0.4, ner: bool = False, hash_key: bytes | None = None,
                 prefilter: bool = True):
        if policy not in POLICIES:
            raise ValueError(f"Unknown PII policy {policy!r}; use one of {', '.join(POLICIES)}.")
        self.policy = policy
        self.entities = tuple(entities or ENTITIES) + (NER_ENTITIES if ner else ())
        unknown = set(self.entities) - set(ENTITIES) - set(NER_ENTITIES)
        if unknown:
            raise ValueError(f"Unknown entity types {sorted(unknown)}; known: "
                             f"{', '.join(ENTITIES + NER_ENTITIES)}.")
        self.score_threshold = score_threshold
        self.ner = ner
        self.prefilter = prefilter and not ner  # names have no pattern to pre-filter on
        # A random key per run unless given: hashes stay consistent within a file but cannot be
        # reversed by hashing guessed phone numbers, nor linked across runs.
        self._hash_key = hash_key or secrets.token_bytes(32)
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}
        self.analyzer = build_analyzer(ner)

    def candidate_entities(self, text: str) -> list[str]:
        """Entity types whose recognizer could match somewhere in `text`."""
        if not self.prefilter:
            return list(self.entities)
        found = prefilter(text)
        return [name for name in self.entities if name in found]

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, highest score winning an overlap."""
        entities = self.candidate_entities(text)
        if not entities:
            return []
        results = self.analyzer.analyze(text, language="en", entities=entities,
                                        score_threshold=self.score_threshold)
        chosen: list[Finding] = []
        for result in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
            if all(result.end <= kept.start or result.start >= kept.end for kept in chosen):
                chosen.append(Finding(result.entity_type, result.start, result.end, result.score))
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
