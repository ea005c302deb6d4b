"""Any Gymnasium env with a task distribution, by id: lookup, API check, defaults.

An env id may be ``module:EnvId`` (Gymnasium's convention: ``module`` is imported first, so
that it can register ``EnvId``). The minimal task API is two methods on the bare env:

- ``sample_tasks(n, rng)``: ``n`` tasks drawn with a ``numpy.random.Generator``;
- ``set_task(task)``: make ``task`` the env's current task.

A task must round-trip through JSON (checkpoints and evaluation files store tasks). An env
that does not subclass :class:`envs.TaskEnv` is wrapped in :class:`TaskFamily`, which gives
it the rest of the API with defaults: JSON validation, the batched form on copies of the env
(:mod:`envs.copies`), and an error from ``task_vector`` saying the oracle needs one.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from envs.base import BatchedTaskEnv, Task, TaskEnv

TASK_API = {
    "sample_tasks": "sample_tasks(self, n: int, rng: numpy.random.Generator) -> list[dict]",
    "set_task": "set_task(self, task: dict) -> None",
}


class TaskAPIError(ValueError):
    """An env id or env that cannot serve as a task distribution, with the reason."""


def find_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id`` (``module:EnvId`` imports ``module`` first)."""
    import envs  # registers the metarl ids

    envs.register_all()
    if not isinstance(env_id, str) or not env_id.strip():
        raise TaskAPIError(f"an env id must be a non-empty string, got {env_id!r}")
    module, name = env_id.split(":", 1) if ":" in env_id else (None, env_id)
    if module is not None:
        import_env_module(module, env_id)
    try:
        return gym.spec(name)
    except gym.error.Error as error:
        known = ", ".join(sorted([*envs.REGISTERED, *envs.METAWORLD]))
        where = f"after importing {module!r}" if module else "in Gymnasium's registry"
        raise TaskAPIError(
            f"unknown env {env_id!r}: no id {name!r} {where} ({error}). The metarl envs: "
            f"{known}; your own: 'yourmodule:YourEnv-v0', registered in yourmodule with "
            "gymnasium.register(..., max_episode_steps=...)"
        ) from error


