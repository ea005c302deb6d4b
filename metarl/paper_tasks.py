"""The 40 test tasks of the paper's own test scripts, drawn exactly as they drew them.

The MAML paper's table comes from ``maml_examples/test_maml_*.py`` in cbfinn/maml_rl: each
seeds NumPy's global generator and draws 40 goals (``np.random.seed(s)`` then
``np.random.uniform(low, high, size)``), and the env maps a goal to its task (the direction
envs run backwards below the middle of the range). NumPy's legacy ``RandomState`` draws the
same numbers today, so a result on these tasks compares with the paper's returns task for
task, not only in distribution. On tasks whose return depends strongly on the goal (Ant's
velocity, up to 3 m/s) the draw moves the mean return by tens.
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


def _directions(seed: int, high: float) -> list[Task]:
    """Goals ``U[0, high]`` mapped as the paper's direction envs did: backwards below
    ``high / 2``, forwards from it."""
    goals = _goals(seed, 0.0, high, (NUM_TEST_TASKS,))
    return [{"direction": -1 if g < high / 2 else 1} for g in goals]


# env id -> the paper's test script's draw (script named in each comment)
PAPER_TEST_TASKS: dict[str, Callable[[], list[Task]]] = {
    "metarl/Navigation2D-v0": _navigation,  # test_maml_point.py: seed 1, U[-0.5, 0.5]^2
    "metarl/HalfCheetahVel-v0": lambda: _velocities(1, 2.0),  # test_maml_cheetah.py
    "metarl/HalfCheetahDir-v0": lambda: _directions(1, 2.0),  # test_maml_cheetah_direc.py
    "metarl/AntVel-v0": lambda: _velocities(1, 3.0),  # test_maml_ant.py
    "metarl/AntDir-v0": lambda: _directions(2, 3.0),  # test_maml_ant_direc.py: seed 2
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
