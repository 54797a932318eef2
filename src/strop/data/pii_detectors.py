"""Detectors of personal data that need no language model: a loose pattern proposes
candidates, and a checksum, a library's validator or the words around decides.

phonenumbers parses phone numbers; python-stdnum checks card numbers (Luhn), IBANs (mod 97),
US SSNs (the ranges never issued), ISBNs and Bitcoin addresses; tldextract's bundled suffix
list (no download) checks e-mail and URL domains; `ipaddress` checks IPs; `datetime` checks
dates. Context decides what checksums cannot: a date is a date of birth only with a birth word
before it, a bare nine-digit number is an SSN only after "SSN", a dotted quad after "version"
is a version, a number after "order" or "ISBN" is no phone number.

Each detector returns (entity type, start, end, score); scores rank overlapping findings
(a checksum beats a shape).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from functools import lru_cache

import phonenumbers
from stdnum import bitcoin, iban, isbn, luhn
from stdnum.us import ssn

Span = tuple[str, int, int, float]

PHONE_REGIONS = ("US", "GB", "DE", "FR")  # how a number without a country code is read
MIN_PHONE_DIGITS = 7

# Candidates: generous on purpose, the validators reject what is not. A phone candidate has at
# least MIN_PHONE_DIGITS digits and at most 3 separators between two (the pre-filter counts so).
_PHONE = re.compile(r"(?<![\w+(])(?P<number>(?:\+\s?|\(\s?)?\d(?:[ ().\-/]{0,3}\d){6,})"
                    r"(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?(?!\w)")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,32}")
_EMAIL = re.compile(r"[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_AT = r"(?:\s?[\[({<]\s?at\s?[\])}>]\s?|\s(?:at|AT)\s)"
_DOT = r"(?:\s?[\[({<]\s?dot\s?[\])}>]\s?|\s(?:dot|DOT)\s|\.)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])([\w.%+-]+){_AT}((?:[A-Za-z0-9-]+{_DOT})+[A-Za-z]{{2,}})\b", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*"
                  r"\.[a-z]{2,}/[^\s<>\"'`]*", re.IGNORECASE)
CRYPTO_PATTERN = re.compile(
    r"\b(?:bc1[ac-hj-np-z02-9]{11,71}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})\b", re.IGNORECASE)

# Words that make the number after them something other than personal data.
_NOT_A_PHONE = re.compile(
    r"(?:\b(?:order|invoice|inv|ticket|batch|build|version|release|isbn(?:-1[03])?|ref|"
    r"reference|tracking|parcel|item|sku|part|serial|room|case|commit|id|population|"
    r"total|amount|coordinates|rechnung|bestellung|commande|facture)\b[\s#:.no-]*)$",
    re.IGNORECASE)
_PHONE_WORDS = re.compile(
    r"\b(?:call|phone|tel|telephone|mobile|cell|number|reach|contact|fax|whatsapp|sms|text|"
    r"dial|ring|ruf|rufen|telefon|handy|anrufen|nummer|appel|appelez|portable|t[ée]l[ée]phone|"
    r"num[ée]ro|joindre)\b", re.IGNORECASE)
_VERSION_WORDS = re.compile(r"\b(?:version|ver|release|build|firmware|update|upgrade|patch|"
                            r"rev|revision|v)\b\.?\s*$|\bv$", re.IGNORECASE)
_SSN_WORDS = re.compile(r"\b(?:ssn|ss#|social\s+security(?:\s+(?:number|no\.?|#))?)"
                        r"(?:\s*(?:is|was|:|#|no\.?|number))*\s*[#:]?\s*$", re.IGNORECASE)
BIRTH_WORDS = re.compile(
    r"\b(?:born|birth|dob|d\.o\.b|birthday|birthdate|geboren|geburtsdatum|geburtstag|geb|"
    r"n[ée]e?|naissance|anniversaire)\b", re.IGNORECASE)
_DATE_SEPARATED = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{2,4}$")

_MONTH_NAMES = (
    "january february march april may june july august september october november december",
    "januar februar märz april mai juni juli august september oktober november dezember",
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "jan feb mar apr may jun jul aug sep oct nov dec",
)
MONTHS = {name: number for names in _MONTH_NAMES
          for number, name in enumerate(names.split(), start=1)}
MONTHS.update({"jän": 1, "mär": 3, "okt": 10, "dez": 12, "janv": 1, "févr": 2, "avr": 4,
               "juil": 7, "sept": 9, "déc": 12})
_MONTH = "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True))
_DATES = (
    (re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b"), "ymd"),
    (re.compile(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})\b"), "numeric"),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th|er)?\.?\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})\b",
                re.IGNORECASE), "dmy"),
    (re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b",
                re.IGNORECASE), "mdy"),
)


def _before(text: str, start: int, width: int = 40) -> str:
    return text[max(0, start - width):start]


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def cards(text: str) -> list[Span]:
    return [("CREDIT_CARD", m.start(), m.end(), 0.9) for m in _CARD.finditer(text)
            if _is_card(m.group())]


def _is_card(candidate: str) -> bool:
    """12-19 digits, grouped by one kind of separator, Luhn-valid, and not an ISBN-13 (whose
    own checksum differs, but which passes Luhn one time in ten)."""
    if " " in candidate and "-" in candidate:
        return False
    digits = candidate.replace(" ", "").replace("-", "")
    return luhn.is_valid(digits) and not (digits[:3] in ("978", "979") and len(digits) == 13
                                          and isbn.is_valid(digits))


def ibans(text: str) -> list[Span]:
    found = []
    for match in _IBAN.finditer(text):
        candidate = match.group()
        for end in range(len(candidate), 14, -1):  # the longest valid prefix (words may follow)
            if candidate[end - 1] not in " -" and iban.is_valid(candidate[:end]):
                found.append(("IBAN_CODE", match.start(), match.start() + end, 0.95))
                break
    return found


def ssns(text: str) -> list[Span]:
    found = []
    for match in _SSN.finditer(text):
        if not ssn.is_valid(match.group(1) + match.group(3) + match.group(4)):
            continue
        context = bool(_SSN_WORDS.search(_before(text, match.start())))
        if match.group(2) == "-" or context:  # bare or spaced digits need the word
            found.append(("US_SSN", match.start(), match.end(), 0.85 if context else 0.6))
    return found


def phones(text: str) -> list[Span]:
    found = []
    for match in _PHONE.finditer(text):
        candidate, number = match.group(), match.group("number")
        digits = _digits(number)
        if len(digits) > 15:  # E.164's longest
            continue
        if _DATE_SEPARATED.match(number) or re.fullmatch(r"\d+[.,]\d+", number):
            continue  # a date or a decimal number
        before = _before(text, match.start())
        if _NOT_A_PHONE.search(before[-30:]):
            continue
        if isbn.is_valid(digits) and (len(digits) == 13 or candidate.count("-") == 3):
            continue
        groups = [g for g in re.split(r"[ ().\-/]+", number.lstrip("+(")) if g]
        if sum(len(g) == 1 and g != "0" for g in groups) > 1:
            continue  # 4 8 15 16 23 42: numbers, not a number (+33 1 ... has one such group)
        valid, possible = _phone_validity(candidate)
        # A bare run of digits is as often a count, a size or a time: it needs a trunk 0, a
        # country code or a phone word before it; a number only of possible length needs a
        # word or a country code whatever its grouping.
        context = bool(_PHONE_WORDS.search(before))
        formatted = number.startswith(("+", "0")) or len(groups) > 1
        # 00 dials out as + does: after a phone word it is a number even where phonenumbers
        # knows no such country code
        dialled_out = context and number.lstrip("(").startswith("00") and len(digits) >= 9
        # (723) 908-3964: North American grouping says phone even where the area code is
        # not assigned (yet)
        nanp = [len(g) for g in groups[-3:]] == [3, 3, 4] and (
            len(groups) == 3 or (len(groups) == 4 and groups[0] in ("1", "001")))
        if (valid and (formatted or context)) or (possible and (context or number[0] == "+"
                                                                or nanp)) or dialled_out:
            found.append(("PHONE_NUMBER", match.start(), match.end(), 0.75 if valid else 0.5))
    return found


@lru_cache(maxsize=4096)
def _phone_validity(candidate: str) -> tuple[bool, bool]:
    """(valid in one of the regions or for its own country code, of a possible length).

    Outside North America a national number starts with its trunk 0, so a number with
    neither a country code nor a 0 is read as American only."""
    regions = ((None,) if candidate.startswith("+") else PHONE_REGIONS
               if candidate.lstrip("(").startswith("0") else ("US",))
    possible = False
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region or "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True, True
        possible = possible or phonenumbers.is_possible_number(number)
    return False, possible


def emails(text: str) -> list[Span]:
    found = [("EMAIL_ADDRESS", m.start(), m.end(), 0.9) for m in _EMAIL.finditer(text)
             if _known_domain(m.group().rsplit("@", 1)[1])]
    for match in _OBFUSCATED_EMAIL.finditer(text):
        domain = re.sub(_DOT, ".", match.group(2), flags=re.IGNORECASE)
        if _known_domain(domain):
            found.append(("EMAIL_ADDRESS", match.start(), match.end(), 0.7))
    return found


@lru_cache(maxsize=1)
def _domain_parser():
    import tldextract

    # no suffix-list URLs and no cache folder: only the snapshot bundled with tldextract
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=4096)
def _known_domain(domain: str) -> bool:
    parts = _domain_parser()(domain.lower())
    return bool(parts.suffix and parts.domain)


def ips(text: str) -> list[Span]:
    found = []
    for match in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        if not _VERSION_WORDS.search(_before(text, match.start(), 25)):
            found.append(("IP_ADDRESS", match.start(), match.end(), 0.8))
    for match in _IPV6.finditer(text):
        value = match.group()
        if value.count(":") < 2 or not any(ch.isdigit() for ch in value):
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        found.append(("IP_ADDRESS", match.start(), match.end(), 0.8))
    return found


def urls(text: str) -> list[Span]:
    found = []
    for match in _URL.finditer(text):
        value = match.group().rstrip(".,;:!?)]}")
        host = re.sub(r"^(?:(?:https?|ftp)://)?", "", value, flags=re.IGNORECASE)
        host = re.split(r"[/?#:]", host, maxsplit=1)[0]
        if _known_domain(host):
            found.append(("URL", match.start(), match.start() + len(value), 0.6))
    return found


def cryptos(text: str) -> list[Span]:
    return [("CRYPTO", m.start(), m.end(), 0.9) for m in CRYPTO_PATTERN.finditer(text)
            if bitcoin.is_valid(m.group())]


def dates_of_birth(text: str) -> list[Span]:
    """Dates with a birth word before them (within 40 characters) or right after."""
    found = []
    for pattern, order in _DATES:
        for match in pattern.finditer(text):
            if not _is_date(match, order):
                continue
            before, after = _before(text, match.start()), text[match.end():match.end() + 25]
            if BIRTH_WORDS.search(before) or re.match(r"\W{0,3}\(?(?:dob|date of birth|born)\b",
                                                       after, re.IGNORECASE):
                found.append(("DATE_OF_BIRTH", match.start(), match.end(), 0.7))
    return found


def _is_date(match: re.Match, order: str) -> bool:
    groups = match.groups()
    if order == "ymd":
        candidates = [(int(groups[0]), int(groups[1]), int(groups[2]))]
    elif order == "numeric":
        first, second, year = int(groups[0]), int(groups[2]), int(groups[3])
        year += 1900 if year > 30 and year < 100 else 2000 if year < 100 else 0
        candidates = [(year, second, first), (year, first, second)]  # d/m/y or m/d/y
    elif order == "dmy":
        candidates = [(int(groups[2]), MONTHS[groups[1].lower()], int(groups[0]))]
    else:
        candidates = [(int(groups[2]), MONTHS[groups[0].lower()], int(groups[1]))]
    for year, month, day in candidates:
        if 1900 <= year <= datetime.date.today().year:
            try:
                datetime.date(year, month, day)
                return True
            except ValueError:
                continue
    return False


# (entity type, detector), in the order they run
DETECTORS = (("CREDIT_CARD", cards), ("IBAN_CODE", ibans), ("US_SSN", ssns),
             ("PHONE_NUMBER", phones), ("EMAIL_ADDRESS", emails), ("IP_ADDRESS", ips),
             ("URL", urls), ("CRYPTO", cryptos), ("DATE_OF_BIRTH", dates_of_birth))
