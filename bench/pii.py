"""PII redaction measured on a seeded Faker set: strop against Microsoft Presidio.

    python bench/pii.py [--seeds 0 1] [--texts 2000] [--clean-texts 1000] [--no-presidio]

Builds, per seed, 2,000 texts holding PII values (Faker, locales en_US, en_GB, de_DE, fr_FR;
one value a text, a second one in a quarter of them) and 1,000 PII-looking texts holding none
(ISBNs, four-part versions, code, order numbers, prices, dates without a birth, times, numbers
that fail a card's checksum), then prints per entity type the share of values redacted (every
letter and digit of the value inside a finding), the share of PII-free texts changed, and texts
per second, for strop's `PiiRedactor` (pattern and checksum detectors, no language model) and
for the named baseline, Presidio's AnalyzerEngine with its default recognizers, run in the same
process. No spaCy model can be installed here (none is on the package index), so Presidio runs
on its no-op NLP engine: its name and address recognizers need one, and score 0 (the issue's
table, with a spaCy model: names 78.8%, addresses 64.4%). strop without `--ner` does not scan
names or addresses either, and says so in its report.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR")
TYPES = ("phone", "email", "ssn", "card", "iban", "ip", "person", "address", "date_of_birth")
GOALS = {"phone": 0.99, "email": 0.99, "ssn": 0.99, "card": 0.99, "iban": 0.99, "ip": 0.99,
         "date_of_birth": 0.95}
NON_PII_CHANGED_GOAL = 0.03
CARD_TYPES = ("maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover",
              "diners", "jcb15", "jcb16")

TEMPLATES = {
    "phone": ["Call me on {v} after six.", "My number is {v}.", "You can reach the office at {v}",
              "Tel.: {v}", "Ruf mich bitte unter {v} an.", "Appelez-moi au {v}, merci.",
              "Phone: {v} (mobile)", "text {v} if the parcel is late",
              "Thanks, see you Monday. {v}"],  # no phone word: the grouping must tell
    "email": ["Write to {v} for the invoice.", "my email is {v}", "Contact: {v}",
              "E-Mail: {v}", "send it to {v} please", "Schreiben Sie an {v}.",
              "Mon adresse : {v}"],
    "ssn": ["My SSN is {v}.", "social security number {v}", "SSN: {v}",
            "ssn {v} is on the form", "Her social security no. is {v}, please update it."],
    "card": ["My card {v} was charged twice.", "Card number: {v}, exp 04/27", "Pay with {v}.",
             "Kreditkarte {v} wurde belastet.", "carte bancaire {v}", "the card ending in "
             "nothing, full number {v}"],
    "iban": ["IBAN: {v}", "Please transfer the refund to {v}.", "my account is {v}",
             "Überweisung an {v} bitte.", "virement sur le compte {v}"],
    "ip": ["I logged in from {v}.", "server {v} is down again", "blocked IP {v}",
           "ping {v} and tell me", "requests from {v} failed"],
    "date_of_birth": ["I was born on {v}.", "Date of birth: {v}", "DOB {v}", "born {v} in Leeds",
                      "Geburtsdatum: {v}", "geboren am {v}", "né le {v} à Lyon",
                      "date de naissance : {v}", "my birthday is {v}, and I am",
                      "D.O.B.: {v}"],
    "person": ["My name is {v}.", "Please ask {v} to call back.", "{v} signed the form.",
               "Dear {v}, thanks for your order."],
    "address": ["Ship it to {v}.", "I live at {v}.", "Address: {v}",
                "The parcel should go to {v} instead."],
}
MONTHS = {"en": ["January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December"],
          "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                 "September", "Oktober", "November", "Dezember"],
          "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre"]}
CODE = ["df.groupby('region').sum()", "result = np.array(values).mean()",
        "self.assertEqual(a, b)", "os.path.join(root, name)", "pd.read_csv('data.csv')",
        "import torch.nn as nn", "model.fit(X_train, y_train)", "json.loads(line)",
        "user.profile.save()", "config.py", "setup.cfg", "README.md", "logger.info(msg)",
        "np.linalg.norm(v)", "app.route('/items')", "df.loc[df.age > 30]", "x.shape[0]"]


@dataclass
class Sample:
    text: str
    values: list[tuple[str, int, int]] = field(default_factory=list)  # (type, start, end)


def _group(digits: str, sizes: list[int], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(digits[at:at + size])
        at += size
    if at < len(digits):
        parts.append(digits[at:])
    return sep.join(p for p in parts if p)


def _card(fake, rng: random.Random) -> str:
    number = fake.credit_card_number(rng.choice(CARD_TYPES))
    style = rng.random()
    if style < 0.3:
        return number
    sep = rng.choice([" ", "-"])
    if len(number) == 15:
        return _group(number, [4, 6, 5], sep)
    if len(number) == 14:
        return _group(number, [4, 6, 4], sep)
    return _group(number, [4] * 4, sep)


def _iban(fake, rng: random.Random) -> str:
    value = fake.iban()
    if rng.random() < 0.5:
        value = _group(value, [4] * 8, " ")
    return value.lower() if rng.random() < 0.1 else value


def _email(fake, rng: random.Random) -> str:
    value = fake.email() if rng.random() < 0.6 else fake.free_email()
    if rng.random() < 0.12:  # a person hiding it from scrapers
        user, domain = value.split("@")
        at = rng.choice([" at ", " [at] ", " (at) ", " AT "])
        dot = rng.choice([" dot ", " [dot] ", " (dot) ", " DOT "])
        value = user + at + domain.replace(".", dot)
    return value


def _ssn(fake, rng: random.Random) -> tuple[str, str | None]:
    value = fake.ssn()
    if rng.random() < 0.1:  # bare digits after the word
        return value.replace("-", ""), rng.choice(["SSN {v}", "my SSN is {v}", "SSN#{v}"])
    if rng.random() < 0.1:
        value = value.replace("-", " ")
    return value, None


def _date(rng: random.Random, day, locale: str) -> str:
    lang = locale[:2]
    style = rng.randrange(4)
    if style == 0:
        return day.isoformat()
    if style == 1:
        if locale == "en_US":
            return day.strftime("%m/%d/%Y")
        return day.strftime("%d.%m.%Y" if lang == "de" else "%d/%m/%Y")
    month = MONTHS.get(lang, MONTHS["en"])[day.month - 1]
    if lang == "en" and style == 2 and locale == "en_US":
        return f"{month} {day.day}, {day.year}"
    if lang == "de":
        return f"{day.day}. {month} {day.year}"
    return f"{day.day} {month} {day.year}"


def _value(kind: str, fake, rng: random.Random, locale: str) -> tuple[str, str]:
    """(value, template) of one PII value of `kind`."""
    template = rng.choice(TEMPLATES[kind])
    if kind == "phone":
        return fake.phone_number(), template
    if kind == "email":
        return _email(fake, rng), template
    if kind == "ssn":
        value, bare = _ssn(fake, rng)
        return value, bare or template
    if kind == "card":
        return _card(fake, rng), template
    if kind == "iban":
        return _iban(fake, rng), template
    if kind == "ip":
        return (fake.ipv6() if rng.random() < 0.25 else
                fake.ipv4_public() if rng.random() < 0.7 else fake.ipv4_private()), template
    if kind == "date_of_birth":
        return _date(rng, fake.date_of_birth(minimum_age=18, maximum_age=90), locale), template
    if kind == "person":
        return fake.name(), template
    return fake.address().replace("\n", ", "), template


def _fill(template: str, kind: str, value: str) -> Sample:
    start = template.index("{v}")
    return Sample(template.replace("{v}", value), [(kind, start, start + len(value))])


def pii_samples(seed: int, n: int) -> list[Sample]:
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for locale in LOCALES:
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(seed * 1009 + LOCALES.index(locale))
    us = fakers["en_US"]
    samples = []
    for index in range(n):
        kinds = [TYPES[index % len(TYPES)]]
        if rng.random() < 0.25:
            kinds.append(rng.choice([t for t in TYPES if t != kinds[0]]))
        sample = Sample("")
        for kind in kinds:
            locale = rng.choice(LOCALES)
            fake = us if kind == "ssn" else fakers[locale]  # SSNs are American
            value, template = _value(kind, fake, rng, locale)
            part = _fill(template, kind, value)
            offset = len(sample.text) + (1 if sample.text else 0)
            sample.text = f"{sample.text} {part.text}" if sample.text else part.text
            sample.values += [(k, s + offset, e + offset) for k, s, e in part.values]
        samples.append(sample)
    return samples


def _luhn_invalid(rng: random.Random, length: int) -> str:
    from stdnum import luhn

    digits = str(rng.choice("3456")) + "".join(rng.choice("0123456789") for _ in range(length - 1))
    if luhn.is_valid(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    return digits


def clean_samples(seed: int, n: int) -> list[str]:
    """PII-looking texts without personal data; checksums and context tell them apart."""
    from faker import Faker

    rng = random.Random(seed + 7919)
    fake = Faker("en_US")
    fake.seed_instance(seed + 31)
    import datetime

    def some_date() -> str:
        day = datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(2000))
        return _date(rng, day, rng.choice(LOCALES))

    def version() -> str:
        return ".".join(str(rng.randrange(0, 20 if i else 12)) for i in range(4))

    makers = [
        lambda: f"See ISBN {fake.isbn13()} for the reference edition.",
        lambda: f"ISBN-10: {fake.isbn10()}",
        lambda: f"The book {fake.isbn13().replace('-', '')} is out of stock.",
        lambda: f"Upgrade to version {version()} before Friday.",
        lambda: f"running v{version()} on the staging box",
        lambda: f"build {version()} fixes the crash",
        lambda: f"Release {version()} is tagged.",
        lambda: f"Use `{rng.choice(CODE)}` here, then `{rng.choice(CODE)}`.",
        lambda: f"The error comes from {rng.choice(CODE)} on line {rng.randrange(1, 400)}.",
        lambda: f"Order {rng.randrange(10_000, 9_999_999)} shipped on {some_date()}.",
        lambda: f"Ticket {rng.randrange(1000, 99999)}-{rng.randrange(1, 9)} is open.",
        lambda: f"Invoice INV-{rng.randrange(2015, 2027)}-{rng.randrange(0, 999999):06d} is paid.",
        lambda: f"The total was ${rng.randrange(1, 99999):,}.{rng.randrange(100):02d} incl. tax.",
        lambda: f"Le total est de {rng.randrange(1, 9999)},{rng.randrange(100):02d} €.",
        lambda: f"The invoice is dated {some_date()}.",
        lambda: f"We met on {some_date()} to plan the launch.",
        lambda: f"Delivery expected {some_date()}, between 9:00 and 12:00.",
        lambda: f"The job ran from {rng.randrange(24):02d}:{rng.randrange(60):02d}:"
                f"{rng.randrange(60):02d} to {rng.randrange(24):02d}:{rng.randrange(60):02d}.",
        lambda: f"Reference {_group(_luhn_invalid(rng, 16), [4] * 4, rng.choice(' -'))} "
                "was rejected.",
        lambda: f"Batch {_luhn_invalid(rng, 16)} completed.",
        lambda: f"Coordinates {rng.uniform(-80, 80):.4f}, {rng.uniform(-170, 170):.4f}.",
        lambda: f"Room {rng.randrange(100, 999)}, extension {rng.randrange(1000, 9999)}.",
        lambda: f"commit {rng.getrandbits(28):07x} broke the build",
        lambda: f"The population grew to {rng.randrange(1_000_000, 90_000_000):,} in "
                f"{rng.randrange(1990, 2024)}.",
        lambda: f"Latency p95 was {rng.uniform(1, 500):.1f} ms at {rng.randrange(10, 5000)} "
                "requests per second.",
        # shapes the detectors' context words do not name
        lambda: f"The upload is {rng.randrange(1_000_000, 9_999_999_999)} bytes.",
        lambda: f"Unix time {rng.randrange(1_500_000_000, 1_800_000_000)} marks the cut-over.",
        lambda: f"Box {rng.randrange(1_000_000, 9_999_999)} is in aisle {rng.randrange(1, 40)}.",
        lambda: f"The lottery numbers were {' '.join(str(rng.randrange(1, 50)) for _ in range(6))}.",
        lambda: f"See pages {(a := rng.randrange(1000, 5000))}-{a + rng.randrange(1, 900)} of "
                "the manual.",
        lambda: f"The sensor counted {rng.randrange(1_000_000, 99_999_999)} pulses overnight.",
    ]
    return [rng.choice(makers)() for _ in range(n)]


def _covered(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Every letter and digit of text[start:end] lies inside some span."""
    inside = bytearray(end - start)
    for s, e in spans:
        for i in range(max(s, start), min(e, end)):
            inside[i - start] = 1
    return all(inside[i - start] or not text[i].isalnum() for i in range(start, end))


