"""The task API shared by every metarl environment.

A task environment is a plain ``gymnasium.Env`` that behaves as a fixed-task env
(so Gymnasium and Stable-Baselines3 code can use it unchanged) and adds:

- ``sample_tasks(n, rng)``: draw ``n`` tasks reproducibly from a ``numpy.random.Generator``;
- ``set_task(task)`` / ``task`` / ``reset(options={"task": task})``;
- ``validate_task(task)``: the canonical form of a task, or ``ValueError`` naming the problem
  (default: the task's JSON form);
- ``task_vector(task)``: the task parameters as a flat float vector (for the oracle form;
  no default);
- ``batched(num_copies)``: a :class:`BatchedTaskEnv` stepping many copies at once
  (default: copies of the env, :mod:`envs.copies`).

Only ``sample_tasks`` must be written; an env that does not subclass :class:`TaskEnv` needs
``sample_tasks`` and ``set_task`` (:mod:`envs.task_api` adds the rest).

A task is a small JSON-serialisable mapping such as ``{"goal": [0.3, -0.1]}``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

Task = dict[str, Any]


class TaskEnv(abc.ABC):
    """Mixin for a Gymnasium env whose reward or dynamics depend on a task.

    Put it first among the bases (``class MyEnv(TaskEnv, gym.Env)``) and call
    ``self.init_task(task)`` in ``__init__``. ``reset(options={"task": t})`` sets the
    task, then defers to the env's own ``reset``.
    """

    def init_task(self, task: Mapping[str, Any] | None = None) -> None:
        self._task: Task = self.validate_task(task) if task is not None else self.default_task()

    # --- the task distribution -------------------------------------------------
    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` tasks from the task distribution."""

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` held-out tasks for evaluation.

        Default: the training distribution (evaluation uses another seed); a benchmark with
        a test split (Meta-World's) overrides it.
        """
        return self.sample_tasks(n, rng)

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        """The canonical form of ``task``; ``ValueError`` if it is malformed.

        Default: the task's JSON form (what a checkpoint gives back), refusing a task that
        does not survive a JSON round trip. Override to check the task's own fields.
        """
        from envs.task_api import json_task

        return json_task(task, type(self).__name__)

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        """The task parameters as a flat float32 vector (what an oracle policy observes).

        No default: only the oracle baseline needs it, and it says so.
        """
        from envs.task_api import TaskAPIError

        raise TaskAPIError(
            f"{type(self.unwrapped).__name__} has no task_vector(task) -> np.ndarray; the "
            "oracle baseline observes its task as a flat float vector, so the env must define one"
        )

    def default_task(self) -> Task:
        """The task used before any ``set_task`` call (default: the first of seed 0's draws)."""
        return self.validate_task(self.sample_tasks(1, np.random.default_rng(0))[0])

    def batched(self, num_copies: int) -> BatchedTaskEnv:
        """A batched form stepping ``num_copies`` copies, each with its own task.

        Default: copies of this env made with ``gymnasium.make`` (:mod:`envs.copies`).
        """
        from envs.copies import batched_copies

        return batched_copies(self, num_copies)

    # --- fixed-task behaviour ---------------------------------------------------
    @property
    def task(self) -> Task:
        if not hasattr(self, "_task"):
            self._task = self.default_task()
        return dict(self._task)

    def set_task(self, task: Mapping[str, Any]) -> None:
        self._task = self.validate_task(task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options and "task" in options:
            options = dict(options)
            self.set_task(options.pop("task"))
        return super().reset(seed=seed, options=options or None)  # type: ignore[misc]


def to_env_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Policy actions in ``[-1, 1]^d`` mapped affinely onto ``[low, high]``, then clipped.

    The MAML paper's code wrapped every env this way (rllab's ``normalize``), so a policy's
    actions mean the same on every env and its exploration noise scales with the bounds;
    the env (and every cost it charges) only ever sees actions inside its bounds.
    Gymnasium's ``RescaleAction`` + ``ClipAction`` do the same for one env.
    """
    actions = np.asarray(actions, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return np.clip(low + (actions + 1.0) * 0.5 * (high - low), low, high)


def control_cost(
    actions: np.ndarray, weight: float, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """``weight * ||clip(a, low, high)||^2`` over the last axis, in float64.

    Charged on the clipped action, as the paper's code did: the simulator never applies
    more than the bounds, so an out-of-range action costs what its clipped value costs.
    """
    clipped = np.clip(np.asarray(actions, dtype=np.float64), low, high)
    return weight * np.sum(np.square(clipped), axis=-1)


class PolicyActions(gym.ActionWrapper):
    """A single env that takes actions in policy units ``[-1, 1]^d`` (see :func:`to_env_actions`).

    What the toolkit's policies, baselines and renderers step; the batched form gets the
    same mapping from the sampler.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"policy actions need a Box action space, got {space}")
        self._low, self._high = space.low, space.high
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        return to_env_actions(action, self._low, self._high).astype(self.env.action_space.dtype)


class BatchedTaskEnv(abc.ABC):
    """Many copies of one task env stepped together, each with its own task.

    Observations are ``[num_copies, obs_dim]`` float32 arrays, actions ``[num_copies, act_dim]``
    in the env's own units, inside ``[action_low, action_high]`` (policies act in ``[-1, 1]``
    and go through :func:`to_env_actions`). A copy whose episode has ended keeps returning
    its last observation and zero reward until the next ``reset``; the sampler masks those
    steps out.
    """

    num_copies: int
    observation_dim: int
    action_dim: int
    max_episode_steps: int
    action_low: np.ndarray
    action_high: np.ndarray

    @abc.abstractmethod
    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        """Start one episode in every copy; ``tasks[i]`` is copy ``i``'s task."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy: returns ``(obs, rewards, terminated, truncated)``."""

    def close(self) -> None:  # noqa: B027  (most batched envs hold nothing to release)
        """Release threads or worker processes; the env is unusable afterwards."""


def check_actions(actions: np.ndarray, num_copies: int, action_dim: int) -> np.ndarray:
    """Return ``actions`` as float64 ``[num_copies, action_dim]``; raise ``ValueError`` if malformed."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != (num_copies, action_dim):
        raise ValueError(
            f"actions must have shape ({num_copies}, {action_dim}), got {actions.shape}"
        )
    if not np.all(np.isfinite(actions)):
        raise ValueError("actions contain NaN or infinity")
    return actions


def require_keys(task: Mapping[str, Any], keys: Sequence[str], env_name: str) -> None:
    """Raise ``ValueError`` unless ``task`` is a mapping with exactly ``keys``."""
    if not isinstance(task, Mapping):
        raise ValueError(
            f"{env_name}: a task must be a mapping like {{'{keys[0]}': ...}}, got {task!r}"
        )
    missing = [k for k in keys if k not in task]
    unknown = [k for k in task if k not in keys]
    if missing or unknown:
        raise ValueError(
            f"{env_name}: malformed task {dict(task)!r}: "
            f"expected keys {list(keys)}, missing {missing}, unknown {unknown}"
        )


class OracleObservation(gym.ObservationWrapper):
    """Appends the current task's parameters to the observation (the oracle baseline's view)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        task_env: TaskEnv = env.unwrapped  # type: ignore[assignment]
        base = env.observation_space
        extra = task_env.task_vector(task_env.task).shape[0]
        low = np.concatenate([np.broadcast_to(base.low, base.shape), np.full(extra, -np.inf)])
        high = np.concatenate([np.broadcast_to(base.high, base.shape), np.full(extra, np.inf)])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        task_env: TaskEnv = self.env.unwrapped  # type: ignore[assignment]
        return np.concatenate([observation, task_env.task_vector(task_env.task)]).astype(np.float32)


def validate_number(
    task: Mapping[str, Any], key: str, low: float, high: float, env_name: str
) -> float:
    """The task's single number ``task[key]``, checked to lie in ``[low, high]``."""
    require_keys(task, [key], env_name)
    value = task[key]
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{env_name}: {key} must be a number, got {value!r}")
    if not np.isfinite(value) or not low <= value <= high:
        raise ValueError(
            f"{env_name}: {key} {value!r} is outside the task distribution [{low}, {high}]"
        )
    return float(value)


def validate_goal(task: Mapping[str, Any], low: float, high: float, env_name: str) -> list[float]:
    """The task's 2D ``goal``, checked to lie in ``[low, high]^2``."""
    require_keys(task, ["goal"], env_name)
    try:
        goal = np.asarray(task["goal"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{env_name}: goal must be two numbers, got {task['goal']!r}") from error
    if goal.shape != (2,) or not np.all(np.isfinite(goal)):
        raise ValueError(f"{env_name}: goal must be two finite numbers, got {task['goal']!r}")
    if np.any(goal < low) or np.any(goal > high):
        raise ValueError(
            f"{env_name}: goal {goal.tolist()} is outside the task distribution [{low}, {high}]^2"
        )
    return [float(goal[0]), float(goal[1])]


def validate_direction(task: Mapping[str, Any], env_name: str) -> int:
    """The direction of a ``{"direction": ±1}`` task, or ``ValueError``."""
    require_keys(task, ["direction"], env_name)
    direction = task["direction"]
    valid = not isinstance(direction, bool) and isinstance(direction, int | float | np.number)
    if not valid or direction not in (-1, 1):
        raise ValueError(f"{env_name}: direction must be -1 or +1, got {direction!r}")
    return int(direction)


class DirectionTasks:
    """The ``{"direction": ±1}`` task distribution (forward or backward, equally likely).

    Mix in before the env class: ``class MyDirEnv(DirectionTasks, MyTaskEnvBase)``.
    """

    def default_task(self) -> Task:
        return {"direction": 1}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [{"direction": int(d)} for d in rng.choice([-1, 1], size=n)]

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        return {"direction": validate_direction(task, type(self).__name__.removesuffix("Env"))}

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        return np.array([task["direction"]], dtype=np.float64)


class GoalTasks:
    """The ``{"goal": [x, y]}`` task distribution, uniform on ``[GOAL_LOW, GOAL_HIGH]^2``.

    Mix in before the env class and set the bounds: ``class MyGoalEnv(GoalTasks, MyBase)``
    with ``GOAL_LOW, GOAL_HIGH = -1.0, 1.0``.
    """

    GOAL_LOW: float
    GOAL_HIGH: float

    def default_task(self) -> Task:
        return {"goal": [0.0, 0.0]}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        goals = rng.uniform(self.GOAL_LOW, self.GOAL_HIGH, size=(n, 2))
        return [{"goal": [float(g[0]), float(g[1])]} for g in goals]

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        name = type(self).__name__.removesuffix("Env")
        return {"goal": validate_goal(task, self.GOAL_LOW, self.GOAL_HIGH, name)}
