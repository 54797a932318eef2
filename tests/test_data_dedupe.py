"""Duplicate detection internals: batched candidate search against a plain sequential
reference, word splitting and normalisation against Python's own str methods."""

from __future__ import annotations

import random

import numpy as np
import pytest

from strop.data import dedupe
from strop.data.dedupe import DuplicateFinder, MinHasher, example_texts, normalize


def _reference(items: list[tuple[int, str, str]], threshold: float, cap: int) -> list[tuple]:
    """One example at a time, buckets as a dict of lists: the semantics the batched finder
    must reproduce exactly (same fingerprints, same candidates, same tie-breaking)."""
    prints = MinHasher(threshold).fingerprint([(full, near) for _, full, near in items])
    exact: dict[bytes, int] = {}
    buckets: dict[int, list[int]] = {}
    originals: list[tuple[int, set, np.ndarray]] = []  # (line, shingles, signature) by row
    found = []
    for index, (line, _, _) in enumerate(items):
        digest = prints.digests[index]
        if digest in exact:
            found.append((line, exact[digest], "exact"))
            continue
        exact[digest] = line
        keys = prints.keys[index].tolist()
        shingles = set(prints.shingles[prints.starts[index]:prints.stops[index]].tolist())
        signature = prints.signatures[index]
        best = None
        for row in sorted({row for key in keys for row in buckets.get(key, [])}):
            other_line, other_shingles, other_signature = originals[row]
            if np.mean(other_signature == signature) < threshold - dedupe.ESTIMATE_MARGIN:
                continue
            similarity = len(shingles & other_shingles) / len(shingles | other_shingles)
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (other_line, similarity)
        if best is not None:
            found.append((line, best[0], "near"))
            continue
        originals.append((line, shingles, signature))
        for key in keys:
            members = buckets.setdefault(key, [])
            if len(members) < cap:
                members.append(len(originals) - 1)
    return found


def _templated_items(count: int, seed: int) -> list[tuple[int, str, str]]:
    """Replies on a handful of skeletons (crowded buckets), with exact and near copies."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if texts and roll < 0.05:
            texts.append(rng.choice(texts))
        elif texts and roll < 0.15:
            words = rng.choice(texts).split()
            words[rng.randrange(len(words))] = rng.choice(["swiftly", "today", "again"])
            texts.append(" ".join(words))
        else:
            texts.append(f"order {rng.randrange(40)} for item {rng.randrange(30)} "
                         f"{rng.choice(['arrived late', 'is lost', 'was damaged'])} and the "
                         f"warehouse will check parcel {rng.randrange(50)} within "
                         f"{rng.randrange(5)} days")
    return [(line, f"user: {text}", text) for line, text in enumerate(texts, start=1)]


@pytest.mark.parametrize("cap,batch", [(3, 64), (100, 1024), (1, 7)])
def test_batched_finder_matches_the_sequential_reference(monkeypatch, cap, batch):
    monkeypatch.setattr(dedupe, "BUCKET_CAP", cap)
    monkeypatch.setattr(dedupe, "BATCH", batch)
    items = _templated_items(1500, seed=cap)
    found = [(d.line, d.of_line, d.kind) for d in DuplicateFinder(0.8).add_many(items)
             if d is not None]
    expected = _reference(items, 0.8, cap)
    assert found == expected
    assert sum(kind == "near" for *_, kind in found) >= 10  # the near path really ran


def test_finder_fed_in_pieces_matches_one_call():
    items = _templated_items(900, seed=7)
    whole = DuplicateFinder(0.8).add_many(items)
    pieces = DuplicateFinder(0.8)
    parts = [pieces.add_many(items[start:start + 100]) for start in range(0, len(items), 100)]
    assert [d for part in parts for d in part] == whole


def test_words_are_split_at_every_whitespace_python_knows():
    odd = "Alpha\u3000beta\x1cgamma\u00a0delta  \t epsilon\u2028zeta\x85eta"
    finder = DuplicateFinder(1.0)
    assert finder.add(1, "a", odd) is None
    duplicate = finder.add(2, "b", " ".join(odd.split()))
    assert duplicate is not None and duplicate.similarity == 1.0 and duplicate.of_line == 1
    assert finder.add(3, "c", odd.replace("\u3000", "")) is None  # "Alphabeta" is one word


def test_normalize_equals_lower_split_join():
    rng = random.Random(0)
    pieces = ["a", "B", " ", "  ", "\n", "\t", "\u00a0", "\u2003", "é", "İ", "\x1c", "Σ", "x.",
              "\x00"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        assert normalize(text) == " ".join(text.lower().split()), repr(text)


def test_texts_with_lone_surrogates_are_fingerprinted():
    record = {"messages": [{"role": "user", "content": "a\ud800b"},
                           {"role": "assistant", "content": "c"}]}
    finder = DuplicateFinder(0.85)
    assert finder.add(1, *example_texts(record, "chat")) is None
    assert finder.add(2, *example_texts(record, "chat")).kind == "exact"


def _prints(examples: list[tuple[list[int], list[int]]], bands: int) -> dedupe.Fingerprints:
    """Hand-made fingerprints: (shared bucket keys, shingles) per example; the other bands get
    keys of their own, every signature is the same (so each candidate gets the exact check)."""
    keys = np.array([shared + [1000 * (index + 1) + band for band in range(bands - len(shared))]
                     for index, (shared, _) in enumerate(examples)], dtype=np.uint64)
    shingles = [np.array(words, dtype=np.uint64) for _, words in examples]
    stops = np.cumsum([len(words) for words in shingles])
    return dedupe.Fingerprints([bytes([index]) for index in range(len(examples))],
                               np.concatenate(shingles), stops - [len(w) for w in shingles],
                               stops, np.zeros((len(examples), dedupe.NUM_PERM), np.uint32), keys)


@pytest.mark.parametrize("batch", [1, 2, 3])  # third alone, first two together, all together
@pytest.mark.parametrize("later_keys,repeats", [([1], False), ([3], True)])
def test_a_full_bucket_takes_no_more_originals(monkeypatch, batch, later_keys, repeats):
    monkeypatch.setattr(dedupe, "BUCKET_CAP", 1)
    monkeypatch.setattr(dedupe, "BATCH", batch)
    first, second = list(range(10)), list(range(5)) + list(range(20, 25))  # Jaccard 1/3
    finder = DuplicateFinder(0.85)
    bands = finder.hasher.bands
    # The second example shares key 1 with the first, whose bucket is then full; only key 3
    # takes it. The third repeats the second and finds it only through key 3.
    prints = _prints([([1, 2], first), ([1, 3], second), (later_keys, second)], bands)
    found = finder.add_fingerprints([1, 2, 3], prints)
    assert found[:2] == [None, None]
    assert (found[2] is not None and found[2].of_line == 2) is repeats
