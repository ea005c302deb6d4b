"""Ant velocity, direction and goal tasks (Finn et al. 2017; ProMP, PEARL) on Gymnasium's v5 model.

The envs subclass Gymnasium's ``AntEnv`` (v5) and override only its reward method
``_get_rew``; dynamics, observations (including the clipped contact forces), reset
noise and termination are Gymnasium's. Their batched forms (:meth:`batched`) step many
copies at once with identical transitions.

Reward constants follow the original task code (rllab's ant for velocity/direction:
control cost ``0.005 ||a||^2``, contact cost ``5e-4 ||clip(cfrc_ext, -1, 1)||^2``,
survive bonus 0.05; ProMP's ant goal: control cost ``0.1 ||a||^2``, no survive bonus);
each is a constructor argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs.base import (
    DirectionTasks,
    Task,
    control_cost,
    validate_goal,
    validate_number,
)
from envs.mujoco_batched import MujocoBatchedTaskEnv, check_form
from envs.mujoco_task import MujocoTaskEnv

HORIZON = 200
CONTACT_COST_WEIGHT = 5e-4
VELOCITY_LOW, VELOCITY_HIGH = 0.0, 3.0
GOAL_LOW, GOAL_HIGH = -3.0, 3.0


class _AntTaskEnv(MujocoTaskEnv, AntEnv):
    """Shared part of the Ant tasks: a task term, a survive bonus, control and contact costs.

    Only Gymnasium's v5 form exists for Ant so far (``form="v5"``); the paper's form (its
    0.02 s RK4 time step, 125-number observation with the ant's position, centre-of-mass
    velocity) is not built yet, and ``form="paper"`` says so.
    """

    form = "v5"

    TASK_REWARD_KEY = "reward_forward"
    DEFAULT_CTRL_COST_WEIGHT = 0.005
    DEFAULT_HEALTHY_REWARD = 0.05

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        ctrl_cost_weight: float | None = None,
        contact_cost_weight: float = CONTACT_COST_WEIGHT,
        healthy_reward: float | None = None,
        form: str = "v5",
        **kwargs: Any,
    ) -> None:
        if check_form(form) != "v5":
            raise ValueError(
                "the Ant tasks exist only in Gymnasium's v5 form so far (form='v5'); "
                "the paper's form is not built yet"
            )
        if ctrl_cost_weight is None:
            ctrl_cost_weight = self.DEFAULT_CTRL_COST_WEIGHT
        if healthy_reward is None:
            healthy_reward = self.DEFAULT_HEALTHY_REWARD
        AntEnv.__init__(
            self,
            ctrl_cost_weight=ctrl_cost_weight,
            contact_cost_weight=contact_cost_weight,
            healthy_reward=healthy_reward,
            **kwargs,
        )
        # pickle with this class's own arguments, not AntEnv's positional ones
        utils.EzPickle.__init__(
            self, task, ctrl_cost_weight, contact_cost_weight, healthy_reward, form, **kwargs
        )
        self.init_task(task)
        self.main_body_id = int(self.data.body(self._main_body).id)

    @staticmethod
    def task_reward(xy_velocity: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The task term for ``[n, 2]`` torso velocities and positions and ``[n, k]`` params."""
        raise NotImplementedError

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        # the torso position Gymnasium's step just used for the velocity
        xy = self.data.body(self._main_body).xpos[:2].copy()
        xy_velocity = np.array([[x_velocity, np.nan]])  # the y velocity is not passed in
        task_term = float(
            self.task_reward(xy_velocity, xy[None], self.task_array(self._task)[None])[0]
        )
        healthy_reward = self.healthy_reward
        ctrl_cost = self.control_cost(action)
        contact_cost = self.contact_cost
        reward = task_term + healthy_reward - ctrl_cost - contact_cost
        reward_info = {
            self.TASK_REWARD_KEY: task_term,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": healthy_reward,
        }
        return reward, reward_info

    def batched(
        self, num_copies: int, backend: str = "threads", num_threads: int = 2
    ) -> BatchedAnt:
        """``num_copies`` copies stepped at once (only the ``"threads"`` backend computes
        the contact forces exactly as Gymnasium does)."""
        return BatchedAnt(self, num_copies, backend=backend, num_threads=num_threads)


