"""Exact and near-duplicate examples.

Exact: the example's text after lower-casing and collapsing whitespace, compared by digest.
Near: Jaccard similarity of word 3-gram shingles. MinHash signatures with locality-sensitive
hashing propose candidates, and the exact Jaccard of the stored shingle sets confirms them, so a
reported pair really is at or above the threshold. This is the technique datasketch implements,
written out here with numpy over a whole batch of examples at once: one datasketch MinHash object
per example costs ~100 us, and the whole check has a budget of ~50 us per example. The band/row
split is chosen for recall (a pair exactly at the threshold becomes a candidate with probability
>= 0.99) rather than datasketch's balanced optimum (~50% there), since every candidate is
verified exactly anyway. System messages are left out of the near-duplicate text: a long shared system prompt would
otherwise make every pair of examples look alike.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from strop.data.formats import conversation

NUM_PERM = 64
RECALL = 0.99  # chance that a pair exactly at the threshold becomes a candidate
# Templated data (the same reply skeleton in every example) fills some buckets with most of the
# file; comparing against all of them makes the pass quadratic. Full buckets stop growing: a
# real near-duplicate shares ~4 of its 10 bands with its original and is found through the
# others, so recall suffers only where every band is crowded.
BUCKET_CAP = 100
SHINGLE_WORDS = 3
BATCH = 512
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


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


@lru_cache(maxsize=64)
def lsh_parameters(threshold: float, num_perm: int, recall: float = RECALL) -> tuple[int, int]:
    """(bands, rows) with the most rows per band (fewest spurious candidates) that still makes
    a pair at `threshold` a candidate with probability >= `recall`: 1 - (1 - t^r)^b."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= recall:
            best = (bands, rows)
    return best


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / (a.size + b.size - shared) if (a.size or b.size) else 1.0


class DuplicateFinder:
    """Feed examples in file order; each says whether it repeats an earlier one.

    `add_many` takes a batch (signatures are computed together); `add` takes one.
    """

    def __init__(self, near_threshold: float | None = 0.85, num_perm: int = NUM_PERM):
        if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
        self.near_threshold = near_threshold
        self._exact: dict[bytes, int] = {}
        self._shingles: dict[int, np.ndarray] = {}
        self._rows: list[int] = []  # line of each indexed original, by row of the matrix
        self._matrix = np.empty((0, num_perm), dtype=np.uint64)  # their signatures
        self._word_hashes: dict[str, int] = {}
        if near_threshold is not None:
            self.bands, self.rows = lsh_parameters(near_threshold, num_perm)
            rng = np.random.default_rng(1)  # fixed: the same file always gives the same pairs
            self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
            self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
            self._band_mix = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64)
            self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]

    def add(self, line: int, full_text: str, near_text: str | None = None) -> Duplicate | None:
        return self.add_many([(line, full_text, near_text)])[0]

    def add_many(self, items: list[tuple[int, str, str | None]]) -> list[Duplicate | None]:
        results: list[Duplicate | None] = []
        for start in range(0, len(items), BATCH):
            results.extend(self._add_batch(items[start:start + BATCH]))
        return results

    def _shingle_hashes(self, text: str) -> np.ndarray:
        """Sorted unique 64-bit hashes of the word 3-grams (deterministic across runs)."""
        cache = self._word_hashes
        tokens = text.split()
        try:  # the vocabulary saturates quickly, so this is the path nearly every text takes
            ids = list(map(cache.__getitem__, tokens))
        except KeyError:
            crc = zlib.crc32
            for word in tokens:
                if word not in cache:
                    cache[word] = crc(word.encode())
            ids = list(map(cache.__getitem__, tokens))
        words = np.array(ids or [0], dtype=np.uint64)
        if words.size < SHINGLE_WORDS:
            words = np.pad(words, (0, SHINGLE_WORDS - words.size))
        grams = (words[:-2] * _MIX[0] + words[1:-1] * _MIX[1] + words[2:] * _MIX[2])
        return np.unique(grams)

    def _index(self, line: int, signature: np.ndarray) -> int:
        row = len(self._rows)
        if row == len(self._matrix):  # grow by doubling: amortised O(1) per example
            grown = np.empty((max(1024, 2 * row), self._matrix.shape[1]), dtype=np.uint64)
            grown[:row] = self._matrix
            self._matrix = grown
        self._matrix[row] = signature
        self._rows.append(line)
        return row

    def _add_batch(self, items) -> list[Duplicate | None]:
        results: list[Duplicate | None] = [None] * len(items)
        fresh = []  # indexes of items that are not exact duplicates
        for index, (line, full, _) in enumerate(items):
            digest = hashlib.blake2b(full.encode(), digest_size=16).digest()
            first = self._exact.get(digest)
            if first is not None:
                results[index] = Duplicate(line, first, "exact", 1.0)
            else:
                self._exact[digest] = line
                fresh.append(index)
        if self.near_threshold is None or not fresh:
            return results
        grams = [self._shingle_hashes(items[i][2] if items[i][2] is not None else items[i][1])
                 for i in fresh]
        sizes = np.array([g.size for g in grams])
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        with np.errstate(over="ignore"):  # multiply-add modulo 2**64 is the hash
            permuted = np.concatenate(grams)[:, None] * self._a + self._b
        signatures = np.minimum.reduceat(permuted, offsets, axis=0)
        banded = signatures[:, :self.bands * self.rows].reshape(len(fresh), self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (banded * self._band_mix).sum(axis=2).tolist()
        for position, index in enumerate(fresh):
            line = items[index][0]
            own = grams[position]
            candidates = set()
            for band, key in enumerate(keys[position]):
                members = self._buckets[band].get(key)
                if members:
                    candidates.update(members)
            best: Duplicate | None = None
            if candidates:
                # The share of equal signature slots estimates Jaccard (std <= 0.07 with 64
                # slots); only candidates within 0.2 of the threshold get the exact check.
                rows = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
                rows.sort()
                agreement = (self._matrix[rows] == signatures[position]).mean(axis=1)
                for row in rows[agreement >= self.near_threshold - 0.2].tolist():
                    candidate = self._rows[row]
                    similarity = jaccard(own, self._shingles[candidate])
                    if similarity >= self.near_threshold and (
                            best is None or similarity > best.similarity):
                        best = Duplicate(line, candidate, "near", similarity)
            if best is not None:
                results[index] = best
                continue
            # only originals are indexed, so every duplicate points at an original
            self._shingles[line] = own
            row = self._index(line, signatures[position])
            for band, key in enumerate(keys[position]):
                members = self._buckets[band].setdefault(key, [])
                if len(members) < BUCKET_CAP:
                    members.append(row)
        return results


def find_duplicates(records, kind: str, near_threshold: float | None = 0.85) -> list[Duplicate]:
    """Every example that repeats an earlier one (exactly or nearly), in file order."""
    finder = DuplicateFinder(near_threshold)
    items = [(r.line, *example_texts(r.data, kind)) for r in records]
    return [d for d in finder.add_many(items) if d is not None]
