"""The 40 test tasks of the paper's own test scripts, drawn exactly as they drew them.

The MAML paper's table comes from ``maml_examples/test_maml_*.py`` in cbfinn/maml_rl: each
seeds NumPy's global generator and draws 40 goals (``np.random.seed(s)`` then
``np.random.uniform(low, high, size)``), and the env maps a goal to its task. NumPy's legacy
``RandomState`` draws the same numbers today, so a result on these tasks compares with the
paper's returns task for task, not only in distribution. On tasks whose return depends
strongly on the goal (Ant's velocity, up to 3 m/s) the draw moves the mean return by tens.

The direction tasks are drawn as the scripts that made the table's results drew them (the
results files of commit 4d41869, 2017-04-13): ``U(0.1, 0.8)``, backwards below 0.4, the
direction envs' rule of that day. An hour later (commit 7a92e6e) the envs switched at the
middle of ``U[0, 2]`` / ``U[0, 3]`` instead, the rule of the repository's later test scripts.
For HalfCheetahDir both rules give the same 40 directions (22 backwards); for AntDir they
differ on 5 tasks (20 backwards, not 25), and the paper's per-goal AntDir results split
exactly where the earlier rule does: its oracle scores 462-506 on the 20 backward tasks and
545-601 on the 20 forward ones, its pre-update policy +10 to +81 and -65 to -5.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Task = dict[str, object]
NUM_TEST_TASKS = 40


def _goals(seed: int, low: float, high: float, size: tuple[int, ...]) -> np.ndarray:
    """``np.random.seed(seed); np.random.uniform(low, high, size)``, without the global state."""
    return np.random.RandomState(seed).uniform(low, high, size=size)


def _navigation() -> list[Task]:  # test_maml_point.py
    goals = _goals(1, -0.5, 0.5, (NUM_TEST_TASKS, 2))
    return [{"goal": [float(x), float(y)]} for x, y in goals]


def _velocities(seed: int, high: float) -> list[Task]:
    return [{"velocity": float(v)} for v in _goals(seed, 0.0, high, (NUM_TEST_TASKS,))]


def _directions(seed: int) -> list[Task]:
    """Goals ``U(0.1, 0.8)``, backwards below 0.4 (the module docstring says why)."""
    goals = _goals(seed, 0.1, 0.8, (NUM_TEST_TASKS,))
    return [{"direction": -1 if g < 0.4 else 1} for g in goals]


# env id -> the paper's test script's draw (script named in each comment)
PAPER_TEST_TASKS: dict[str, Callable[[], list[Task]]] = {
    "metarl/Navigation2D-v0": _navigation,  # test_maml_point.py: seed 1, U[-0.5, 0.5]^2
    "metarl/HalfCheetahVel-v0": lambda: _velocities(1, 2.0),  # test_maml_cheetah.py
    "metarl/HalfCheetahDir-v0": lambda: _directions(1),  # test_maml_cheetah_direc.py: seed 1
    "metarl/AntVel-v0": lambda: _velocities(1, 3.0),  # test_maml_ant.py
    "metarl/AntDir-v0": lambda: _directions(2),  # test_maml_ant_direc.py: seed 2
}


def paper_test_tasks(env_id: str) -> list[Task]:
    """The paper's 40 test tasks for ``env_id``; a clear error for an env the paper's table
    does not have."""
    if env_id not in PAPER_TEST_TASKS:
        raise ValueError(
            f"the paper has no test tasks for {env_id!r}; it has them for "
            f"{', '.join(sorted(PAPER_TEST_TASKS))}"
        )
    return PAPER_TEST_TASKS[env_id]()
