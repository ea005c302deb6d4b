"""The batched form of any task env: copies of the single env, stepped in turn or in processes.

What a task family without its own ``batched()`` is stepped through. Conventions follow
Gymnasium's vector envs: copy ``i`` is reset with ``seed + i``, observations and rewards are
stacked, and numeric ``info`` entries come back as arrays (``last_info``). Unlike
Gymnasium's vector envs a copy is never reset automatically: once its episode ends it keeps
its last observation and zero reward until the next ``reset`` (the :class:`BatchedTaskEnv`
contract), so a copy's transitions are exactly the single env's.

Two forms:

- ``sync``: every copy in this process, stepped one after another;
- ``async``: the copies split over worker processes (one per core), each stepping its
  share in turn.

:func:`choose_mode` picks between them as measured (``scripts/benchmark_copies.py``, see the
README): processes pay for themselves from about 50 copies per worker.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from envs.base import BatchedTaskEnv, TaskEnv, check_actions

MODES = ("sync", "async")
ASYNC_MIN_COPIES_PER_WORKER = 50  # the measured crossover on a 2-core machine


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_mode(num_copies: int, num_workers: int) -> str:
    """``async`` where every worker gets enough copies to beat the pipe's overhead."""
    if num_workers >= 2 and num_copies >= ASYNC_MIN_COPIES_PER_WORKER * num_workers:
        return "async"
    return "sync"


def make_copy(spec: gym.envs.registration.EnvSpec) -> TaskEnv:
    """A fresh bare copy of the env ``spec`` describes, with the full task API."""
    from envs.task_api import as_task_env

    return as_task_env(gym.make(spec).unwrapped, spec.id)


def batched_copies(
    env: TaskEnv, num_copies: int, mode: str | None = None, num_workers: int | None = None
) -> BatchedTaskEnv:
    """``num_copies`` copies of ``env`` (made by ``gymnasium.make``) as one batched env,
    stepped in ``mode`` (default :func:`choose_mode`) by ``num_workers`` processes if async
    (default: one per available core)."""
    from envs.task_api import TaskAPIError

    spec = env.unwrapped.spec
    name = type(env.unwrapped).__name__
    if spec is None:
        raise TaskAPIError(
            f"{name} was not made by gymnasium.make, so its copies cannot be: register it "
            "(gymnasium.register(id, entry_point=..., max_episode_steps=...)) and make it by id"
        )
    horizon = gym.spec(spec.id).max_episode_steps  # the bare env's spec drops it
    if horizon is None:
        raise TaskAPIError(f"{spec.id} is registered without max_episode_steps")
    factory = functools.partial(make_copy, spec)
    num_workers = num_workers or available_cores()
    mode = mode or choose_mode(num_copies, num_workers)
    if mode == "sync":
        return EnvCopies(factory, num_copies, horizon)
    if mode == "async":
        return ProcessEnvCopies(factory, num_copies, horizon, num_workers)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _numeric(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.number) or (
        isinstance(value, np.ndarray) and value.shape == ()
    )


def take_dimensions(batched: BatchedTaskEnv, env: gym.Env) -> None:
    """Set ``batched``'s observation/action sizes and action bounds from one copy ``env``."""
    batched.observation_dim = int(np.prod(env.observation_space.shape))
    batched.action_dim = int(np.prod(env.action_space.shape))
    batched.action_low = np.asarray(env.action_space.low, dtype=np.float64)
    batched.action_high = np.asarray(env.action_space.high, dtype=np.float64)


