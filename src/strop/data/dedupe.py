"""Exact and near-duplicate examples.

Exact: the example's text after lower-casing and collapsing whitespace, compared by digest.
Near: Jaccard similarity of word 3-gram shingles; datasketch's MinHash LSH proposes candidates
and the exact Jaccard of the stored shingle sets confirms them, so a reported pair really is at
or above the threshold. System messages are left out of the near-duplicate text: a long shared
system prompt would otherwise make every pair of examples look alike.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

from strop.data.formats import conversation

NUM_PERM = 64
SHINGLE_WORDS = 3


@dataclass(frozen=True, slots=True)
class Duplicate:
    line: int  # the later example
    of_line: int  # the first example it repeats
    kind: str  # "exact" or "near"
    similarity: float  # 1.0 for exact; Jaccard of shingles for near

    def to_dict(self) -> dict:
        return {"line": self.line, "of_line": self.of_line, "kind": self.kind,
                "similarity": round(self.similarity, 3)}


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def example_texts(record: dict, kind: str) -> tuple[str, str]:
    """(full normalised text, text for near-duplicate shingles) of a valid record."""
    messages = conversation(record, kind)
    full = "\n".join(f"{m['role']}: {normalize(m['content'])}" for m in messages)
    body = [normalize(m["content"]) for m in messages if m["role"] != "system"]
    return full, " ".join(body) if body else full


def shingles(text: str, size: int = SHINGLE_WORDS) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word n-grams of `text` (deterministic across runs)."""
    words = text.split()
    if len(words) <= size:
        grams = [" ".join(words)]
    else:
        grams = [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]
    crc = zlib.crc32
    return np.unique(np.fromiter((crc(g.encode()) for g in grams), dtype=np.uint32, count=len(grams)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / (a.size + b.size - shared) if (a.size or b.size) else 1.0


class DuplicateFinder:
    """Feed examples in file order; each call says whether the example repeats an earlier one."""

    def __init__(self, near_threshold: float | None = 0.85, num_perm: int = NUM_PERM):
        if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
        self.near_threshold = near_threshold
        self._exact: dict[bytes, int] = {}
        self._shingles: dict[int, np.ndarray] = {}
        if near_threshold is not None:
            from datasketch import MinHash, MinHashLSH

            # A slightly lower LSH threshold trades a few extra candidate checks for recall;
            # the exact Jaccard check below keeps the reported pairs at the real threshold.
            self._lsh = MinHashLSH(threshold=max(0.05, near_threshold - 0.1), num_perm=num_perm)
            self._template = MinHash(num_perm=num_perm, seed=1, hashfunc=int, scheme="affine32")
            self._minhash = MinHash

    def add(self, line: int, full_text: str, near_text: str | None = None) -> Duplicate | None:
        digest = hashlib.blake2b(full_text.encode(), digest_size=16).digest()
        first = self._exact.get(digest)
        if first is not None:
            return Duplicate(line, first, "exact", 1.0)
        self._exact[digest] = line
        if self.near_threshold is None:
            return None
        grams = shingles(near_text if near_text is not None else full_text)
        signature = self._minhash(num_perm=self._template.num_perm, seed=1, hashfunc=int,
                                  permutations=self._template.permutations, scheme="affine32")
        signature.update_batch(grams.tolist())
        best: Duplicate | None = None
        for candidate in self._lsh.query(signature):
            similarity = jaccard(grams, self._shingles[candidate])
            if similarity >= self.near_threshold and (
                    best is None or (similarity, -candidate) > (best.similarity, -best.of_line)):
                best = Duplicate(line, candidate, "near", similarity)
        if best is None:  # only originals are indexed, so every duplicate points at an original
            self._lsh.insert(line, signature)
            self._shingles[line] = grams
        return best


def find_duplicates(records, kind: str, near_threshold: float | None = 0.85) -> list[Duplicate]:
    """Every example that repeats an earlier one (exactly or nearly), in file order."""
    finder = DuplicateFinder(near_threshold)
    found = []
    for record in records:
        full, near = example_texts(record.data, kind)
        duplicate = finder.add(record.line, full, near)
        if duplicate is not None:
            found.append(duplicate)
    return found
