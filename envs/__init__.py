"""Parameterized Gymnasium environments (task distributions), registered as ``metarl/<Name>-v0``.

Any other Gymnasium id with the task API works too, including ``module:EnvId``
(:mod:`envs.task_api`).
"""

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
    # the README's worked example of a user's own task family (no batched(): envs.copies)
    "metarl/MiscalibratedPoint-v0": ("envs.miscalibrated_point:MiscalibratedPointEnv", 100),
}


# Meta-World (optional extra, its own environment: envs/metaworld_tasks.py)
METAWORLD: dict[str, dict[str, str]] = {
    "metarl/MetaWorld-ML1-reach-v0": {"benchmark": "ML1", "env_name": "reach-v3"},
    "metarl/MetaWorld-ML1-push-v0": {"benchmark": "ML1", "env_name": "push-v3"},
    "metarl/MetaWorld-ML1-pick-place-v0": {"benchmark": "ML1", "env_name": "pick-place-v3"},
    "metarl/MetaWorld-ML10-v0": {"benchmark": "ML10"},
}
METAWORLD_ENTRY_POINT = "envs.metaworld_tasks:MetaWorldTaskEnv"
METAWORLD_HORIZON = 500


def register_all() -> None:
    """Register every metarl environment with Gymnasium (idempotent)."""
    for env_id, (entry_point, horizon) in REGISTERED.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=horizon)
    for env_id, kwargs in METAWORLD.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=METAWORLD_ENTRY_POINT,
                max_episode_steps=METAWORLD_HORIZON,
                kwargs=kwargs,
            )


register_all()

from envs.task_api import (  # noqa: E402  (needs the registrations above)
    TaskAPIError,
    as_task_env,
    episode_horizon,
    make_task_env,
)

__all__ = [
    "BatchedTaskEnv",
    "OracleObservation",
    "PolicyActions",
    "Task",
    "TaskAPIError",
    "TaskEnv",
    "as_task_env",
    "episode_horizon",
    "make_task_env",
    "register_all",
    "to_env_actions",
]
