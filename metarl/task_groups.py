"""Held-out results split by kind of task, where a task family has kinds.

The direction tasks (``{"direction": -1}`` or ``{"direction": 1}``) are two different tasks,
not points of a continuum: the mean over all test tasks can hide a meta-policy that adapts
to one direction only. So wherever every task is one field with a handful of discrete
values, evaluation also reports the mean return of each value's tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_GROUPS = 4  # more distinct values than this is a task index, not a kind


def task_groups(tasks: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """``{"field=value": [task indices]}`` when every task is the same single field holding
    one of 2..:data:`MAX_GROUPS` integer or string values; ``{}`` otherwise (continuous
    goals, several fields, one kind only)."""
    if not tasks or any(len(task) != 1 for task in tasks):
        return {}
    fields = {next(iter(task)) for task in tasks}
    if len(fields) != 1:
        return {}
    (field,) = fields
    values = [task[field] for task in tasks]
    if not all(isinstance(v, int | str) and not isinstance(v, bool) for v in values):
        return {}
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if not 2 <= len(distinct) <= MAX_GROUPS:
        return {}
    return {
        f"{field}={value}": [i for i, v in enumerate(values) if v == value] for value in distinct
    }


def group_means(
    returns: Sequence[Sequence[float]], groups: Mapping[str, Sequence[int]]
) -> dict[str, list[float]]:
    """Mean return of each group's tasks after each number of steps (``returns``:
    ``[steps + 1][tasks]``)."""
    return {
        name: [sum(row[i] for i in indices) / len(indices) for row in returns]
        for name, indices in groups.items()
    }


def groups_dict(
    returns: Sequence[Sequence[float]], groups: Mapping[str, Sequence[int]]
) -> dict[str, dict[str, Any]]:
    """The JSON form: per group, its number of tasks and its mean return after each step."""
    means = group_means(returns, groups)
    return {
        name: {
            "num_tasks": len(indices),
            "mean_return": {str(k): m for k, m in enumerate(means[name])},
        }
        for name, indices in groups.items()
    }


def group_lines(
    returns: Sequence[Sequence[float]], groups: Mapping[str, Sequence[int]], prefix: str = ""
) -> list[str]:
    """One printed line per group: ``direction=-1 (22 tasks): a / b / c``."""
    means = group_means(returns, groups)
    return [
        f"{prefix}{name} ({len(groups[name])} tasks): "
        + " / ".join(f"{m:.2f}" for m in means[name])
        for name in groups
    ]
