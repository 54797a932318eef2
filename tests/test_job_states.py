"""The job state machine: every transition from every status, and no status change elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from strop.store.job_states import STATUSES, TRANSITIONS, JobStateError, move
from strop.store.tables import Job

SOURCE = Path(__file__).parents[1] / "src" / "strop"


@pytest.mark.parametrize("transition", sorted(TRANSITIONS))
@pytest.mark.parametrize("status", STATUSES)
def test_every_transition_from_every_status(transition, status):
    job = Job(id="ftjob-x", status=status)
    allowed = TRANSITIONS[transition]
    if status in allowed.sources:
        assert move(job, transition).status == allowed.target
    else:
        with pytest.raises(JobStateError, match="ftjob-x"):
            move(job, transition)
        assert job.status == status  # a refused change changes nothing


def test_finished_jobs_never_move():
    for status in ("succeeded", "failed", "cancelled"):
        assert all(status not in transition.sources for transition in TRANSITIONS.values())


def test_refusals_read_as_openai_words_them():
    with pytest.raises(JobStateError, match="has already succeeded and cannot be cancelled"):
        move(Job(id="ftjob-1", status="succeeded"), "cancel")
    with pytest.raises(JobStateError, match="only a running job can be paused"):
        move(Job(id="ftjob-1", status="queued"), "pause")


def test_no_module_but_the_state_machine_assigns_a_job_status():
    offenders = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "job_states.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for target in targets:
                for part in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if (isinstance(part, ast.Attribute) and part.attr == "status"
                            and isinstance(part.value, ast.Name) and part.value.id == "job"):
                        offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert offenders == []
