"""HalfCheetah velocity and direction tasks (Finn et al. 2017, section 5.3) on Gymnasium's v5 model.

Both envs subclass Gymnasium's ``HalfCheetahEnv`` (v5) and override only its reward
method ``_get_rew``; dynamics, observations and reset noise are Gymnasium's. Their
batched forms (:meth:`batched`) step many copies at once with identical transitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from envs.base import (
    DirectionTasks,
    Task,
    TaskEnv,
    control_cost,
    validate_number,
)
from envs.mujoco_batched import MujocoBatchedTaskEnv

HORIZON = 200
CTRL_COST_WEIGHT = 0.05
VELOCITY_LOW, VELOCITY_HIGH = 0.0, 2.0


class _HalfCheetahTaskEnv(TaskEnv, HalfCheetahEnv):
    """Shared part of the HalfCheetah tasks: the reward is a task term minus a control cost."""

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        ctrl_cost_weight: float = CTRL_COST_WEIGHT,
        **kwargs: Any,
    ) -> None:
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        # pickle with this class's own arguments, not HalfCheetahEnv's positional ones
        utils.EzPickle.__init__(self, task, ctrl_cost_weight, **kwargs)
        self.init_task(task)

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        """A validated task's parameters as a float64 vector (the reward's view of it)."""
        raise NotImplementedError

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        return self.task_array(task).astype(np.float32)

    def task_params(self, tasks: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The tasks' parameters as a float64 ``[n, k]`` array (validated)."""
        return np.stack([self.task_array(self.validate_task(t)) for t in tasks])

    @staticmethod
    def task_reward(x_velocity: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The task term of the reward for ``[n]`` forward velocities and ``[n, k]`` params."""
        raise NotImplementedError

    def control_cost(self, action: np.ndarray) -> float:
        """The control cost of ``action``, charged on its clipped value (float64)."""
        space = self.action_space
        return float(control_cost(action, self._ctrl_cost_weight, space.low, space.high))

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        params = self.task_array(self._task)[None]
        forward_reward = float(self.task_reward(np.array([x_velocity]), params)[0])
        ctrl_cost = self.control_cost(action)
        reward = forward_reward - ctrl_cost
        return reward, {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}

    def batched(
        self, num_copies: int, backend: str = "batch", num_threads: int = 2
    ) -> BatchedHalfCheetah:
        """``num_copies`` copies stepped at once (``backend``: ``"batch"`` or ``"threads"``)."""
        return BatchedHalfCheetah(self, num_copies, backend=backend, num_threads=num_threads)


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """HalfCheetah that must run forward at a goal velocity it cannot see.

    ## Description
    Gymnasium's ``HalfCheetah-v5`` (a planar cheetah, 9 bodies, 6 actuated joints) with
    the reward of the MAML paper's velocity task.

    ## Action space
    ``Box(-1, 1, (6,), float32)``: torques on the back and front thigh, shin and foot.

    ## Observation space
    ``Box(-inf, inf, (17,), float64)``: ``qpos[1:]`` (8) and ``qvel`` (9), as in v5.

    ## Reward
    ``-|v_x - v_goal| - 0.05 * ||a||^2`` with ``v_x`` the forward velocity of the root
    (x displacement over ``dt = 0.05``). ``info`` reports ``reward_forward``
    (``-|v_x - v_goal|``) and ``reward_ctrl`` (the negated control cost); they sum to the
    reward.

    ## Starting state
    As v5: ``qpos0 + U[-0.1, 0.1]`` noise on positions, ``0.1 * N(0, 1)`` on velocities.

    ## Episode end
    Never terminates; ``gymnasium.make`` truncates at 200 steps.

    ## Task
    ``{"velocity": v}`` with ``v ~ U[0, 2]``.

    ## Arguments
    ``task`` (default ``{"velocity": 1.0}``), ``ctrl_cost_weight`` (0.05), and any keyword
    argument of Gymnasium's ``HalfCheetahEnv``.
    """

    def default_task(self) -> Task:
        return {"velocity": 1.0}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        velocities = rng.uniform(VELOCITY_LOW, VELOCITY_HIGH, size=n)
        return [{"velocity": float(v)} for v in velocities]

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        velocity = validate_number(task, "velocity", VELOCITY_LOW, VELOCITY_HIGH, "HalfCheetahVel")
        return {"velocity": velocity}

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        return np.array([task["velocity"]], dtype=np.float64)

    @staticmethod
    def task_reward(x_velocity: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.abs(x_velocity - params[:, 0])


class HalfCheetahDirEnv(DirectionTasks, _HalfCheetahTaskEnv):
    """HalfCheetah that must run as fast as it can in a direction it cannot see.

    ## Description
    Gymnasium's ``HalfCheetah-v5`` with the reward of the MAML paper's direction task.

    ## Action space
    ``Box(-1, 1, (6,), float32)``, as v5.

    ## Observation space
    ``Box(-inf, inf, (17,), float64)``: ``qpos[1:]`` and ``qvel``, as v5.

    ## Reward
    ``direction * v_x - 0.05 * ||a||^2``; ``info`` reports ``reward_forward``
    (``direction * v_x``) and ``reward_ctrl``, which sum to the reward.

    ## Starting state
    As v5 (uniform position noise, Gaussian velocity noise, scale 0.1).

    ## Episode end
    Never terminates; ``gymnasium.make`` truncates at 200 steps.

    ## Task
    ``{"direction": d}`` with ``d`` drawn uniformly from ``{-1, +1}`` (backwards/forwards).

    ## Arguments
    ``task`` (default ``{"direction": 1}``), ``ctrl_cost_weight`` (0.05), and any keyword
    argument of Gymnasium's ``HalfCheetahEnv``.
    """

    @staticmethod
    def task_reward(x_velocity: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[:, 0] * x_velocity


class BatchedHalfCheetah(MujocoBatchedTaskEnv):
    """``num_copies`` HalfCheetah task envs (Vel or Dir) stepped together (``envs.mujoco_batched``).

    Observations, rewards and ``last_info`` (``reward_forward``, ``reward_ctrl``,
    ``x_velocity``, ``unstable``) match the single env copy for copy.
    """

    def __init__(
        self,
        env: _HalfCheetahTaskEnv,
        num_copies: int,
        backend: str = "batch",
        num_threads: int = 2,
    ) -> None:
        super().__init__(env, num_copies, HORIZON, backend, num_threads)
        self._params = np.zeros((num_copies, 1))

    def _set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self._params = self.env.task_params(tasks)

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.physics.qpos[:, 1:], self.physics.qvel], axis=1)

    def _before_step(self) -> np.ndarray:
        return self.physics.qpos[:, 0].copy()

    def _rewards(
        self, before: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        x_velocity = (self.physics.qpos[:, 0] - before) / self.dt
        forward_reward = self.env.task_reward(x_velocity, self._params)
        ctrl_cost = control_cost(
            actions, self.env._ctrl_cost_weight, self.action_low, self.action_high
        )
        info = {
            "reward_forward": forward_reward,
            "reward_ctrl": -ctrl_cost,
            "x_velocity": x_velocity,
        }
        return forward_reward - ctrl_cost, np.zeros(self.num_copies, dtype=bool), info
