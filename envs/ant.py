"""Ant velocity, direction and goal tasks (Finn et al. 2017; ProMP, PEARL), in two forms.

The envs subclass Gymnasium's ``AntEnv`` (v5 model file), in one of two forms chosen by the
``form`` constructor argument (``envs.mujoco_task``):

- ``form="paper"`` (default): what the MAML paper's code (rllab's ant) ran. Time step 0.02 s
  (RK4, one substep) and softer contacts (geom ``solimp`` 0.8 0.8 0.01); MuJoCo's forward
  pass runs after every step, as rllab's did; 125 observations: ``qpos`` (15, the torso's
  x-y position included), ``qvel`` (14), the contact forces of all 14 bodies clipped to
  ``[-1, 1]`` (84), the torso's rotation matrix (9) and its subtree's centre of mass (3);
  the forward velocity is the torso subtree's centre-of-mass velocity; reset
  ``init_qpos + 0.01 N(0, 1)`` (the model's standing pose), ``0.1 N(0, 1)`` velocities;
  a survive bonus of 0.05 on every step. AntGoal follows the MAML code's ant goal (position
  of the torso's centre of mass, control cost 0.005, survive 0.05).
- ``form="v5"``: Gymnasium's ``Ant-v5`` dynamics, observations (105), reset noise and
  healthy bonus, with the task rewards (AntGoal as ProMP's: control cost 0.1, no bonus).

Both terminate when the state is not finite or the torso height leaves ``[0.2, 1.0]``.
Reward constants follow the original task code (control cost ``0.005 ||a||^2`` on the
clipped action in ``[-1, 1]``, contact cost ``5e-4 ||clip(cfrc_ext, -1, 1)||^2``); each
is a constructor argument. Their batched forms (:meth:`batched`) step many copies at once
with identical transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs.base import (
    DirectionTasks,
    GoalTasks,
    Task,
    control_cost,
    validate_number,
)
from envs.mujoco_batched import MujocoBatchedTaskEnv, check_form
from envs.mujoco_task import MujocoTaskEnv, add_sensors

HORIZON = 200
CONTACT_COST_WEIGHT = 5e-4
VELOCITY_LOW, VELOCITY_HIGH = 0.0, 3.0
PAPER_TIMESTEP = 0.02  # rllab's ant.xml: RK4 at 0.02 s, one substep per env step
PAPER_SOLIMP = (0.8, 0.8, 0.01)  # rllab's ant.xml geom default (MuJoCo's: 0.9 0.95 0.001)
PAPER_SURVIVE_REWARD = 0.05


def paper_ant_model(spec: mujoco.MjSpec) -> None:
    """Gymnasium's ant.xml as rllab's: its time step and contact softness, and the sensors
    that make MuJoCo's forward pass compute the centre-of-mass velocity and contact forces."""
    spec.option.timestep = PAPER_TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_RK4
    for geom in spec.geoms:  # the defaults are already resolved into each geom
        solimp = list(geom.solimp)
        solimp[:3] = PAPER_SOLIMP
        geom.solimp = solimp
    add_sensors(spec, "torso", accelerations=True)