_ANT_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (8,), float32)``: torques on the 8 hip and ankle joints.

    ## Observation space
    ``Box(-inf, inf, (105,), float64)``, as Gymnasium's ``Ant-v5``: ``qpos[2:]`` (13),
    ``qvel`` (14) and the external contact forces of bodies 1-13 clipped to ``[-1, 1]`` (78).

    ## Starting state
    As v5: ``qpos0 + U[-0.1, 0.1]`` noise on positions, ``0.1 * N(0, 1)`` on velocities.

    ## Episode end
    Terminates when the state is non-finite or the torso height leaves ``[0.2, 1.0]``;
    ``gymnasium.make`` truncates at 200 steps.
"""


class AntVelEnv(_AntTaskEnv):
    """Ant that must run forward at a goal velocity it cannot see.

    ## Description
    Gymnasium's ``Ant-v5`` (a quadruped, 9 bodies with a free torso) with the reward of
    the MAML paper's ant velocity task.

    ## Reward
    ``-|v_x - v_goal| + 1.0 + 0.05 * healthy - 0.005 ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2``,
    ``v_x`` the torso's forward velocity. ``info`` reports ``reward_forward``
    (``-|v_x - v_goal| + 1``), ``reward_survive``, ``reward_ctrl``, ``reward_contact``;
    they sum to the reward.
    {common}
    ## Task
    ``{{"velocity": v}}`` with ``v ~ U[0, 3]``.

    ## Arguments
    ``task`` (default ``{{"velocity": 1.5}}``), ``ctrl_cost_weight`` (0.005),
    ``contact_cost_weight`` (5e-4), ``healthy_reward`` (0.05), and any keyword argument of
    Gymnasium's ``AntEnv``.
    """

    __doc__ = __doc__.format(common=_ANT_DOC_COMMON)  # type: ignore[union-attr]

    def default_task(self) -> Task:
        return {"velocity": 1.5}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [{"velocity": float(v)} for v in rng.uniform(VELOCITY_LOW, VELOCITY_HIGH, size=n)]

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        velocity = validate_number(task, "velocity", VELOCITY_LOW, VELOCITY_HIGH, "AntVel")
        return {"velocity": velocity}

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        return np.array([task["velocity"]], dtype=np.float64)

    @staticmethod
    def task_reward(xy_velocity: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.abs(xy_velocity[:, 0] - params[:, 0]) + 1.0


class AntDirEnv(DirectionTasks, _AntTaskEnv):
    """Ant that must run as fast as it can forwards or backwards, unseen which.

    ## Description
    Gymnasium's ``Ant-v5`` with the reward of the MAML paper's ant direction task.

    ## Reward
    ``direction * v_x + 0.05 * healthy - 0.005 ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2``.
    ``info`` reports ``reward_forward`` (``direction * v_x``), ``reward_survive``,
    ``reward_ctrl``, ``reward_contact``; they sum to the reward.
    {common}
    ## Task
    ``{{"direction": d}}`` with ``d`` uniform in ``{{-1, +1}}``.

    ## Arguments
    ``task`` (default ``{{"direction": 1}}``), ``ctrl_cost_weight`` (0.005),
    ``contact_cost_weight`` (5e-4), ``healthy_reward`` (0.05), and any keyword argument of
    Gymnasium's ``AntEnv``.
    """

    __doc__ = __doc__.format(common=_ANT_DOC_COMMON)  # type: ignore[union-attr]

    @staticmethod
    def task_reward(xy_velocity: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[:, 0] * xy_velocity[:, 0]


class AntGoalEnv(_AntTaskEnv):
    """Ant that must walk to a goal position in the plane it cannot see.

    ## Description
    Gymnasium's ``Ant-v5`` with the goal-reaching reward of ProMP's and PEARL's ant goal
    task (not in the MAML paper).

    ## Reward
    ``-|x - g_x| - |y - g_y| + 4.0 - 0.1 ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2`` with
    ``(x, y)`` the torso position after the step. ``info`` reports ``reward_goal``
    (``4 - L1 distance``), ``reward_survive`` (0 by default), ``reward_ctrl``,
    ``reward_contact``; they sum to the reward.
    {common}
    ## Task
    ``{{"goal": [g_x, g_y]}}`` with the goal drawn from ``U[-3, 3]^2``.

    ## Arguments
    ``task`` (default ``{{"goal": [0.0, 0.0]}}``), ``ctrl_cost_weight`` (0.1),
    ``contact_cost_weight`` (5e-4), ``healthy_reward`` (0.0), and any keyword argument of
    Gymnasium's ``AntEnv``.
    """

    __doc__ = __doc__.format(common=_ANT_DOC_COMMON)  # type: ignore[union-attr]

    TASK_REWARD_KEY = "reward_goal"
    DEFAULT_CTRL_COST_WEIGHT = 0.1
    DEFAULT_HEALTHY_REWARD = 0.0

    def default_task(self) -> Task:
        return {"goal": [0.0, 0.0]}

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        goals = rng.uniform(GOAL_LOW, GOAL_HIGH, size=(n, 2))
        return [{"goal": [float(g[0]), float(g[1])]} for g in goals]

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        return {"goal": validate_goal(task, GOAL_LOW, GOAL_HIGH, "AntGoal")}

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(task["goal"], dtype=np.float64)

    @staticmethod
    def task_reward(xy_velocity: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return -np.sum(np.abs(xy - params), axis=1) + 4.0


class BatchedAnt(MujocoBatchedTaskEnv):
    """``num_copies`` Ant task envs (Vel, Dir or Goal) stepped together (``envs.mujoco_batched``).

    Observations, rewards, terminations and ``last_info`` (the ``reward_*`` parts,
    ``x_velocity``, ``y_velocity``, ``unstable``) match the single env copy for copy.
    """

    def __init__(
        self,
        env: _AntTaskEnv,
        num_copies: int,
        backend: str = "threads",
        num_threads: int = 2,
    ) -> None:
        super().__init__(
            env, num_copies, HORIZON, backend, num_threads, fields=("xpos", "cfrc_ext")
        )
        self._params = np.zeros((num_copies, 1))
        self._body = env.main_body_id

    def _set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self._params = self.env.task_params(tasks)

    def _contact_forces(self) -> np.ndarray:
        low, high = self.env._contact_force_range
        return np.clip(self.physics.cfrc_ext, low, high)

    def _observation(self) -> np.ndarray:
        contact = self._contact_forces()[:, 1:].reshape(self.num_copies, -1)
        return np.concatenate([self.physics.qpos[:, 2:], self.physics.qvel, contact], axis=1)

    def _before_step(self) -> np.ndarray:
        return self.physics.xpos[:, self._body, :2].copy()

    def _rewards(
        self, before: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        env = self.env
        xy = self.physics.xpos[:, self._body, :2]
        xy_velocity = (xy - before) / self.dt
        task_term = env.task_reward(xy_velocity, xy, self._params)
        qpos, qvel = self.physics.qpos, self.physics.qvel
        min_z, max_z = env._healthy_z_range
        healthy = (
            np.all(np.isfinite(qpos), axis=1)
            & np.all(np.isfinite(qvel), axis=1)
            & (min_z <= qpos[:, 2])
            & (qpos[:, 2] <= max_z)
        )
        healthy_reward = healthy * env._healthy_reward
        ctrl_cost = control_cost(actions, env._ctrl_cost_weight, self.action_low, self.action_high)
        contact = self._contact_forces().reshape(self.num_copies, -1)
        contact_cost = env._contact_cost_weight * np.sum(np.square(contact), axis=1)
        rewards = task_term + healthy_reward - ctrl_cost - contact_cost
        terminated = ~healthy & env._terminate_when_unhealthy
        info = {
            env.TASK_REWARD_KEY: task_term,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": healthy_reward,
            "x_velocity": xy_velocity[:, 0],
            "y_velocity": xy_velocity[:, 1],
        }
        return rewards, terminated, info
