"""Parameterized Gymnasium environments (task distributions), registered as ``metarl/<Name>-v0``."""

from __future__ import annotations

import gymnasium as gym

from envs.base import (
    BatchedTaskEnv,
    OracleObservation,
    PolicyActions,
    Task,
    TaskEnv,
    to_env_actions,
)

REGISTERED: dict[str, tuple[str, int]] = {
    "metarl/Navigation2D-v0": ("envs.navigation:Navigation2DEnv", 100),
    "metarl/HalfCheetahVel-v0": ("envs.half_cheetah:HalfCheetahVelEnv", 200),
    "metarl/HalfCheetahDir-v0": ("envs.half_cheetah:HalfCheetahDirEnv", 200),
    "metarl/AntVel-v0": ("envs.ant:AntVelEnv", 200),
    "metarl/AntDir-v0": ("envs.ant:AntDirEnv", 200),
    "metarl/AntGoal-v0": ("envs.ant:AntGoalEnv", 200),
}


def register_all() -> None:
    """Register every metarl environment with Gymnasium (idempotent)."""
    for env_id, (entry_point, horizon) in REGISTERED.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=horizon)


def make_task_env(env_id: str) -> TaskEnv:
    """The bare (unwrapped) task env for ``env_id``; unknown ids get an error listing the known ones."""
    if env_id not in REGISTERED:
        known = ", ".join(sorted(REGISTERED))
        raise ValueError(f"unknown env {env_id!r}; known envs: {known}")
    register_all()
    return gym.make(env_id).unwrapped  # type: ignore[return-value]


register_all()

__all__ = [
    "BatchedTaskEnv",
    "OracleObservation",
    "PolicyActions",
    "Task",
    "TaskEnv",
    "make_task_env",
    "register_all",
    "to_env_actions",
]
