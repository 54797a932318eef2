"""Exact and near-duplicate examples.

Exact: the example's text after lower-casing and collapsing whitespace, compared by digest.
Near: Jaccard similarity of word 3-gram shingles. MinHash signatures with locality-sensitive
hashing propose candidates, and the exact Jaccard of the shingle sets confirms them, so a
reported pair really is at or above the threshold. This is the technique datasketch implements,
written out here with numpy over whole batches of examples: one datasketch MinHash object per
example costs ~100 us, more than the whole check's budget per example. The band/row split is
chosen for recall (a pair exactly at the threshold becomes a candidate with probability >= 0.99)
rather than datasketch's balanced optimum (~50% there), since every candidate is verified
exactly anyway. System messages are left out of the near-duplicate text: a long shared system
prompt would otherwise make every pair of examples look alike.

The work is split in two. `MinHasher.fingerprint` turns texts into digests, shingles, signatures
and band keys, independently per example, so worker processes can do it (`chunks.py`): words are
hashed straight from the texts' UTF-8 bytes and signatures computed in 32-bit lanes, all with
numpy over a batch of texts. `DuplicateFinder` then compares each example with the earlier ones,
which is sequential by nature, but it gathers and pre-filters the candidates of a whole batch
with numpy, keeping only the decisions that depend on earlier examples of the same batch in a
Python loop.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from strop.data.formats import role_texts

NUM_PERM = 64
RECALL = 0.99  # chance that a pair exactly at the threshold becomes a candidate
# Templated data (the same reply skeleton in every example) fills some buckets with most of the
# file; comparing against all of them makes the pass quadratic. Full buckets stop growing: a
# real near-duplicate shares ~4 of its 10 bands with its original and is found through the
# others, so recall suffers only where every band is crowded.
BUCKET_CAP = 100
SHINGLE_WORDS = 3
BATCH = 1024  # examples whose candidates are gathered and pre-filtered together
FINGERPRINT_BATCH = 512  # texts hashed together: their bytes and shingles stay in cache
SIGNATURE_BLOCK = 8192  # shingles hashed at once: the (permutations x block) scratch stays in cache
ESTIMATE_MARGIN = 0.2  # signature agreement this far below the threshold still gets the exact check
_BASE = 0x100000001B3  # the FNV prime: odd, so invertible modulo 2**64
_INVERSE_BASE = pow(_BASE, -1, 2**64)
# whitespace outside ASCII; such texts are re-spaced before their bytes are split
_WIDE_SPACE = re.compile(r"[^\S\x00-\x7f]")
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
    """Lower-cased, words separated by single spaces."""
    text = text.lower()
    # Every whitespace character but the space is unprintable, so most texts can skip the
    # split and join (a string per word) that would hand them back unchanged.
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def example_texts(record: dict, kind: str) -> tuple[str, str]:
    """(full normalised text, text for near-duplicate shingles) of a valid record."""
    full, body = [], []
    for role, text in role_texts(record, kind):
        text = normalize(text)
        full.append(f"{role}: {text}")
        if role != "system":
            body.append(text)
    joined = "\n".join(full)
    return joined, " ".join(body) if body else joined


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


def jaccard(a: set, b: set) -> float:
    # sets of ~100 shingles: intersecting them beats any numpy call's overhead
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if (a or b) else 1.0


def text_digest(full_text: str) -> bytes:
    return hashlib.blake2b(full_text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _ascii_spaced(text: str) -> str:
    """`text` with its words separated by ASCII whitespace only."""
    if text.isascii() or not _WIDE_SPACE.search(text):
        return text
    return " ".join(text.split())


@dataclass(slots=True)
class Fingerprints:
    """What duplicate detection needs of a batch of examples, computed away from the index.

    Near-duplicate fields are None when only exact duplicates are looked for.
    """

    digests: list[bytes]  # of the full normalised texts
    shingles: np.ndarray | None = None  # every example's word 3-gram hashes, concatenated
    starts: np.ndarray | None = None  # example i's shingles are shingles[starts[i]:stops[i]]
    stops: np.ndarray | None = None
    signatures: np.ndarray | None = None  # (examples, permutations) MinHash signatures
    keys: np.ndarray | None = None  # (examples, bands) LSH bucket keys

    @staticmethod
    def concatenate(parts: list[Fingerprints]) -> Fingerprints:
        digests = [digest for part in parts for digest in part.digests]
        if parts[0].signatures is None:
            return Fingerprints(digests)
        offsets = np.cumsum([0] + [part.shingles.size for part in parts[:-1]])
        return Fingerprints(digests, np.concatenate([part.shingles for part in parts]),
                            np.concatenate([p.starts + o for p, o in zip(parts, offsets)]),
                            np.concatenate([p.stops + o for p, o in zip(parts, offsets)]),
                            np.concatenate([part.signatures for part in parts]),
                            np.concatenate([part.keys for part in parts]))

    def take(self, indexes: np.ndarray) -> Fingerprints:
        """The fingerprints of the examples at `indexes`, in that order."""
        digests = [self.digests[i] for i in indexes.tolist()]
        if self.signatures is None:
            return Fingerprints(digests)
        return Fingerprints(digests, self.shingles, self.starts[indexes], self.stops[indexes],
                            self.signatures[indexes], self.keys[indexes])

    def shingle_set(self, index: int) -> set[int]:
        return set(self.shingles[self.starts[index]:self.stops[index]].tolist())


class MinHasher:
    """Digests, word 3-gram shingles, MinHash signatures and LSH band keys of texts.

    Deterministic for a threshold and number of permutations, so every process that builds one
    computes the same fingerprints.
    """

    def __init__(self, near_threshold: float | None, num_perm: int = NUM_PERM):
        self.near_threshold = near_threshold
        self._power_table = (np.ones(0, dtype=np.uint64), np.ones(0, dtype=np.uint64))
        if near_threshold is not None:
            self.bands, self.rows = lsh_parameters(near_threshold, num_perm)
            rng = np.random.default_rng(1)  # fixed: the same file always gives the same pairs
            self._a = rng.integers(1, 2**32, size=(num_perm, 1), dtype=np.uint32) | np.uint32(1)
            self._b = rng.integers(0, 2**32, size=(num_perm, 1), dtype=np.uint32)
            self._band_mix = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64)
            # bands hash differently, so all bands' buckets can share one key space
            self._band_salt = rng.integers(0, 2**63, size=self.bands, dtype=np.uint64)

    def fingerprint(self, texts: list[tuple[str, str | None]]) -> Fingerprints:
        """Fingerprints of (full text, near-duplicate text or None for the full text) pairs."""
        if len(texts) <= FINGERPRINT_BATCH:
            return self._fingerprint_batch(texts)
        return Fingerprints.concatenate(
            [self._fingerprint_batch(texts[start:start + FINGERPRINT_BATCH])
             for start in range(0, len(texts), FINGERPRINT_BATCH)])

    def _fingerprint_batch(self, texts: list[tuple[str, str | None]]) -> Fingerprints:
        digests = [text_digest(full) for full, _ in texts]
        if self.near_threshold is None or not texts:
            return Fingerprints(digests)
        shingles, counts = self._shingles([full if near is None else near for full, near in texts])
        stops = np.cumsum(counts)
        starts = stops - counts
        signatures = self._signatures(shingles, starts)
        banded = signatures[:, :self.bands * self.rows].reshape(len(texts), self.bands, self.rows)
        with np.errstate(over="ignore"):  # multiply-add modulo 2**64 is the hash
            keys = (banded.astype(np.uint64) * self._band_mix).sum(axis=2) + self._band_salt
        return Fingerprints(digests, shingles, starts, stops, signatures, keys)

    def _shingles(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes of every text's word 3-grams, concatenated; how many each text has).

        A text shorter than three words is padded with empty words (hash 0), so it still has
        one shingle.
        """
        ids, words_per_text = self._word_hashes(texts)
        padded = np.maximum(words_per_text, SHINGLE_WORDS)
        if ids.size != padded.sum():
            pads = padded - words_per_text
            hashes, ids = ids, np.zeros(int(padded.sum()), dtype=np.uint64)
            ids[np.arange(hashes.size) + np.repeat(np.cumsum(pads) - pads, words_per_text)] = hashes
        with np.errstate(over="ignore"):
            grams = ids[:-2] * _MIX[0]
            grams += ids[1:-1] * _MIX[1]
            grams += ids[2:] * _MIX[2]
        # drop the 3-grams that straddle two texts: the last two starting positions of each text
        ends = np.cumsum(padded)[:-1]
        inside = np.ones(grams.size, dtype=bool)
        inside[ends - 1] = inside[ends - 2] = False
        return grams[inside], padded - (SHINGLE_WORDS - 1)

    def _word_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(64-bit polynomial hash of every word of the texts, in order; words per text).

        Words are split at whitespace on the UTF-8 bytes of all texts at once: splitting into
        Python strings would cost ~100 ns a word, more than everything else here together.
        """
        encoded = [_ascii_spaced(text).encode("utf-8", "surrogatepass") for text in texts]
        data = np.frombuffer(b" ".join(encoded), dtype=np.uint8)
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        text_starts = np.cumsum(sizes + 1) - (sizes + 1)
        in_word = np.zeros(data.size + 2, dtype=bool)
        np.logical_not(_is_ascii_space(data), out=in_word[1:-1])
        edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # alternately a word's start and end
        word_starts, word_ends = edges[0::2], edges[1::2]
        powers, inverse_powers = self._powers(data.size)
        with np.errstate(over="ignore"):
            prefix = np.zeros(data.size + 1, dtype=np.uint64)
            np.cumsum(data * powers[:data.size], out=prefix[1:])
            hashes = (prefix[word_ends] - prefix[word_starts]) * inverse_powers[word_starts]
        first_words = np.searchsorted(word_starts, text_starts)
        return hashes, np.diff(first_words, append=word_starts.size)

    def _powers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(BASE**i, BASE**-i) mod 2**64 for i < size, grown by doubling and kept."""
        if self._power_table[0].size < size:
            size = max(size, 2 * self._power_table[0].size, 1 << 16)
            self._power_table = tuple(_powers_of(base, size) for base in (_BASE, _INVERSE_BASE))
        return self._power_table

    def _signatures(self, shingles: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Minimum of a * x + b (mod 2**32) per text and permutation, x the high half of each
        shingle hash. 32-bit lanes: twice as many per vector instruction as 64-bit ones, and
        two slots of different minima agree by chance once in 2**32. A block of texts at a time,
        so that the (permutations x shingles) intermediate stays small."""
        high = (shingles >> np.uint64(32)).astype(np.uint32)
        signatures = np.empty((len(starts), self._a.size), dtype=np.uint32)
        bounds = np.append(starts, shingles.size)
        first = 0
        while first < len(starts):
            last = int(np.searchsorted(bounds, bounds[first] + SIGNATURE_BLOCK, side="right")) - 1
            last = min(max(last, first + 1), len(starts))
            with np.errstate(over="ignore"):
                permuted = self._a * high[bounds[first]:bounds[last]]
                permuted += self._b
            signatures[first:last] = np.minimum.reduceat(
                permuted, bounds[first:last] - bounds[first], axis=1).T
            first = last
        return signatures


class DuplicateFinder:
    """Feed examples in file order; each says whether it repeats an earlier one.

    `add_many` takes a batch of texts, `add` one, `add_fingerprints` what `MinHasher` (here or in
    another process) made of them.
    """

    def __init__(self, near_threshold: float | None = 0.85, num_perm: int = NUM_PERM):
        if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
        self.near_threshold = near_threshold
        self.hasher = MinHasher(near_threshold, num_perm)
        self._exact: dict[bytes, int] = {}
        self._lines: list[int] = []  # line of each indexed original, by row
        # their shingles: (array, starts, stops) of each batch's originals, from its first row
        self._shingle_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._first_rows: list[int] = []
        self._shingle_sets: dict[int, set[int]] = {}  # row -> its shingle set, once needed
        self._matrix = np.empty((0, num_perm), dtype=np.uint32)  # their signatures, by row
        self._buckets = _Buckets()

    def add(self, line: int, full_text: str, near_text: str | None = None) -> Duplicate | None:
        return self.add_many([(line, full_text, near_text)])[0]

    def add_many(self, items: list[tuple[int, str, str | None]]) -> list[Duplicate | None]:
        fingerprints = self.hasher.fingerprint([(full, near) for _, full, near in items])
        return self.add_fingerprints([line for line, _, _ in items], fingerprints)

    def add_fingerprints(self, lines: list[int], fingerprints: Fingerprints
                         ) -> list[Duplicate | None]:
        results: list[Duplicate | None] = []
        for start in range(0, len(lines), BATCH):
            results.extend(self._add_batch(lines, fingerprints, start,
                                           min(start + BATCH, len(lines))))
        return results

    def _add_batch(self, lines: list[int], prints: Fingerprints, start: int, stop: int
                   ) -> list[Duplicate | None]:
        results: list[Duplicate | None] = [None] * (stop - start)
        fresh = []  # indexes (into prints) of the examples that are not exact duplicates
        for index in range(start, stop):
            first = self._exact.get(prints.digests[index])
            if first is not None:
                results[index - start] = Duplicate(lines[index], first, "exact", 1.0)
            else:
                self._exact[prints.digests[index]] = lines[index]
                fresh.append(index)
        if self.near_threshold is None or not fresh:
            return results
        batch = prints.take(np.array(fresh))
        batch_lines = [lines[index] for index in fresh]
        bands = batch.keys.shape[1]
        queries, members, sizes = self._buckets.lookup(batch.keys.ravel())
        earlier = self._worth_checking(queries // bands, members,
                                       np.take(self._matrix, members, axis=0), batch.signatures)
        later, before = _pairs_sharing_a_key(batch.keys)
        within = self._worth_checking(later, before, batch.signatures[before], batch.signatures)
        found = self._walk(batch_lines, batch, earlier, within, sizes.reshape(batch.keys.shape))
        for position, duplicate in found.items():
            results[fresh[position] - start] = duplicate
        kept = np.ones(len(fresh), dtype=bool)
        kept[list(found)] = False
        self._index(batch_lines, batch, np.flatnonzero(kept), sizes.reshape(batch.keys.shape))
        return results

    def _walk(self, lines: list[int], batch: Fingerprints, earlier: dict[int, list[int]],
              within: dict[int, list[int]], sizes: np.ndarray) -> dict[int, Duplicate]:
        """The near duplicates among the batch's examples by position, decided in file order;
        the others are originals.

        Only examples with candidates are visited. A candidate from the batch itself counts
        only if it is an original and went into a bucket the example shares.
        """
        found: dict[int, Duplicate] = {}
        for position in sorted(earlier.keys() | within.keys()):
            candidates = [(self._lines[row], self._shingle_set(row))
                          for row in earlier.get(position, ())]
            candidates += [(lines[other], batch.shingle_set(other))
                           for other in within.get(position, ())
                           if other not in found
                           and _bucketed_together(batch.keys, sizes, found, other, position)]
            best = self._most_similar(lines[position], batch.shingle_set(position), candidates)
            if best is not None:
                found[position] = best
        return found

    def _worth_checking(self, owners: np.ndarray, members: np.ndarray,
                        member_signatures: np.ndarray, signatures: np.ndarray
                        ) -> dict[int, list[int]]:
        """owner -> its members (ascending, each once) whose signatures agree enough with the
        owner's to be worth an exact check."""
        # The share of equal signature slots estimates Jaccard (std <= 0.07 with 64 slots); only
        # candidates within ESTIMATE_MARGIN of the threshold get the exact check.
        agreement = np.count_nonzero(member_signatures == signatures[owners], axis=1)
        passing = agreement / signatures.shape[1] >= self.near_threshold - ESTIMATE_MARGIN
        pairs = _unique((owners[passing] << 32) | members[passing])
        groups: dict[int, list[int]] = {}
        for owner, member in zip((pairs >> 32).tolist(), (pairs & 0xFFFFFFFF).tolist()):
            groups.setdefault(owner, []).append(member)
        return groups

    def _most_similar(self, line: int, shingles: set[int],
                      candidates: list[tuple[int, set[int]]]) -> Duplicate | None:
        """The candidate (line, shingles), in row order, most similar to the example, if at or
        above the threshold; the first one on a tie."""
        best: Duplicate | None = None
        for other_line, other_shingles in candidates:
            similarity = jaccard(shingles, other_shingles)
            if similarity >= self.near_threshold and (best is None
                                                       or similarity > best.similarity):
                best = Duplicate(line, other_line, "near", similarity)
        return best

    def _shingle_set(self, row: int) -> set[int]:
        shingles = self._shingle_sets.get(row)
        if shingles is None:
            part = bisect_right(self._first_rows, row) - 1
            offset = row - self._first_rows[part]
            array, starts, stops = self._shingle_parts[part]
            shingles = self._shingle_sets[row] = set(
                array[starts[offset]:stops[offset]].tolist())
        return shingles

    def _index(self, lines: list[int], batch: Fingerprints, originals: np.ndarray,
               sizes: np.ndarray) -> None:
        """Give the batch's originals (positions, ascending) the next rows: lines, shingles,
        signatures, and a place in each bucket of theirs that is not full."""
        first_row = len(self._lines)
        self._lines.extend(lines[position] for position in originals.tolist())
        self._first_rows.append(first_row)
        self._shingle_parts.append((batch.shingles, batch.starts[originals],
                                    batch.stops[originals]))
        bands = batch.keys.shape[1]
        self._buckets.add(batch.keys[originals].ravel(),
                          np.repeat(np.arange(first_row, len(self._lines)), bands),
                          sizes[originals].ravel())
        self._store_signatures(batch.signatures[originals])

    def _store_signatures(self, signatures: np.ndarray) -> None:
        first = len(self._lines) - len(signatures)
        if len(self._lines) > len(self._matrix):  # grow by doubling: amortised O(1) per row
            grown = np.empty((max(1024, 2 * len(self._lines)), self._matrix.shape[1]),
                             dtype=self._matrix.dtype)
            grown[:first] = self._matrix[:first]
            self._matrix = grown
        self._matrix[first:len(self._lines)] = signatures


def _bucketed_together(keys: np.ndarray, sizes: np.ndarray, duplicates: dict[int, Duplicate],
                       earlier: int, later: int) -> bool:
    """Did the original at batch position `earlier` go into a bucket that `later` looks in?
    It did into each bucket of its keys that, counting the originals of the batch before it,
    was not yet full (`sizes`: the buckets' sizes before the batch)."""
    for band, key in enumerate(keys[earlier].tolist()):
        if key not in keys[later]:
            continue
        holders = np.flatnonzero((keys[:earlier] == key).any(axis=1)).tolist()
        originals = sum(holder not in duplicates for holder in holders)
        if sizes[earlier, band] + originals < BUCKET_CAP:
            return True
    return False


class _Buckets:
    """The LSH buckets: for each band key, the rows of the first BUCKET_CAP originals with it.

    Held as two runs of (key, row) sorted by key, a large one and a recent one merged into it
    once it grows past a quarter of its size, so a whole batch is looked up or added with a
    few numpy calls. A dict of lists costs ~150 bytes and several cache misses per member, and
    slowed the pass down as files grew.
    """

    def __init__(self):
        self._main = self._recent = _empty_run()

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, row) of every member of the buckets of `keys`, and each bucket's size."""
        order = np.argsort(keys)  # sorted queries search a run far faster
        ordered = keys[order]
        queries, rows = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
        sizes = np.zeros(keys.size, dtype=np.int64)
        for run_keys, run_rows in (self._main, self._recent):
            low = np.searchsorted(run_keys, ordered)
            hit = np.flatnonzero(run_keys[np.minimum(low, run_keys.size - 1)] == ordered
                                 ) if run_keys.size else np.empty(0, dtype=np.int64)
            if not hit.size:
                continue
            low = low[hit]
            counts = np.searchsorted(run_keys, ordered[hit], side="right") - low
            sizes[order[hit]] += counts
            starts = np.repeat(low - (np.cumsum(counts) - counts), counts)
            queries.append(np.repeat(order[hit], counts))
            rows.append(run_rows[starts + np.arange(counts.sum())])
        return np.concatenate(queries), np.concatenate(rows), sizes

    def add(self, keys: np.ndarray, rows: np.ndarray, sizes: np.ndarray) -> None:
        """Put each row (in order) into the bucket of its key unless that bucket is full;
        `sizes` are the buckets' sizes before these rows."""
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first_of_key = np.ones(ordered.size, dtype=bool)
        first_of_key[1:] = ordered[1:] != ordered[:-1]
        index = np.arange(ordered.size)
        rank = index - np.maximum.accumulate(np.where(first_of_key, index, 0))
        kept = sizes[order] + rank < BUCKET_CAP
        self._recent = _merged(self._recent, (ordered[kept], rows[order][kept]))
        if self._recent[0].size > self._main[0].size // 4:
            self._main, self._recent = _merged(self._main, self._recent), _empty_run()


