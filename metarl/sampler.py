"""Rollouts of many tasks at once: one batched env, one policy call per time step.

The sampler only collects data. Copy ``i * episodes_per_task + j`` of the batched env
runs episode ``j`` of task ``i``; the result is a time-major :class:`Episodes` batch.

Action noise comes from one generator, or from one generator per task: then a task's
episodes depend only on its own stream and its copies' reset seeds, not on which other
tasks are sampled with it (what makes distributed training independent of the number of
ranks, :mod:`metarl.distributed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.base import BatchedTaskEnv, to_env_actions
from metarl.episodes import Episodes, flagged_first
from metarl.policies import Params, distribution_params, gaussian_log_prob


def action_noise(
    generator: torch.Generator | Sequence[torch.Generator],
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
) -> Callable[[int], torch.Tensor]:
    """``t -> `` standard normal noise ``[1, tasks, episodes, act_dim]`` for time step ``t``.

    One generator: drawn step by step. One per task: each task's ``[T, episodes, act_dim]``
    block is drawn from its own generator at once.
    """
    horizon, num_tasks, episodes, act_dim = shape
    if isinstance(generator, torch.Generator):
        return lambda t: torch.randn(
            1, num_tasks, episodes, act_dim, generator=generator, dtype=dtype
        )
    if len(generator) != num_tasks:
        raise ValueError(f"{len(generator)} generators for {num_tasks} tasks")
    noise = torch.stack(
        [torch.randn(horizon, episodes, act_dim, generator=g, dtype=dtype) for g in generator],
        dim=1,
    )
    return lambda t: noise[t].unsqueeze(0)


@torch.no_grad()
def rollouts(
    policy: nn.Module,
    params: Params,
    env: BatchedTaskEnv,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    generator: torch.Generator | Sequence[torch.Generator],
    env_seed: int | None = None,
    per_task: bool = False,
    deterministic: bool = False,
) -> Episodes:
    """Run ``episodes_per_task`` episodes of every task with ``pi_params``.

    ``params`` are shared by all tasks, or per task (leading task dimension) if
    ``per_task``. Actions are drawn with ``generator``, or with ``generator[i]`` for task
    ``i`` if it is a sequence; ``env_seed`` seeds the envs' reset noise (copy ``k`` gets
    ``env_seed + k``). With ``deterministic`` the policy's mean action is taken. Actions are
    recorded in policy units; the env gets them through :func:`envs.to_env_actions`.
    """
    num_tasks = len(tasks)
    if env.num_copies != num_tasks * episodes_per_task:
        raise ValueError(
            f"env has {env.num_copies} copies, need {num_tasks} tasks x {episodes_per_task} episodes"
        )
    dtype = next(iter(params.values())).dtype
    copy_tasks = [task for task in tasks for _ in range(episodes_per_task)]
    horizon = env.max_episode_steps
    shape = (horizon, num_tasks, episodes_per_task)
    observations = torch.zeros(*shape, env.observation_dim, dtype=dtype)
    actions = torch.zeros(*shape, env.action_dim, dtype=dtype)
    rewards = torch.zeros(shape, dtype=dtype)
    mask = torch.zeros(shape, dtype=dtype)
    log_probs = torch.zeros(shape, dtype=dtype)
    successes = None  # filled in if the env reports info["success"]
    noise_of_step = action_noise(generator, (*shape, env.action_dim), dtype)

    obs = torch.as_tensor(env.reset(copy_tasks, seed=env_seed), dtype=dtype).reshape(
        num_tasks, episodes_per_task, -1
    )
    alive = torch.ones(num_tasks, episodes_per_task, dtype=torch.bool)
    for t in range(horizon):
        mean, log_std = distribution_params(policy, params, obs.unsqueeze(0), per_task)
        noise = 0.0 if deterministic else torch.exp(log_std) * noise_of_step(t)
        action = (mean + noise)[0]
        observations[t], actions[t], mask[t] = obs, action, alive.to(dtype)
        log_probs[t] = gaussian_log_prob(mean, log_std, action.unsqueeze(0))[0]
        env_actions = to_env_actions(
            action.reshape(-1, env.action_dim).numpy(), env.action_low, env.action_high
        )
        next_obs, reward, terminated, truncated = env.step(env_actions)
        rewards[t] = torch.as_tensor(reward, dtype=dtype).reshape(num_tasks, episodes_per_task)
        success = getattr(env, "last_info", {}).get("success")
        if success is not None:
            if successes is None:
                successes = torch.zeros(shape, dtype=dtype)
            successes[t] = torch.as_tensor(success, dtype=dtype).reshape(alive.shape)
        ended = torch.as_tensor(np.logical_or(terminated, truncated)).reshape(alive.shape)
        alive = alive & ~ended
        if not alive.any():
            break
        obs = torch.as_tensor(next_obs, dtype=dtype).reshape(num_tasks, episodes_per_task, -1)
    return Episodes(
        observations,
        actions,
        rewards * mask,
        mask,
        log_probs=log_probs * mask,
        successes=None if successes is None else successes * mask,
    )


ROUND_SEED_STRIDE = 10**7  # round r resets copy k with env_seed + k + r * stride


def rollouts_of_min_steps(
    policy: nn.Module,
    params: Params,
    env: BatchedTaskEnv,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    generator: torch.Generator | Sequence[torch.Generator],
    env_seed: int | None = None,
    per_task: bool = False,
) -> Episodes:
    """The paper's batch per task: whole episodes until each task has at least
    ``episodes_per_task * horizon`` valid steps, so episodes that end early (falls, goals
    reached) are made up for with more episodes.

    Sampled in rounds of :func:`rollouts`; a round's episodes of a task are kept, in order,
    while the task still needs steps, so what a task gets depends on that task alone. Tasks
    end up with different numbers of episodes (unused slots masked out,
    :attr:`Episodes.present`). At most ``horizon`` rounds: each gives every task at least
    ``episodes_per_task`` steps.
    """
    target = episodes_per_task * env.max_episode_steps
    rounds: list[Episodes] = []
    kept: list[torch.Tensor] = []
    steps = None
    for round_index in range(env.max_episode_steps):
        seed = None if env_seed is None else env_seed + round_index * ROUND_SEED_STRIDE
        batch = rollouts(policy, params, env, tasks, episodes_per_task, generator, seed, per_task)
        lengths = batch.mask.sum(0)  # [tasks, episodes]
        steps = torch.zeros(lengths.shape[0], dtype=lengths.dtype) if steps is None else steps
        before = steps[:, None] + torch.cumsum(lengths, dim=1) - lengths
        keep = before < target
        rounds.append(batch)
        kept.append(keep)
        steps = steps + (lengths * keep).sum(1)
        if bool((steps >= target).all()):
            break
    return _kept_episodes(rounds, torch.cat(kept, dim=1))


def _kept_episodes(rounds: list[Episodes], keep: torch.Tensor) -> Episodes:
    """The kept episodes of ``rounds`` (``keep``: ``[tasks, all episodes]``), moved to the
    front of each task's slots; slots past a task's count are masked out."""
    if len(rounds) == 1:
        return rounds[0]
    counts = keep.sum(1)
    order = flagged_first(keep)  # per task, its kept episodes first, in order
    width = order.shape[1]
    used = (torch.arange(width)[None, :] < counts[:, None]).to(rounds[0].rewards.dtype)
    fields: dict[str, torch.Tensor | None] = {}
    for field in dataclasses.fields(Episodes):
        parts = [getattr(batch, field.name) for batch in rounds]
        if parts[0] is None:
            fields[field.name] = None
            continue
        joined = torch.cat(parts, dim=2)  # [T, tasks, all episodes, ...]
        index = order.reshape(1, *order.shape, *[1] * (joined.dim() - 3))
        value = torch.take_along_dim(joined, index, 2)
        if field.name not in ("observations", "actions"):
            value = value * used.reshape(1, *used.shape, *([1] * (value.dim() - 3)))
        fields[field.name] = value
    return Episodes(**fields)
