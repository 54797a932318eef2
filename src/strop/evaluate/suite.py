"""Suite items: loading the shipped suites or a user's JSONL, checking them, sampling them.

A retention item has an `area` and one way to score it: `answers` (any accepted answer appears
in the output), `rules` (IFEval-style checks, all must hold) or `expect: "refusal"`. A
hallucination item has a `kind`: `answerable` (with `answers`), `unanswerable` or
`false_premise` (the honest reply declines or corrects the premise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from strop.evaluate.scoring import RULE_TYPES

SUITES_DIR = Path(__file__).parent / "suites"
SHIPPED = ("retention", "hallucination")
HALLUCINATION_KINDS = ("answerable", "unanswerable", "false_premise")
DEFAULT_BUDGET = 32


class SuiteError(ValueError):
    """A suite file or item that cannot be scored; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    max_new_tokens: int
    area: str | None = None  # retention items
    kind: str | None = None  # hallucination items
    answers: tuple[str, ...] = ()
    rules: tuple[dict, ...] = field(default_factory=tuple)
    expect: str | None = None
    system: str | None = None

    def messages(self) -> list[dict]:
        prefix = [{"role": "system", "content": self.system}] if self.system else []
        return prefix + [{"role": "user", "content": self.prompt}]


def _item(raw: dict, where: str) -> Item:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: an item must be a JSON object")
    for name in ("id", "prompt"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise SuiteError(f"{where}: '{name}' must be a non-empty string")
    area, kind = raw.get("area"), raw.get("kind")
    if (area is None) == (kind is None):
        raise SuiteError(f"{where}: give exactly one of 'area' (retention) or 'kind' "
                         "(hallucination)")
    answers = raw.get("answers") or []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise SuiteError(f"{where}: 'answers' must be a list of strings")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise SuiteError(f"{where}: 'rules' must be a list of objects")
    for number, rule in enumerate(rules):
        if not isinstance(rule, dict) or rule.get("type") not in RULE_TYPES:
            raise SuiteError(f"{where}: rules[{number}] needs a 'type' among "
                             f"{', '.join(RULE_TYPES)}")
    expect = raw.get("expect")
    if expect not in (None, "refusal"):
        raise SuiteError(f"{where}: 'expect' can only be \"refusal\"")
    if kind is not None:
        if kind not in HALLUCINATION_KINDS:
            raise SuiteError(f"{where}: 'kind' must be one of {', '.join(HALLUCINATION_KINDS)}")
        if kind == "answerable" and not answers:
            raise SuiteError(f"{where}: an answerable item needs 'answers'")
    elif sum(map(bool, (answers, rules, expect))) != 1:
        raise SuiteError(f"{where}: a retention item needs exactly one of 'answers', 'rules' "
                         "or 'expect'")
    budget = raw.get("max_new_tokens", DEFAULT_BUDGET)
    if not isinstance(budget, int) or budget < 1:
        raise SuiteError(f"{where}: 'max_new_tokens' must be a positive integer")
    return Item(id=raw["id"], prompt=raw["prompt"], max_new_tokens=budget, area=area,
                kind=kind, answers=tuple(answers), rules=tuple(rules), expect=expect,
                system=raw.get("system"))


def load_suite(name_or_path: str | Path) -> list[Item]:
    """A shipped suite by name ("retention", "hallucination") or a JSONL file of items."""
    path = SUITES_DIR / f"{name_or_path}.jsonl" if name_or_path in SHIPPED else Path(
        name_or_path)
    if not path.is_file():
        raise SuiteError(f"no suite '{name_or_path}': not one of {', '.join(SHIPPED)} and "
                         "not a file")
    items, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{where}: not valid JSON ({exc.msg})") from None
        item = _item(raw, where)
        if item.id in seen:
            raise SuiteError(f"{where}: duplicate id '{item.id}'")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise SuiteError(f"{path}: the suite has no items")
    return items


def stratified_sample(items: list[Item], limit: int | None) -> list[Item]:
    """The first `limit` items taken round-robin across areas/kinds, in file order.

    Deterministic, so base and tuned (and two runs) see the same items, and every area keeps
    a share of a small sample.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise SuiteError(f"limit must be at least 1, got {limit}")
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.area or item.kind or "", []).append(item)
    chosen: list[Item] = []
    depth = 0
    while len(chosen) < limit:
        for group in groups.values():
            if depth < len(group) and len(chosen) < limit:
                chosen.append(group[depth])
        depth += 1
    order = {item.id: position for position, item in enumerate(items)}
    return sorted(chosen, key=lambda item: order[item.id])