def score(find, samples: list[Sample], clean: list[str]) -> dict:
    """Recall per type, share of clean texts changed, texts/s of `find(text) -> spans`."""
    started = time.perf_counter()
    found = [find(sample.text) for sample in samples]
    changed = sum(bool(find(text)) for text in clean)
    seconds = time.perf_counter() - started
    hits: dict[str, list[int]] = {kind: [0, 0] for kind in TYPES}
    misses: dict[str, list[str]] = {kind: [] for kind in TYPES}
    for sample, spans in zip(samples, found):
        for kind, start, end in sample.values:
            hits[kind][1] += 1
            if _covered(sample.text, start, end, spans):
                hits[kind][0] += 1
            else:
                misses[kind].append(sample.text[start:end])
    return {"recall": {k: h / t if t else 0.0 for k, (h, t) in hits.items()},
            "values": {k: t for k, (_, t) in hits.items()},
            "changed": changed / len(clean), "texts_per_second": (len(samples) + len(clean)) / seconds,
            "misses": misses,
            "false_positives": [text for text in clean if find(text)]}


def strop_finder(ner: bool = False):
    from strop.data.pii import PiiRedactor

    redactor = PiiRedactor("mask", ner=ner)
    return lambda text: [(f.start, f.end) for f in redactor.find(text)]


