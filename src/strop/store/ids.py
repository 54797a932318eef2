"""Object ids in OpenAI's shapes: file-..., ftjob-..., ftevent-..., ftckpt_..."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int = 24) -> str:
    """`length` characters drawn uniformly from letters and digits, from one call to the OS's
    random source (one call per character cost ~60 us per id)."""
    number = secrets.randbelow(len(_ALPHABET) ** length)
    characters = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        characters.append(_ALPHABET[digit])
    return "".join(characters)


def file_id() -> str:
    return f"file-{random_token()}"


def job_id() -> str:
    return f"ftjob-{random_token()}"


def event_id() -> str:
    return f"ftevent-{random_token()}"


def checkpoint_id() -> str:
    return f"ftckpt_{random_token()}"


def organization_id() -> str:
    return f"org-{random_token()}"


def model_id() -> str:
    """The short last part of an ft: name."""
    return random_token(8)


def now() -> int:
    return int(time.time())