class _AntTaskEnv(MujocoTaskEnv, AntEnv):
    """Shared part of the Ant tasks: a task term, a survive bonus, control and contact costs."""

    TASK_REWARD_KEY = "reward_forward"
    # per form: {"paper": ..., "v5": ...}
    DEFAULT_CTRL_COST_WEIGHT: ClassVar[dict[str, float]] = {"paper": 0.005, "v5": 0.005}
    DEFAULT_HEALTHY_REWARD: ClassVar[dict[str, float]] = {"paper": PAPER_SURVIVE_REWARD, "v5": 0.05}

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        ctrl_cost_weight: float | None = None,
        contact_cost_weight: float = CONTACT_COST_WEIGHT,
        healthy_reward: float | None = None,
        form: str = "paper",
        **kwargs: Any,
    ) -> None:
        self.form = check_form(form)
        if ctrl_cost_weight is None:
            ctrl_cost_weight = self.DEFAULT_CTRL_COST_WEIGHT[form]
        if healthy_reward is None:
            healthy_reward = self.DEFAULT_HEALTHY_REWARD[form]
        if form == "paper":
            kwargs.setdefault("frame_skip", 1)
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
        if form == "paper":
            self.init_qpos = np.array(self.model.numeric("init_qpos").data, dtype=np.float64)
            size = self.model.nq + self.model.nv + 6 * self.model.nbody + 9 + 3
            self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def model_edit(self):
        return paper_ant_model if self.form == "paper" else None

    def _get_obs(self) -> np.ndarray:
        if self.form == "v5":
            return super()._get_obs()
        return paper_observation(
            self.data.qpos[None],
            self.data.qvel[None],
            self.data.cfrc_ext[None],
            self.data.xmat[None],
            self.data.subtree_com[None],
            self.main_body_id,
        )[0]

    def step(self, action: np.ndarray):
        if self.form == "v5":
            return super().step(action)
        self.do_simulation(action, self.frame_skip)
        mujoco.mj_forward(self.model, self.data)  # rllab's forward() after every step
        body = self.main_body_id
        xy_velocity = self.data.subtree_linvel[body, :2].copy()
        xy = self.data.subtree_com[body, :2].copy()
        task_term = float(
            self.task_reward(xy_velocity[None], xy[None], self.task_array(self._task)[None])[0]
        )
        ctrl_cost = self.control_cost(action)
        contact_cost = self._contact_cost_weight * float(
            np.sum(np.square(np.clip(self.data.cfrc_ext, -1.0, 1.0)))
        )
        survive = self._healthy_reward
        reward = task_term + survive - ctrl_cost - contact_cost
        terminated = not self.is_healthy
        info = {
            self.TASK_REWARD_KEY: task_term,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": survive,
            "x_position": float(xy[0]),
            "y_position": float(xy[1]),
            "x_velocity": float(xy_velocity[0]),
            "y_velocity": float(xy_velocity[1]),
        }
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, terminated, False, info

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
        self, num_copies: int, backend: str | None = None, num_threads: int = 2
    ) -> BatchedAnt:
        """``num_copies`` copies stepped at once. ``backend``: ``"batch"`` (the paper form's
        default) or ``"threads"`` (v5's default and only one: only it computes v5's contact
        forces as Gymnasium does, after ``mj_step``)."""
        if backend is None:
            backend = "batch" if self.form == "paper" else "threads"
        return BatchedAnt(self, num_copies, backend=backend, num_threads=num_threads)


def paper_observation(
    qpos: np.ndarray,
    qvel: np.ndarray,
    cfrc_ext: np.ndarray,
    xmat: np.ndarray,
    subtree_com: np.ndarray,
    body: int,
) -> np.ndarray:
    """rllab's ant observation for ``[n, ...]`` states: 125 numbers per copy."""
    n = qpos.shape[0]
    contact = np.clip(cfrc_ext, -1.0, 1.0).reshape(n, -1)
    return np.concatenate(
        [qpos, qvel, contact, xmat[:, body].reshape(n, 9), subtree_com[:, body]], axis=1
    )


_ANT_DOC_COMMON = """
    ## Action space
    ``Box(-1, 1, (8,), float32)``: torques on the 8 hip and ankle joints.

    ## Observation space
    ``form="paper"``: ``Box(-inf, inf, (125,), float64)``: ``qpos`` (15, the torso's x-y
    position included), ``qvel`` (14), the external contact forces of all 14 bodies clipped
    to ``[-1, 1]`` (84), the torso's rotation matrix (9) and its subtree's centre of mass (3).
    ``form="v5"``: ``(105,)`` as Gymnasium's ``Ant-v5``: ``qpos[2:]`` (13), ``qvel`` (14)
    and the contact forces of bodies 1-13 clipped to ``[-1, 1]`` (78).

    ## Starting state
    Paper: the model's standing pose ``init_qpos + 0.01 N(0, 1)``, ``0.1 N(0, 1)`` velocities.
    v5: ``qpos0 + U[-0.1, 0.1]``, ``0.1 N(0, 1)`` velocities.

    ## Episode end
    Terminates when the state is non-finite or the torso height leaves ``[0.2, 1.0]``;
    ``gymnasium.make`` truncates at 200 steps (4 s of simulated time in the paper form, whose
    step is 0.02 s; 10 s in v5). In the paper form the velocity is the torso subtree's
    centre-of-mass velocity and the survive bonus is paid on every step; in v5 the velocity
    is the torso's displacement over the step and the bonus only while healthy.
"""