def presidio_finder():
    engine = presidio_analyzer()
    return lambda text: [(r.start, r.end) for r in engine.analyze(text, language="en",
                                                                  score_threshold=0.4)]


def presidio_analyzer():
    """Presidio's AnalyzerEngine with its default recognizers, offline (no spaCy model)."""
    import warnings

    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):  # the default would download a suffix list
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    registry.remove_recognizer("EmailRecognizer")
    registry.remove_recognizer("SpacyRecognizer")  # needs a spaCy model
    registry.add_recognizer(OfflineEmailRecognizer())
    with warnings.catch_warnings():  # "context words unavailable with NoOpNlpEngine": known
        warnings.simplefilter("ignore")
        return AnalyzerEngine(registry=registry, supported_languages=["en"],
                              nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en",
                                                                "model_name": "no_op"}]))


def table(results: dict[str, dict]) -> str:
    names = list(results)
    rows = ["| type | " + " | ".join(names) + " | goal |", "|---" * (len(names) + 2) + "|"]
    first = results[names[0]]
    for kind in TYPES:
        goal = GOALS.get(kind)
        cells = [f"{r['recall'][kind]:.1%}" for r in results.values()]
        rows.append(f"| {kind} ({first['values'][kind]}) | " + " | ".join(cells)
                    + f" | {'>= ' + format(goal, '.0%') if goal else 'needs NER'} |")
    rows.append("| PII-free texts changed | " + " | ".join(
        f"{r['changed']:.1%}" for r in results.values()) + " | <= 3% |")
    rows.append("| texts/s | " + " | ".join(
        f"{r['texts_per_second']:,.0f}" for r in results.values()) + " | >= 1,500 |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--clean-texts", type=int, default=1000)
    parser.add_argument("--no-presidio", action="store_true")
    parser.add_argument("--show-misses", type=int, default=0, help="print N misses per type")
    args = parser.parse_args()
    finders = {"strop": strop_finder()}
    if not args.no_presidio:
        try:
            finders["Presidio (default recognizers, no spaCy model)"] = presidio_finder()
        except ImportError:
            print("presidio-analyzer is not installed: strop alone", file=sys.stderr)
    for seed in args.seeds:
        samples, clean = pii_samples(seed, args.texts), clean_samples(seed, args.clean_texts)
        n_values = sum(len(s.values) for s in samples)
        print(f"\nseed {seed}: {len(samples):,} texts with {n_values:,} PII values, "
              f"{len(clean):,} PII-free texts")
        results = {name: score(find, samples, clean) for name, find in finders.items()}
        print(table(results))
        if args.show_misses:
            strop = results["strop"]
            for kind, missed in strop["misses"].items():
                if missed and kind in GOALS:
                    print(f"  missed {kind}: {missed[:args.show_misses]}")
            print(f"  changed: {strop['false_positives'][:args.show_misses]}")


if __name__ == "__main__":
    main()
