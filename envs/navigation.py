"""2D point navigation to a goal: the MAML paper's toy task (Finn et al. 2017, section 5.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import BatchedTaskEnv, GoalTasks, TaskEnv, check_actions

MAX_STEP = 0.1
GOAL_TOLERANCE = 0.01
HORIZON = 100


class Navigation2DEnv(GoalTasks, TaskEnv, gym.Env):
    """A point in the plane moves towards a goal it cannot see.

    - Observation: the position ``(x, y)``; the episode starts at the origin.
    - Action: a displacement ``(dx, dy)``, clipped to ``[-0.1, 0.1]`` per coordinate
      (the toolkit's policies act in ``[-1, 1]``: a policy action ``a`` moves the point by
      ``0.1 * clip(a, -1, 1)``, as in the paper's code; see ``envs.PolicyActions``).
    - Reward: minus the Euclidean distance to the goal after the move (not squared).
    - Episode end: terminates when both coordinates are within 0.01 of the goal;
      ``gymnasium.make`` truncates at 100 steps.
    - Info: ``distance`` to the goal, and ``success`` (1.0 on the step that reaches the goal,
      else 0.0), so training and evaluation report how often adapted policies stop on the goal.
    - Task: ``{"goal": [gx, gy]}`` with the goal drawn from ``U[-0.5, 0.5]^2``.
    """

    GOAL_LOW, GOAL_HIGH = -0.5, 0.5

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | None = None) -> None:
        bound = MAX_STEP * HORIZON  # the farthest a point can get from the origin
        self.observation_space = gym.spaces.Box(-bound, bound, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        self.init_task(task)
        self._position = np.zeros(2)

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(task["goal"], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"Navigation2D: action must be 2 finite numbers, got {action!r}")
        self._position = self._position + np.clip(action, -MAX_STEP, MAX_STEP)
        offset = self._position - np.asarray(self._task["goal"])
        reward = -float(np.sqrt(np.sum(offset**2)))
        terminated = bool(np.all(np.abs(offset) < GOAL_TOLERANCE))
        info = {"distance": -reward, "success": float(terminated)}
        return self._position.astype(np.float32), reward, terminated, False, info

    def batched(self, num_copies: int) -> BatchedNavigation2D:
        return BatchedNavigation2D(num_copies)


class BatchedNavigation2D(BatchedTaskEnv):
    """``num_copies`` independent 2D navigation episodes stepped at once in numpy."""

    observation_dim = 2
    action_dim = 2
    max_episode_steps = HORIZON
    action_low = np.full(2, -MAX_STEP)
    action_high = np.full(2, MAX_STEP)

    def __init__(self, num_copies: int) -> None:
        if num_copies <= 0:
            raise ValueError(f"num_copies must be positive, got {num_copies}")
        self.num_copies = num_copies
        self._validator = Navigation2DEnv()
        self._positions = np.zeros((num_copies, 2))
        self._goals = np.zeros((num_copies, 2))
        self._done = np.zeros(num_copies, dtype=bool)
        self._steps = 0
        self.last_info: dict[str, np.ndarray] = {}  # per copy, as the single env's info

    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        if len(tasks) != self.num_copies:
            raise ValueError(f"expected {self.num_copies} tasks, got {len(tasks)}")
        self._goals = np.array([self._validator.validate_task(t)["goal"] for t in tasks])
        self._positions = np.zeros((self.num_copies, 2))
        self._done = np.zeros(self.num_copies, dtype=bool)
        self._steps = 0
        self.last_info = {}
        return self._positions.astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = check_actions(actions, self.num_copies, self.action_dim)
        live = ~self._done
        moved = self._positions + np.clip(actions, -MAX_STEP, MAX_STEP)
        self._positions = np.where(live[:, None], moved, self._positions)
        offset = self._positions - self._goals
        distances = np.sqrt(np.sum(offset**2, axis=1))
        rewards = np.where(live, -distances, 0.0)
        terminated = live & np.all(np.abs(offset) < GOAL_TOLERANCE, axis=1)
        self.last_info = {"distance": distances, "success": terminated.astype(np.float64)}
        self._steps += 1
        truncated = live & ~terminated & (self._steps >= self.max_episode_steps)
        self._done |= terminated | truncated
        return self._positions.astype(np.float32), rewards, terminated, truncated
