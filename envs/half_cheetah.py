"""HalfCheetah velocity and direction tasks (Finn et al. 2017, section 5.3).

Both envs subclass Gymnasium's ``HalfCheetahEnv`` (v5 model file, which is the same as
the paper's) in one of two forms (``envs.mujoco_task``): ``form="paper"`` (default) is
what the paper's code ran, ``form="v5"`` is Gymnasium's ``HalfCheetah-v5``:

| | paper | v5 |
|---|---|---|
| control time step | 0.01 s (frame skip 1) | 0.05 s (frame skip 5) |
| observation | ``qpos[1:]``, ``qvel``, torso subtree centre of mass (20) | ``qpos[1:]``, ``qvel`` (17) |
| forward velocity | of the torso subtree's centre of mass | finite difference of ``qpos[0]`` |
| reset noise | ``0.01 N`` on qpos, ``0.1 N`` on qvel | ``U[-0.1, 0.1]`` on qpos, ``0.1 N`` on qvel |

Their batched forms (:meth:`batched`) step many copies at once with identical transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from envs.base import (
    DirectionTasks,
    Task,
    control_cost,
    validate_number,
)
from envs.mujoco_batched import (
    MujocoBatchedTaskEnv,
    check_form,
    has_batch_module,
    refresh_center_of_mass,
)
from envs.mujoco_task import MujocoTaskEnv, add_sensors, load_model

HORIZON = 200
CTRL_COST_WEIGHT = 0.05
VELOCITY_LOW, VELOCITY_HIGH = 0.0, 2.0


class _HalfCheetahTaskEnv(MujocoTaskEnv, HalfCheetahEnv):
    """Shared part of the HalfCheetah tasks: the reward is a task term minus a control cost."""

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        form: str = "paper",
        ctrl_cost_weight: float = CTRL_COST_WEIGHT,
        **kwargs: Any,
    ) -> None:
        self.form = check_form(form)
        if form == "paper":
            kwargs.setdefault("frame_skip", 1)
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        # pickle with this class's own arguments, not HalfCheetahEnv's positional ones
        utils.EzPickle.__init__(self, task, form, ctrl_cost_weight, **kwargs)
        self.torso_id = int(self.model.body("torso").id)
        if form == "paper":
            size = self.model.nq - 1 + self.model.nv + 3
            self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float64)
        self.init_task(task)

    @staticmethod
    def task_reward(x_velocity: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The task term of the reward for ``[n]`` forward velocities and ``[n, k]`` params."""
        raise NotImplementedError

    def _get_obs(self) -> np.ndarray:
        observation = super()._get_obs()
        if self.form == "paper":
            observation = np.concatenate([observation, self.data.subtree_com[self.torso_id]])
        return observation

    def step(self, action: np.ndarray):
        if self.form == "v5":
            return super().step(action)
        self.do_simulation(action, self.frame_skip)
        refresh_center_of_mass(self.model, self.data)
        x_velocity = float(self.data.subtree_linvel[self.torso_id, 0])
        observation = self._get_obs()
        reward, reward_info = self._get_rew(x_velocity, action)
        info = {"x_position": float(self.data.qpos[0]), "x_velocity": x_velocity, **reward_info}
        if self.render_mode == "human":
            self.render()
        return observation, reward, False, False, info

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        params = self.task_array(self._task)[None]
        forward_reward = float(self.task_reward(np.array([x_velocity]), params)[0])
        ctrl_cost = self.control_cost(action)
        reward = forward_reward - ctrl_cost
        return reward, {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}

    def batched(
        self, num_copies: int, backend: str | None = None, num_threads: int = 2
    ) -> BatchedHalfCheetah:
        """``num_copies`` copies stepped at once. ``backend``: ``"batch"`` (the default) or
        ``"threads"``; both give the same trajectories."""
        if backend is None:
            backend = "batch"
        return BatchedHalfCheetah(self, num_copies, backend=backend, num_threads=num_threads)