def import_env_module(module: str, env_id: str) -> None:
    """Import the ``module`` of a ``module:EnvId`` id (from the current folder too)."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would: the user's module beside them
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise TaskAPIError(
            f"env {env_id!r}: cannot import module {module!r} ({error}); run from the folder "
            "that holds it or put it on PYTHONPATH"
        ) from error
    except Exception as error:  # raised by the user's module while it was imported
        raise TaskAPIError(
            f"env {env_id!r}: importing {module!r} failed: {type(error).__name__}: {error}"
        ) from error


def episode_horizon(env_id: str) -> int:
    """The episode length ``env_id`` is registered with (``max_episode_steps``)."""
    horizon = find_spec(env_id).max_episode_steps
    if horizon is None or horizon <= 0:
        raise TaskAPIError(
            f"env {env_id!r} is registered without max_episode_steps; meta-RL samples "
            "fixed-length episodes: gymnasium.register(..., max_episode_steps=200)"
        )
    return int(horizon)


def missing_task_methods(env: object) -> list[str]:
    """The methods of the minimal task API that ``env`` lacks."""
    return [name for name in TASK_API if not callable(getattr(env, name, None))]


def json_task(task: Any, env_name: str) -> Task:
    """``task`` in its JSON form (what a checkpoint gives back), or a ``TaskAPIError``."""
    if not isinstance(task, Mapping):
        raise TaskAPIError(f"{env_name}: a task must be a dict, got {type(task).__name__}")
    try:
        text = json.dumps(dict(task), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TaskAPIError(
            f"{env_name}: task {task!r} is not JSON-serialisable ({error}); use str keys and "
            "plain floats, ints, strings and lists (numpy values: .tolist() or float())"
        ) from error
    return json.loads(text)


class TaskFamily(TaskEnv, gym.Wrapper):
    """The full task API around a bare env that has only the minimal one.

    Uses the env's own ``validate_task``, ``task_vector`` and ``batched`` where it has them.
    """

    def __init__(self, env: gym.Env, env_id: str) -> None:
        gym.Wrapper.__init__(self, env)
        self.env_id = env_id
        self._name = type(env).__name__
        own = getattr(env, "task", None)
        self.set_task(own if isinstance(own, Mapping) else self.default_task())

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return list(self.env.sample_tasks(n, rng))

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        own = getattr(self.env, "sample_test_tasks", None)
        return list(own(n, rng)) if callable(own) else self.sample_tasks(n, rng)

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        own = getattr(self.env, "validate_task", None)
        return json_task(own(task) if callable(own) else task, self._name)

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        own = getattr(self.env, "task_vector", None)
        if not callable(own):
            return super().task_vector(task)
        return np.asarray(own(task), dtype=np.float32).reshape(-1)

    def set_task(self, task: Mapping[str, Any]) -> None:
        super().set_task(task)
        self.env.set_task(self.task)

    def batched(self, num_copies: int) -> BatchedTaskEnv:
        own = getattr(self.env, "batched", None)
        return own(num_copies) if callable(own) else super().batched(num_copies)


def as_task_env(env: gym.Env, env_id: str) -> TaskEnv:
    """``env`` (a bare env) with the full task API, or a ``TaskAPIError`` naming what is missing."""
    if isinstance(env, TaskEnv):
        return env
    missing = missing_task_methods(env)
    if missing:
        wanted = "\n".join(f"  def {TASK_API[name]}" for name in missing)
        raise TaskAPIError(
            f"env {env_id!r} ({type(env).__name__}) is not a task distribution: it lacks "
            f"{', '.join(missing)}. Add to the env class:\n{wanted}\n"
            "(or subclass envs.TaskEnv; see the README's 'Your own task family')"
        )
    return TaskFamily(env, env_id)


def check_spaces(env: gym.Env, env_id: str) -> None:
    """The policies need flat Box observations and a bounded Box action space."""
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise TaskAPIError(f"env {env_id!r}: observations must be a 1-D Box, got {obs}")
    if not isinstance(act, gym.spaces.Box) or len(act.shape) != 1:
        raise TaskAPIError(f"env {env_id!r}: actions must be a 1-D Box, got {act}")
    if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        raise TaskAPIError(f"env {env_id!r}: the action space must be bounded, got {act}")


def make_task_env(env_id: str) -> TaskEnv:
    """The bare task env of ``env_id`` with the full task API, checked.

    Checks, before anything else runs: the id exists, the env has the task API, flat Box
    spaces and a horizon, and two sampled tasks survive a JSON round trip.
    """
    spec = find_spec(env_id)
    episode_horizon(env_id)
    try:
        env = gym.make(spec).unwrapped
    except ImportError as error:  # an optional dependency (Meta-World) says how to get it
        raise TaskAPIError(f"env {env_id!r}: {error}") from error
    except Exception as error:
        raise TaskAPIError(
            f"env {env_id!r}: creating it failed: {type(error).__name__}: {error}"
        ) from error
    task_env = as_task_env(env, env_id)
    check_spaces(task_env, env_id)
    tasks = task_env.sample_tasks(2, np.random.default_rng(0))
    if not isinstance(tasks, list | tuple) or len(tasks) != 2:
        raise TaskAPIError(
            f"env {env_id!r}: sample_tasks(2, rng) must return a list of 2 tasks, got {tasks!r}"
        )
    for task in tasks:
        json_task(task_env.validate_task(task), type(env).__name__)
    return task_env


def require_task_vector(env_id: str) -> TaskEnv:
    """The task env of ``env_id``, checked to support the oracle (a ``task_vector`` and a
    readable current ``task``); a ``TaskAPIError`` saying what is missing otherwise."""
    task_env = make_task_env(env_id)
    task_env.task_vector(task_env.task)  # TaskEnv's default raises, naming the method
    bare = task_env.unwrapped
    if not isinstance(bare, TaskEnv) and not isinstance(getattr(bare, "task", None), Mapping):
        raise TaskAPIError(
            f"{type(bare).__name__} has no task property (the current task as a dict); the "
            "oracle baseline reads it to append the task vector to each observation"
        )
    return task_env
