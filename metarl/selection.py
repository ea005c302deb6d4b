"""Snapshot selection that never looks at the test tasks.

The paper kept a snapshot every 25 iterations and reported one of them. Choosing by the
test tasks' returns would be tuning on the test set; choosing by one training iteration's
return (``best.pt``) is noisy. Here every kept snapshot is scored by its mean return after
one adaptation step on *validation* tasks drawn from a seed distinct from the test seed,
with no task equal to a test task where the task distribution allows it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs import TaskEnv
from metarl.checkpoint import CheckpointError
from metarl.evaluation import LoadedPolicy, evaluate_policy_curve, held_out_tasks, load_policy

_SNAPSHOT = re.compile(r"snapshot_(\d+)\.pt$")


def _key(task: dict[str, Any]) -> str:
    return json.dumps(task, sort_keys=True)


def validation_tasks(
    env: TaskEnv, num_tasks: int, seed: int, test_tasks: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """``num_tasks`` tasks from ``default_rng(seed)``, skipping any equal to a test task.

    Returns the tasks and whether they are disjoint from ``test_tasks``. A finite task
    distribution (HalfCheetahDir's two directions) cannot avoid the test tasks; then the
    tasks are drawn as they come and only the episodes (the seed) differ.
    """
    rng = np.random.default_rng(seed)
    test = {_key(t) for t in test_tasks}
    chosen: list[dict[str, Any]] = []
    for _ in range(100 * num_tasks):
        (task,) = env.sample_tasks(1, rng)
        if _key(task) not in test:
            chosen.append(task)
            if len(chosen) == num_tasks:
                return chosen, True
    return env.sample_tasks(num_tasks, np.random.default_rng(seed)), False


def snapshot_paths(run_dir: str | Path) -> list[Path]:
    """A run's kept snapshots (``checkpoints/snapshot_*.pt``) and ``latest.pt``, by iteration."""
    folder = Path(run_dir) / "checkpoints"
    snapshots = sorted(p for p in folder.glob("snapshot_*.pt") if _SNAPSHOT.search(p.name))
    latest = folder / "latest.pt"
    return [*snapshots, latest] if latest.is_file() else snapshots


@dataclass(frozen=True)
class Selection:
    """The chosen snapshot and every candidate's validation score."""

    chosen: LoadedPolicy
    scores: list[tuple[int, str, float]]  # (iteration, path, mean return after `steps` steps)
    validation_seed: int
    disjoint: bool  # validation tasks share no task with the test tasks
    steps: int
    later_step_ratio: float | None = None  # the schedule's, if not the env's test protocol's

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.chosen.path),
            "iteration": self.chosen.iteration,
            "validation_seed": self.validation_seed,
            "validation_tasks_disjoint_from_test": self.disjoint,
            "criterion": f"mean return after {self.steps} step(s) on the validation tasks",
            "later_step_ratio": self.later_step_ratio,
            "candidates": [
                {"iteration": it, "checkpoint": path, "validation_return": score}
                for it, path, score in self.scores
            ],
        }


def select_snapshot(
    run_dir: str | Path,
    num_tasks: int,
    episodes: int,
    validation_seed: int,
    test_seed: int,
    steps: int = 1,
    later_step_ratio: float | None = None,
    test_tasks: list[dict[str, Any]] | None = None,
) -> Selection:
    """Score every snapshot of ``run_dir`` on validation tasks by the mean return after
    ``steps`` steps (with ``later_step_ratio``'s schedule, if given); return the best one.

    The validation tasks avoid the test tasks: ``test_tasks`` if given (e.g. the paper's),
    else the ``num_tasks`` held-out tasks of ``test_seed``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the selection's number of steps must be an integer >= 1, got {steps!r}")
    if validation_seed == test_seed:
        raise ValueError(
            f"the validation seed must differ from the test seed (both {test_seed}): "
            "selecting on the test tasks would be tuning on the test set"
        )
    paths = snapshot_paths(run_dir)
    if not paths:
        raise CheckpointError(f"{run_dir} has no snapshots or latest.pt to select from")
    candidates = [load_policy(path) for path in paths]
    if any(c.kind != "maml" for c in candidates):
        raise ValueError(f"{run_dir} is not a meta-training run; there is nothing to select")
    env = candidates[0].env
    test = held_out_tasks(env, num_tasks, test_seed) if test_tasks is None else test_tasks
    tasks, disjoint = validation_tasks(env, num_tasks, validation_seed, test)
    scores, seen = [], set()
    for loaded in candidates:
        if loaded.iteration in seen:  # latest.pt may repeat the last snapshot
            continue
        seen.add(loaded.iteration)
        curve = evaluate_policy_curve(
            loaded, tasks, episodes, steps, validation_seed, later_step_ratio=later_step_ratio
        )
        scores.append((loaded.iteration, str(loaded.path), float(curve.mean[steps])))
    best = max(range(len(scores)), key=lambda i: scores[i][2])
    chosen = next(c for c in candidates if str(c.path) == scores[best][1])
    return Selection(chosen, scores, validation_seed, disjoint, steps, later_step_ratio)