class EnvCopies(BatchedTaskEnv):
    """``num_copies`` copies of one task env in this process, stepped one after another."""

    def __init__(
        self, make: Callable[[], TaskEnv], num_copies: int, max_episode_steps: int
    ) -> None:
        if num_copies <= 0:
            raise ValueError(f"num_copies must be positive, got {num_copies}")
        self.envs = [make() for _ in range(num_copies)]
        self.num_copies = num_copies
        self.max_episode_steps = int(max_episode_steps)
        take_dimensions(self, self.envs[0])
        self._action_dtype = self.envs[0].action_space.dtype
        self._obs = np.zeros((num_copies, self.observation_dim), dtype=np.float32)
        self._done = np.ones(num_copies, dtype=bool)
        self._steps = 0
        self.last_info: dict[str, np.ndarray] = {}

    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        if len(tasks) != self.num_copies:
            raise ValueError(f"expected {self.num_copies} tasks, got {len(tasks)}")
        for i, (env, task) in enumerate(zip(self.envs, tasks, strict=True)):
            env.set_task(task)
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            self._obs[i] = np.asarray(obs, dtype=np.float32).reshape(-1)
        self._done = np.zeros(self.num_copies, dtype=bool)
        self._steps = 0
        self.last_info = {}
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = check_actions(actions, self.num_copies, self.action_dim)
        rewards = np.zeros(self.num_copies)
        terminated = np.zeros(self.num_copies, dtype=bool)
        truncated = np.zeros(self.num_copies, dtype=bool)
        info: dict[str, np.ndarray] = {}
        live = np.flatnonzero(~self._done)
        for i in live:
            obs, reward, term, trunc, step_info = self.envs[i].step(
                actions[i].astype(self._action_dtype)
            )
            self._obs[i] = np.asarray(obs, dtype=np.float32).reshape(-1)
            rewards[i], terminated[i], truncated[i] = float(reward), bool(term), bool(trunc)
            for key, value in step_info.items():
                if _numeric(value):
                    info.setdefault(key, np.zeros(self.num_copies))[i] = float(value)
        self._steps += 1
        if self._steps >= self.max_episode_steps:
            truncated[live] |= ~terminated[live]
        self._done |= terminated | truncated
        self.last_info = info
        return self._obs.copy(), rewards, terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(connection: Any, make: Callable[[], TaskEnv], count: int, horizon: int) -> None:
    """A worker process: serves ``reset``/``step``/``close`` on its share of the copies.

    Ctrl-C is the parent's to handle (it finishes its iteration first), so it is ignored here.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        copies = EnvCopies(make, count, horizon)
        connection.send(("ok", None))
        while True:
            command, argument = connection.recv()
            if command == "reset":
                tasks, seed = argument
                connection.send(("ok", copies.reset(tasks, seed)))
            elif command == "step":
                result = copies.step(argument)
                connection.send(("ok", (*result, copies.last_info)))
            else:
                copies.close()
                connection.send(("ok", None))
                return
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException as error:  # report it, with the worker's traceback, to the parent
        connection.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class ProcessEnvCopies(BatchedTaskEnv):
    """``num_copies`` copies split over ``num_workers`` processes stepped in parallel."""

    def __init__(
        self,
        make: Callable[[], TaskEnv],
        num_copies: int,
        max_episode_steps: int,
        num_workers: int = 2,
        timeout_s: float = 600.0,
    ) -> None:
        if num_copies <= 0 or num_workers <= 0:
            raise ValueError(
                f"need positive num_copies and num_workers, got {num_copies}, {num_workers}"
            )
        self.num_copies = num_copies
        self.max_episode_steps = int(max_episode_steps)
        self.timeout_s = timeout_s
        probe = make()
        take_dimensions(self, probe)
        probe.close()
        counts = [
            len(c) for c in np.array_split(np.arange(num_copies), min(num_workers, num_copies))
        ]
        self._bounds = np.cumsum([0, *counts])
        context = mp.get_context("fork")
        self._connections, self._processes = [], []
        for count in counts:
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker, args=(child, make, count, max_episode_steps), daemon=True
            )
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)
        self._gather()
        self.last_info: dict[str, np.ndarray] = {}

    def _gather(self) -> list[Any]:
        results = []
        for k, connection in enumerate(self._connections):
            if not connection.poll(self.timeout_s):
                self.close()
                raise RuntimeError(f"env worker {k} did not answer within {self.timeout_s:.0f} s")
            try:
                status, value = connection.recv()
            except EOFError:
                self.close()
                raise RuntimeError(
                    f"env worker {k} died (exit code {self._processes[k].exitcode})"
                ) from None
            if status == "error":
                self.close()
                raise RuntimeError(f"env worker {k} failed: {value}")
            results.append(value)
        return results

    def _chunks(self, values: Sequence[Any]) -> list[Any]:
        return [values[a:b] for a, b in zip(self._bounds[:-1], self._bounds[1:], strict=True)]

    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        if len(tasks) != self.num_copies:
            raise ValueError(f"expected {self.num_copies} tasks, got {len(tasks)}")
        for connection, chunk, start in zip(
            self._connections, self._chunks(list(tasks)), self._bounds, strict=False
        ):
            connection.send(("reset", (chunk, None if seed is None else seed + int(start))))
        self.last_info = {}
        return np.concatenate(self._gather())

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = check_actions(actions, self.num_copies, self.action_dim)
        for connection, chunk in zip(self._connections, self._chunks(actions), strict=True):
            connection.send(("step", chunk))
        results = self._gather()
        obs, rewards, terminated, truncated = (
            np.concatenate([r[j] for r in results]) for j in range(4)
        )
        keys = sorted({key for r in results for key in r[4]})
        self.last_info = {
            key: np.concatenate([r[4].get(key, np.zeros(len(r[1]))) for r in results])
            for key in keys
        }
        return obs, rewards, terminated, truncated

    def close(self) -> None:
        for connection, process in zip(self._connections, self._processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):
                    connection.send(("close", None))
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self._connections, self._processes = [], []

    def __del__(self) -> None:
        if getattr(self, "_processes", None):
            self.close()