class AntVelEnv(_AntTaskEnv):
    """Ant that must run forward at a goal velocity it cannot see.

    ## Description
    A quadruped (13 bodies, a free torso) in the MAML paper's form (default) or Gymnasium's
    ``Ant-v5`` form, with the reward of the MAML paper's ant velocity task.

    ## Reward
    ``-|v_x - v_goal| + 1.0 + 0.05 - 0.005 ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2``,
    ``v_x`` the torso's forward velocity (see Episode end for each form's). ``info`` reports ``reward_forward``
    (``-|v_x - v_goal| + 1``), ``reward_survive``, ``reward_ctrl``, ``reward_contact``;
    they sum to the reward.
    {common}
    ## Task
    ``{{"velocity": v}}`` with ``v ~ U[0, 3]``.

    ## Arguments
    ``task`` (default ``{{"velocity": 1.5}}``), ``form`` (``"paper"`` or ``"v5"``),
    ``ctrl_cost_weight`` (0.005),
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
    The ant (either form) with the reward of the MAML paper's ant direction task.

    ## Reward
    ``direction * v_x + 0.05 - 0.005 ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2``.
    ``info`` reports ``reward_forward`` (``direction * v_x``), ``reward_survive``,
    ``reward_ctrl``, ``reward_contact``; they sum to the reward.
    {common}
    ## Task
    ``{{"direction": d}}`` with ``d`` uniform in ``{{-1, +1}}``.

    ## Arguments
    ``task`` (default ``{{"direction": 1}}``), ``form`` (``"paper"`` or ``"v5"``),
    ``ctrl_cost_weight`` (0.005),
    ``contact_cost_weight`` (5e-4), ``healthy_reward`` (0.05), and any keyword argument of
    Gymnasium's ``AntEnv``.
    """

    __doc__ = __doc__.format(common=_ANT_DOC_COMMON)  # type: ignore[union-attr]

    @staticmethod
    def task_reward(xy_velocity: np.ndarray, xy: np.ndarray, params: np.ndarray) -> np.ndarray:
        return params[:, 0] * xy_velocity[:, 0]


class AntGoalEnv(GoalTasks, _AntTaskEnv):
    """Ant that must walk to a goal position in the plane it cannot see.

    ## Description
    The ant (either form) with a goal-reaching reward (not in the MAML paper; its code has
    one, and ProMP and PEARL use one).

    ## Reward
    ``-|x - g_x| - |y - g_y| + 4.0 + survive - c ||a||^2 - 5e-4 ||clip(cfrc_ext)||^2`` with
    ``(x, y)`` the torso subtree's centre of mass (paper form; the torso's position in v5)
    after the step; paper form (the MAML code's ant goal): ``c = 0.005``, survive 0.05;
    v5 (ProMP's): ``c = 0.1``, no survive bonus. ``info`` reports ``reward_goal``
    (``4 - L1 distance``), ``reward_survive``, ``reward_ctrl``, ``reward_contact``; they sum
    to the reward.
    {common}
    ## Task
    ``{{"goal": [g_x, g_y]}}`` with the goal drawn from ``U[-3, 3]^2``.

    ## Arguments
    ``task`` (default ``{{"goal": [0.0, 0.0]}}``), ``form`` (``"paper"`` or ``"v5"``),
    ``ctrl_cost_weight`` (per form, above), ``contact_cost_weight`` (5e-4),
    ``healthy_reward`` (per form), and any keyword argument of Gymnasium's ``AntEnv``.
    """

    GOAL_LOW, GOAL_HIGH = -3.0, 3.0

    __doc__ = __doc__.format(common=_ANT_DOC_COMMON)  # type: ignore[union-attr]

    TASK_REWARD_KEY = "reward_goal"
    # paper form: the MAML code's ant goal; v5: ProMP's
    DEFAULT_CTRL_COST_WEIGHT: ClassVar[dict[str, float]] = {"paper": 0.005, "v5": 0.1}
    DEFAULT_HEALTHY_REWARD: ClassVar[dict[str, float]] = {"paper": PAPER_SURVIVE_REWARD, "v5": 0.0}

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
        self._paper = env.form == "paper"
        if self._paper:
            fields: tuple[str, ...] = ("forward", "subtree", "cfrc_ext", "xmat")
        else:
            fields = ("xpos", "cfrc_ext")
        super().__init__(env, num_copies, HORIZON, backend, num_threads, fields)
        self._params = np.zeros((num_copies, 1))
        self._body = env.main_body_id

    def _set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self._params = self.env.task_params(tasks)

    def _contact_forces(self) -> np.ndarray:
        low, high = self.env._contact_force_range
        return np.clip(self.physics.cfrc_ext, low, high)

    def _observation(self) -> np.ndarray:
        physics = self.physics
        if self._paper:
            return paper_observation(
                physics.qpos,
                physics.qvel,
                physics.cfrc_ext,
                physics.xmat,
                physics.subtree_com,
                self._body,
            )
        contact = self._contact_forces()[:, 1:].reshape(self.num_copies, -1)
        return np.concatenate([self.physics.qpos[:, 2:], self.physics.qvel, contact], axis=1)

    def _before_step(self) -> np.ndarray | None:
        return None if self._paper else self.physics.xpos[:, self._body, :2].copy()

    def _rewards(
        self, before: np.ndarray, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        env = self.env
        if self._paper:
            xy = self.physics.subtree_com[:, self._body, :2]
            xy_velocity = self.physics.subtree_linvel[:, self._body, :2]
        else:
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
        healthy_reward = (
            np.full(self.num_copies, env._healthy_reward)
            if self._paper
            else healthy * env._healthy_reward
        )
        ctrl_cost = control_cost(actions, env._ctrl_cost_weight, self.action_low, self.action_high)
        contact = self._contact_forces().reshape(self.num_copies, -1)  # body 0's are zero
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
