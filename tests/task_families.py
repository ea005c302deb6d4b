"""Task families as a user would write them in their own module (imported via ``module:EnvId``).

``LineGoal-v0`` has only the minimal task API (``sample_tasks``, ``set_task``) and does not
subclass ``envs.TaskEnv``: no ``batched()``, no ``task_vector()``, no ``validate_task()``.
The others are broken on purpose, each in one way.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gymnasium as gym
import numpy as np


class LineGoalEnv(gym.Env):
    """A point on a line pushed towards a goal it cannot see; the goal is the task."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-5.0, 5.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-0.2, 0.2, shape=(1,), dtype=np.float32)
        self.goal = 0.0
        self.position = 0.0

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [{"goal": float(g)} for g in rng.uniform(-1.0, 1.0, size=n)]

    def set_task(self, task: dict[str, Any]) -> None:
        self.goal = float(task["goal"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = float(self.np_random.uniform(-0.1, 0.1))  # seeded start
        return np.array([self.position], dtype=np.float32), {}

    def step(self, action: np.ndarray):
        self.position = float(np.clip(self.position + float(np.clip(action[0], -0.2, 0.2)), -5, 5))
        distance = abs(self.position - self.goal)
        reached = distance < 0.02
        obs = np.array([self.position], dtype=np.float32)
        return obs, -distance, reached, False, {"success": float(reached)}


class NoSetTaskEnv(LineGoalEnv):
    """Lacks ``set_task``."""

    set_task = None  # type: ignore[assignment]


class NumpyTaskEnv(LineGoalEnv):
    """Samples tasks holding numpy arrays, which JSON cannot store."""

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [{"goal": np.array([g])} for g in rng.uniform(-1.0, 1.0, size=n)]


class StepFailsEnv(LineGoalEnv):
    """Raises on its third step (to test how a worker's error reaches the trainer)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray):
        self.steps += 1
        if self.steps == 3:
            raise RuntimeError("the user's env broke")
        return super().step(action)


class RankFaultEnv(LineGoalEnv):
    """Fails on one rank of a distributed run, as ``METARL_TEST_FAULT=<hang|die>:<rank>:<n>``
    says: from the ``n``-th reset of a copy on that rank on, it sleeps for ever or exits."""

    resets = 0  # per process

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        kind, rank, after = os.environ.get("METARL_TEST_FAULT", "none:-1:0").split(":")
        RankFaultEnv.resets += 1
        if os.environ.get("RANK") == rank and RankFaultEnv.resets >= int(after):
            if kind == "hang":
                while True:
                    time.sleep(1.0)
            os._exit(3)
        return super().reset(seed=seed, options=options)


for name, env_class in {
    "LineGoal-v0": LineGoalEnv,
    "NoSetTask-v0": NoSetTaskEnv,
    "NumpyTask-v0": NumpyTaskEnv,
    "StepFails-v0": StepFailsEnv,
    "RankFault-v0": RankFaultEnv,
}.items():
    if name not in gym.registry:
        gym.register(name, entry_point=env_class, max_episode_steps=20)
if "NoHorizon-v0" not in gym.registry:
    gym.register("NoHorizon-v0", entry_point=LineGoalEnv)