_CHEETAH_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (6,), float32)``: torques on the back and front thigh, shin and foot.

    ## Observation space
    ``form="paper"``: ``Box(-inf, inf, (20,), float64)``: ``qpos[1:]`` (8), ``qvel`` (9) and
    the torso subtree's centre of mass ``(x, y, z)`` (so the absolute x is observed).
    ``form="v5"``: ``(17,)``: ``qpos[1:]`` and ``qvel``, as ``HalfCheetah-v5``.

    ## Starting state
    Paper: ``qpos0 + 0.01 N(0, 1)``, ``0.1 N(0, 1)`` velocities. v5: ``qpos0 + U[-0.1, 0.1]``,
    ``0.1 N(0, 1)`` velocities.

    ## Episode end
    Never terminates; ``gymnasium.make`` truncates at 200 steps (2 s of simulated time in
    the paper form, 10 s in v5).
"""


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """HalfCheetah that must run forward at a goal velocity it cannot see.

    ## Description
    A planar cheetah (6 actuated joints) with the reward of the MAML paper's velocity task,
    in the paper's form (default) or Gymnasium's v5 form (module docstring).

    ## Reward
    ``-|v_x - v_goal| - 0.05 * ||clip(a)||^2`` with ``v_x`` the forward velocity (paper: of
    the torso subtree's centre of mass; v5: x displacement of the root over ``dt``).
    ``info`` reports ``reward_forward`` (``-|v_x - v_goal|``) and ``reward_ctrl`` (the
    negated control cost); they sum to the reward.
    {common}
    ## Task
    ``{{"velocity": v}}`` with ``v ~ U[0, 2]``.

    ## Arguments
    ``task`` (default ``{{"velocity": 1.0}}``), ``form`` (``"paper"`` or ``"v5"``),
    ``ctrl_cost_weight`` (0.05), and any keyword argument of Gymnasium's ``HalfCheetahEnv``.
    """

    __doc__ = __doc__.format(common=_CHEETAH_DOC_COMMON)  # type: ignore[union-attr]

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
    A planar cheetah with the reward of the MAML paper's direction task, in the paper's
    form (default) or Gymnasium's v5 form (module docstring).

    ## Reward
    ``direction * v_x - 0.05 * ||clip(a)||^2``; ``info`` reports ``reward_forward``
    (``direction * v_x``) and ``reward_ctrl``, which sum to the reward.
    {common}
    ## Task
    ``{{"direction": d}}`` with ``d`` drawn uniformly from ``{{-1, +1}}`` (backwards/forwards).

    ## Arguments
    ``task`` (default ``{{"direction": 1}}``), ``form`` (``"paper"`` or ``"v5"``),
    ``ctrl_cost_weight`` (0.05), and any keyword argument of Gymnasium's ``HalfCheetahEnv``.
    """

    __doc__ = __doc__.format(common=_CHEETAH_DOC_COMMON)  # type: ignore[union-attr]

    @staticmethod
    def task_reward(x_velocity: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[:, 0] * x_velocity


class BatchedHalfCheetah(MujocoBatchedTaskEnv):
    """``num_copies`` HalfCheetah task envs (Vel or Dir, either form) stepped together.

    Observations, rewards and ``last_info`` (``reward_forward``, ``reward_ctrl``,
    ``x_velocity``, ``unstable``) match the single env copy for copy.
    """

    def __init__(
        self,
        env: _HalfCheetahTaskEnv,
        num_copies: int,
        backend: str = "threads",
        num_threads: int = 2,
    ) -> None:
        fields = ("subtree",) if env.form == "paper" else ()
        model = None
        if fields and backend == "batch" and has_batch_module():
            model = load_model(env.fullpath, lambda spec: add_sensors(spec, "torso"))
        super().__init__(env, num_copies, HORIZON, backend, num_threads, fields, model)
        self._params = np.zeros((num_copies, 1))
        self._paper = env.form == "paper"
        self._torso = env.torso_id

    def _set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self._params = self.env.task_params(tasks)

    def _observation(self) -> np.ndarray:
        parts = [self.physics.qpos[:, 1:], self.physics.qvel]
        if self._paper:
            parts.append(self.physics.subtree_com[:, self._torso])
        return np.concatenate(parts, axis=1)

    def _before_step(self) -> np.ndarray:
        return self.physics.qpos[:, 0].copy()

    def _rewards(
        self, before: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        if self._paper:
            x_velocity = self.physics.subtree_linvel[:, self._torso, 0].copy()
        else:
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
