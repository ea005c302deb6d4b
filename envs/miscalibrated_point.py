"""A worked example of your own task family: a point robot with miscalibrated motors.

The goal is fixed; what changes from task to task is the *dynamics*: the motors turn
each command by an unknown angle and scale it by an unknown gain, so the same action
moves the robot somewhere else in every task. A policy cannot see the miscalibration; it
must find out from rewards, which is what the inner loop's gradient step does.

It is everything a task family needs, and no more (see the README's "Your own task
family"): a Gymnasium env, ``sample_tasks`` and a task-aware ``step``. ``validate_task``
and ``task_vector`` are optional extras (clear errors, the oracle baseline); there is no
``batched()``: the toolkit steps copies of the env (:mod:`envs.copies`).

Train it like any other env::

    python scripts/train.py --env metarl/MiscalibratedPoint-v0 --iterations 100
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import Task, TaskEnv, require_keys

NAME = "MiscalibratedPoint"
GOAL = np.array([0.5, 0.0])
MAX_STEP = 0.1
GAIN_LOW, GAIN_HIGH = 0.5, 1.5


class MiscalibratedPointEnv(TaskEnv, gym.Env):
    """A point in the plane steered to a fixed goal through miscalibrated motors.

    - Observation: the position ``(x, y)``; episodes start at the origin.
    - Action: a command ``(dx, dy)`` in ``[-0.1, 0.1]^2``; the point moves by
      ``gain * R(angle) @ command``.
    - Reward: minus the distance to the goal ``(0.5, 0)`` after the move.
    - Task: ``{"angle": a, "gain": g}``, ``a ~ U[-pi, pi]``, ``g ~ U[0.5, 1.5]``.
    - Episode end: ``gymnasium.make`` truncates at 100 steps (the registered horizon).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-10.0, 10.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)
        self.set_task({"angle": 0.0, "gain": 1.0})

    # --- the task distribution: the one method a task family must write -------------
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        angles = rng.uniform(-math.pi, math.pi, size=n)
        gains = rng.uniform(GAIN_LOW, GAIN_HIGH, size=n)
        return [{"angle": float(a), "gain": float(g)} for a, g in zip(angles, gains, strict=True)]

    # --- optional: clear errors for a bad task, and the oracle's view -------------------
    def validate_task(self, task: Mapping[str, Any]) -> Task:
        require_keys(task, ["angle", "gain"], NAME)
        bounds = {"angle": (-math.pi, math.pi), "gain": (GAIN_LOW, GAIN_HIGH)}
        for key, (low, high) in bounds.items():
            value = task[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not low <= value <= high
            ):
                raise ValueError(
                    f"{NAME}: {key} must be a number in [{low}, {high}], got {value!r}"
                )
        return {"angle": float(task["angle"]), "gain": float(task["gain"])}

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        angle, gain = task["angle"], task["gain"]
        return np.array([math.cos(angle), math.sin(angle), gain], dtype=np.float32)

    # --- the task changes the dynamics ------------------------------------------------
    def set_task(self, task: Mapping[str, Any]) -> None:
        super().set_task(task)  # validates and stores it (``self.task``)
        angle, gain = self.task["angle"], self.task["gain"]
        cos, sin = math.cos(angle), math.sin(angle)
        self._motors = gain * np.array([[cos, -sin], [sin, cos]])

    # --- a plain Gymnasium env whose dynamics read the current task ---------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {}

    def step(self, action: np.ndarray):
        command = np.clip(np.asarray(action, dtype=np.float64), -MAX_STEP, MAX_STEP)
        self._position = np.clip(self._position + self._motors @ command, -10.0, 10.0)
        distance = float(np.linalg.norm(self._position - GOAL))
        return self._position.astype(np.float32), -distance, False, False, {"distance": distance}