def _empty_run() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)


def _merged(older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two runs sorted by key as one; a key's rows stay in insertion order (older first)."""
    at = np.searchsorted(older[0], newer[0], side="right")
    return np.insert(older[0], at, newer[0]), np.insert(older[1], at, newer[1])


def _pairs_sharing_a_key(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later, earlier) row indexes of every pair of rows of a (rows, bands) key array that
    have the same key in some band, each pair once, sorted by later then earlier. Keys of all
    bands are grouped together: two bands' keys are equal only by a 2**-64 chance, and a pair
    found that way is merely one more candidate to check."""
    n = len(keys)
    flat = keys.ravel()
    order = np.argsort(flat)
    ordered = flat[order]
    rows = order // keys.shape[1]
    group_starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    sizes = np.diff(group_starts, append=flat.size)
    codes = [np.empty(0, dtype=np.int64)]
    for size in np.unique(sizes[sizes > 1]).tolist():
        first, second = np.triu_indices(size, 1)
        starts = group_starts[sizes == size][:, None]
        a, b = rows[starts + first].ravel(), rows[starts + second].ravel()
        codes.append((np.maximum(a, b) * n + np.minimum(a, b))[a != b])
    pairs = _unique(np.concatenate(codes))
    return pairs // n, pairs % n


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique values: np.unique's hash table is ~10x slower than a sort here."""
    ordered = np.sort(values)
    first = np.ones(ordered.size, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def _is_ascii_space(data: np.ndarray) -> np.ndarray:
    """Bytes that are ASCII whitespace as str.split() sees it: 9-13, 28-32."""
    with np.errstate(over="ignore"):
        space = (data - np.uint8(9)) < 5
        space |= (data - np.uint8(28)) < 5
    return space


def _powers_of(base: int, size: int) -> np.ndarray:
    factors = np.full(size, base, dtype=np.uint64)
    factors[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(factors, dtype=np.uint64)


def find_duplicates(records, kind: str, near_threshold: float | None = 0.85) -> list[Duplicate]:
    """Every example that repeats an earlier one (exactly or nearly), in file order."""
    finder = DuplicateFinder(near_threshold)
    items = [(r.line, *example_texts(r.data, kind)) for r in records]
    return [d for d in finder.add_many(items) if d is not None]
