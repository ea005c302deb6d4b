"""Batched MuJoCo physics: one ``MjModel``, many simulations, stepped in C on all cores.

:class:`MujocoBatchedTaskEnv` is the shared machinery behind the ``batched()`` form of
every MuJoCo task env (HalfCheetah, Ant). It keeps the per-copy state in ``[B, ...]``
numpy arrays, so observations and rewards are computed vectorized; only the physics
runs per copy, in C. Two physics backends give bit-identical trajectories:

- ``"batch"``: :class:`mujoco.batch.Batch` (MuJoCo >= 4.0). The state of every
  simulation is a row of one array; MuJoCo's own thread pool loads each row into an
  ``MjData``, steps it and writes it back, so the Python side never loops over copies.
  It cannot report ``cfrc_ext`` as Gymnasium's envs compute it (Gymnasium calls
  ``mj_rnePostConstraint`` after ``mj_step``), so it serves envs that observe
  ``qpos``/``qvel``/``xpos`` and centre-of-mass positions and velocities (HalfCheetah in
  both forms; the model needs a subtree velocity sensor for the latter).
- ``"threads"``: one ``MjData`` per copy and persistent Python worker threads, each
  looping ``mj_step`` (+ ``mj_rnePostConstraint``) over its share of copies; the calls
  release the GIL, so the threads run on separate cores. Works for every env (Ant).

Copy ``i`` of a batched env reproduces the single Gymnasium env after
``reset(seed=seed + i)`` exactly: the same reset noise (drawn from
``gymnasium.utils.seeding.np_random(seed + i)``) and the same sequence of MuJoCo calls.

A physics blow-up in one copy does not poison the batch: MuJoCo resets a simulation whose
``qpos``/``qvel``/``qacc`` turns bad (NaN or > 1e10) and counts a warning; such a copy
(or one with non-finite state) ends its episode with ``terminated``, zero reward,
``last_info["unstable"][i] = True`` and a warning naming it.
"""

from __future__ import annotations

import abc
import itertools
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
from gymnasium.utils import seeding

from envs.base import BatchedTaskEnv, check_actions

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    from envs.base import TaskEnv

BACKENDS = ("batch", "threads")
FORMS = ("paper", "v5")


def check_form(form: str) -> str:
    """``form`` if it is one of :data:`FORMS`, else ``ValueError`` naming them."""
    if form not in FORMS:
        raise ValueError(f"unknown env form {form!r}; choose one of {list(FORMS)}")
    return form


def refresh_center_of_mass(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Recompute ``subtree_com`` and ``subtree_linvel`` at the current ``qpos``/``qvel``.

    ``mj_step`` computes positions before it integrates, so after it they lag one step;
    the paper's code called ``forward()`` after every step. Only the stages these two need
    run here (kinematics, centre-of-mass positions and velocities), not the constraint solver.
    """
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    mujoco.mj_comVel(model, data)
    mujoco.mj_subtreeVel(model, data)


def initial_state(
    form: str,
    init_qpos: np.ndarray,
    init_qvel: np.ndarray,
    noise_scale: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """A start state drawn as the env's form does it.

    ``"paper"`` (rllab): ``qpos0 + 0.01 N(0, 1)``, ``qvel0 + 0.1 N(0, 1)``.
    ``"v5"`` (Gymnasium): ``qpos0 + U[-s, s]``, ``qvel0 + s N(0, 1)`` with ``s = noise_scale``,
    in the same order of draws as Gymnasium's ``reset_model``.
    """
    if form == "paper":
        qpos = init_qpos + 0.01 * rng.standard_normal(init_qpos.shape[0])
        qvel = init_qvel + 0.1 * rng.standard_normal(init_qvel.shape[0])
        return qpos, qvel
    qpos = init_qpos + rng.uniform(low=-noise_scale, high=noise_scale, size=init_qpos.shape[0])
    qvel = init_qvel + noise_scale * rng.standard_normal(init_qvel.shape[0])
    return qpos, qvel


# MuJoCo warnings that mean a simulation was reset because its state turned bad
BAD_STATE_WARNINGS = [
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
    int(mujoco.mjtWarning.mjWARN_BADCTRL),
]


class Physics(abc.ABC):
    """``num_copies`` simulations of one model; state exposed as ``[B, ...]`` arrays.

    The arrays ``qpos``, ``qvel``, ``warnings`` (MuJoCo's warning counters, ``[B, 7]``)
    and, when asked for, ``xpos``, ``xmat``, ``cfrc_ext`` and (field ``"subtree"``) ``subtree_com``
    and ``subtree_linvel`` hold every copy's values after its last ``reset`` or ``step``;
    treat them as read-only.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    warnings: np.ndarray
    xpos: np.ndarray
    xmat: np.ndarray
    cfrc_ext: np.ndarray
    subtree_com: np.ndarray
    subtree_linvel: np.ndarray

    def __init__(self, model: mujoco.MjModel, num_copies: int, frame_skip: int) -> None:
        self.model = model
        self.num_copies = num_copies
        self.frame_skip = frame_skip

    @abc.abstractmethod
    def reset(self, ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """As Gymnasium's ``reset``: ``mj_resetData``, set ``qpos``/``qvel``, ``mj_forward``."""

    @abc.abstractmethod
    def step(self, ids: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        """Set ``ctrl[k]`` on copy ``ids[k]`` and advance it ``frame_skip`` substeps.

        Returns a bool mask over ``ids``: the copies MuJoCo raised an error in.
        """

    @abc.abstractmethod
    def write_state(
        self, ids: np.ndarray, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None
    ) -> None:
        """Overwrite copies' ``qpos``/``qvel`` without recomputing anything (fault injection)."""

    def close(self) -> None:  # noqa: B027  (most backends hold nothing to release)
        """Release threads; the object is unusable afterwards."""


class BatchPhysics(Physics):
    """Backend on :class:`mujoco.batch.Batch`: state rows stepped on MuJoCo's thread pool."""

    def __init__(
        self,
        model: mujoco.MjModel,
        num_copies: int,
        frame_skip: int,
        num_threads: int,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(model, num_copies, frame_skip)
        if "cfrc_ext" in fields and "forward" not in fields:
            raise ValueError(
                "the 'batch' backend cannot compute cfrc_ext as Gymnasium does after mj_step "
                "(Ant's v5 form needs it); use backend='threads'"
            )
        sensors = set(model.sensor_type.tolist())
        self._stage = 0  # after a step, derived fields describe the state before it
        if "forward" in fields:  # mj_forward at the new state, as the paper's code did
            if "cfrc_ext" in fields and mujoco.mjtSensor.mjSENS_FRAMELINACC not in sensors:
                raise ValueError(
                    "the 'batch' backend computes contact forces only for a model with an "
                    "acceleration sensor (envs.mujoco_task.add_sensors adds one)"
                )
            self._stage = int(mujoco.mjtStage.mjSTAGE_ACC)
        if "subtree" in fields:
            if mujoco.mjtSensor.mjSENS_SUBTREELINVEL not in sensors:
                raise ValueError(
                    "the 'batch' backend computes centre-of-mass velocities only for a model "
                    "with a subtree velocity sensor (envs.mujoco_task.load_model adds one)"
                )
            # positions and velocities (and with them the sensor's subtree_linvel) at the
            # new state, as the threads backend's refresh_center_of_mass gives them
            self._stage = max(self._stage, int(mujoco.mjtStage.mjSTAGE_VEL))
        from mujoco.batch import Batch

        self.batch = Batch(model, nsim=num_copies, nthread=num_threads)
        # live views of the state rows (qpos, qvel, ctrl), of the warning counters and of outputs
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self._warning = self.batch.warning
        self._ctrl = self.batch.bind("ctrl")
        if "xpos" in fields:
            self.xpos = self.batch.bind("xpos")
        if "subtree" in fields:
            self.subtree_com = self.batch.bind("subtree_com")
            self.subtree_linvel = self.batch.bind("subtree_linvel")
        if "xmat" in fields:
            self.xmat = self.batch.bind("xmat")
        if "cfrc_ext" in fields:
            self.cfrc_ext = self.batch.bind("cfrc_ext")

    @staticmethod
    def _ids(ids: np.ndarray, num_copies: int) -> np.ndarray | None:
        return None if len(ids) == num_copies else ids.astype(np.int32)

    def reset(self, ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        batch_ids = self._ids(ids, self.num_copies)
        self.batch.reset(batch_ids, stage=mujoco.mjtStage.mjSTAGE_NONE.value)
        self.qpos[ids] = qpos
        self.qvel[ids] = qvel
        self.batch.forward(batch_ids)

    def step(self, ids: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        from mujoco.batch import SimulationError

        failed = np.zeros(len(ids), dtype=bool)
        if len(ids) == 0:
            return failed
        self._ctrl[ids] = ctrl
        try:
            self.batch.step(
                self._ids(ids, self.num_copies), nstep=self.frame_skip, stage=self._stage
            )
        except SimulationError as error:
            failed = np.isin(ids, error.ids)
        return failed

    @property
    def warnings(self) -> np.ndarray:  # type: ignore[override]
        return self._warning[:, :, 1]

    def write_state(
        self, ids: np.ndarray, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None
    ) -> None:
        if qpos is not None:
            self.qpos[ids] = qpos
        if qvel is not None:
            self.qvel[ids] = qvel


class ThreadedPhysics(Physics):
    """Backend with one ``MjData`` per copy, stepped by persistent worker threads.

    ``mujoco.mj_step`` releases the GIL, so ``num_threads`` threads (the caller's and
    ``num_threads - 1`` pool workers) step disjoint contiguous shares of the copies in
    parallel. With ``"cfrc_ext"`` in ``fields`` each step also runs
    ``mj_rnePostConstraint``, as Gymnasium's MuJoCo envs do.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        num_copies: int,
        frame_skip: int,
        num_threads: int,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(model, num_copies, frame_skip)
        self.num_threads = max(1, min(num_threads, num_copies))
        self._datas = [mujoco.MjData(model) for _ in range(num_copies)]
        # cached views into each MjData (the buffers never move), so the hot loop
        # touches no attribute lookups beyond these list indexings
        self._ctrl_views = [d.ctrl for d in self._datas]
        self._qpos_views = [d.qpos for d in self._datas]
        self._qvel_views = [d.qvel for d in self._datas]
        self._warning_views = [d.warning.number for d in self._datas]
        # "forward": mj_forward after every step (it computes what the other fields need,
        # given the sensors of envs.mujoco_task.add_sensors), as the paper's code did
        self._forward = "forward" in fields
        self._rne = "cfrc_ext" in fields and not self._forward
        self._want_cfrc = "cfrc_ext" in fields
        self._want_xpos = "xpos" in fields
        self._want_xmat = "xmat" in fields
        self._subtree = "subtree" in fields and not self._forward
        self._want_subtree = "subtree" in fields
        if self._want_subtree:
            self.subtree_com = np.zeros((num_copies, model.nbody, 3))
            self.subtree_linvel = np.zeros((num_copies, model.nbody, 3))
        if self._want_xmat:
            self.xmat = np.zeros((num_copies, model.nbody, 9))
        self.qpos = np.zeros((num_copies, model.nq))
        self.qvel = np.zeros((num_copies, model.nv))
        self.warnings = np.zeros((num_copies, len(self._warning_views[0])), dtype=np.int64)
        if self._want_xpos:
            self._xpos_views = [d.xpos for d in self._datas]
            self.xpos = np.zeros((num_copies, model.nbody, 3))
        if self._want_cfrc:
            self._cfrc_views = [d.cfrc_ext for d in self._datas]
            self.cfrc_ext = np.zeros((num_copies, model.nbody, 6))
        self._pool = (
            ThreadPoolExecutor(self.num_threads - 1, thread_name_prefix="mujoco-physics")
            if self.num_threads > 1
            else None
        )

    def _gather(self, i: int) -> None:
        self.qpos[i] = self._qpos_views[i]
        self.qvel[i] = self._qvel_views[i]
        self.warnings[i] = self._warning_views[i]
        if self._want_xpos:
            self.xpos[i] = self._xpos_views[i]
        if self._want_cfrc:
            self.cfrc_ext[i] = self._cfrc_views[i]
        if self._want_xmat:
            self.xmat[i] = self._datas[i].xmat
        if self._want_subtree:
            self.subtree_com[i] = self._datas[i].subtree_com
            self.subtree_linvel[i] = self._datas[i].subtree_linvel

    def _step_share(self, ids: list[int], ctrl: np.ndarray, failed: np.ndarray) -> None:
        model, nstep, rne, subtree = self.model, self.frame_skip, self._rne, self._subtree
        forward = self._forward
        mj_step, mj_rne, mj_forward = mujoco.mj_step, mujoco.mj_rnePostConstraint, mujoco.mj_forward
        for k, i in enumerate(ids):
            data = self._datas[i]
            self._ctrl_views[i][:] = ctrl[k]
            try:
                mj_step(model, data, nstep=nstep)
                if forward:
                    mj_forward(model, data)
                if rne:
                    mj_rne(model, data)
                if subtree:
                    refresh_center_of_mass(model, data)
            except mujoco.FatalError:
                failed[k] = True
            self._gather(i)

    def reset(self, ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        for k, i in enumerate(ids.tolist()):
            data = self._datas[i]
            mujoco.mj_resetData(self.model, data)
            self._qpos_views[i][:] = qpos[k]
            self._qvel_views[i][:] = qvel[k]
            mujoco.mj_forward(self.model, data)
            if self._subtree:
                mujoco.mj_subtreeVel(self.model, data)
            self._gather(i)

    def step(self, ids: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        failed = np.zeros(len(ids), dtype=bool)
        id_list = ids.tolist()
        if self._pool is None or len(id_list) < 2 * self.num_threads:
            self._step_share(id_list, ctrl, failed)
            return failed
        bounds = np.linspace(0, len(id_list), self.num_threads + 1).astype(int).tolist()
        shares = [
            (id_list[lo:hi], ctrl[lo:hi], failed[lo:hi]) for lo, hi in itertools.pairwise(bounds)
        ]
        futures = [self._pool.submit(self._step_share, *share) for share in shares[1:]]
        self._step_share(*shares[0])
        for future in futures:
            future.result()
        return failed

    def write_state(
        self, ids: np.ndarray, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None
    ) -> None:
        for k, i in enumerate(np.asarray(ids).tolist()):
            if qpos is not None:
                self._qpos_views[i][:] = np.asarray(qpos)[k]
            if qvel is not None:
                self._qvel_views[i][:] = np.asarray(qvel)[k]
            self._gather(i)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()


def has_batch_module() -> bool:
    """Whether this MuJoCo has :mod:`mujoco.batch` (4.0 and later)."""
    try:
        import mujoco.batch  # noqa: F401
    except ImportError:
        return False
    return True


def make_physics(
    backend: str,
    model: mujoco.MjModel,
    num_copies: int,
    frame_skip: int,
    num_threads: int,
    fields: Sequence[str] = (),
) -> Physics:
    """The physics backend called ``backend`` (one of :data:`BACKENDS`).

    ``"batch"`` needs MuJoCo >= 4.0; on an older MuJoCo (Meta-World's environment pins one)
    it falls back to ``"threads"``, which gives the same trajectories, with a warning.
    """
    if backend == "batch" and not has_batch_module():
        warnings.warn(
            f"MuJoCo {mujoco.__version__} has no mujoco.batch (MuJoCo >= 4.0): stepping the "
            "copies with the 'threads' backend instead (same trajectories, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        backend = "threads"
    if backend == "batch":
        return BatchPhysics(model, num_copies, frame_skip, num_threads, fields)
    if backend == "threads":
        return ThreadedPhysics(model, num_copies, frame_skip, num_threads, fields)
    raise ValueError(f"unknown physics backend {backend!r}; choose one of {BACKENDS}")


class MujocoBatchedTaskEnv(BatchedTaskEnv):
    """``num_copies`` copies of a Gymnasium MuJoCo task env, each with its own task.

    Subclasses say what to observe and how to reward, vectorized over copies:
    :meth:`_observation`, :meth:`_before_step` and :meth:`_rewards`. The single env
    ``env`` supplies the model, constants and task validation; it is only read.

    Args:
        env: the (unwrapped) single task env whose copies to step.
        num_copies: number of copies B.
        max_episode_steps: episode length; copies are truncated after it.
        backend: ``"batch"`` or ``"threads"`` (see the module docstring).
        num_threads: threads stepping the physics.
        fields: derived MuJoCo fields the subclass reads besides ``qpos``/``qvel``
            (``"xpos"``, ``"xmat"``, ``"cfrc_ext"``, ``"subtree"``), and ``"forward"`` to run
            ``mj_forward`` after every step (the paper's code did; the model then needs the
            sensors of :func:`envs.mujoco_task.add_sensors`).
        model: the model to simulate, if not ``env.model`` (the same physics with an extra
            sensor, for the ``"batch"`` backend).
    """

    def __init__(
        self,
        env: TaskEnv | MujocoEnv,
        num_copies: int,
        max_episode_steps: int,
        backend: str,
        num_threads: int = 2,
        fields: Sequence[str] = (),
        model: mujoco.MjModel | None = None,
    ) -> None:
        if num_copies <= 0:
            raise ValueError(f"num_copies must be positive, got {num_copies}")
        if num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        self.env = env
        self.num_copies = num_copies
        self.observation_dim = int(env.observation_space.shape[0])
        self.action_dim = int(env.action_space.shape[0])
        self.action_low = np.asarray(env.action_space.low, dtype=np.float64)
        self.action_high = np.asarray(env.action_space.high, dtype=np.float64)
        self.max_episode_steps = max_episode_steps
        self.backend = backend
        self.dt = float(env.dt)
        self.physics = make_physics(
            backend,
            env.model if model is None else model,
            num_copies,
            env.frame_skip,
            num_threads,
            fields,
        )
        self.last_info: dict[str, np.ndarray] = {}
        self._tasks: list[dict[str, Any]] = []
        self._rngs: list[np.random.Generator] | None = None
        self._all = np.arange(num_copies)
        self._done = np.ones(num_copies, dtype=bool)
        self._obs = np.zeros((num_copies, self.observation_dim), dtype=np.float32)
        self._steps = 0

    # --- what subclasses define -------------------------------------------------
    @abc.abstractmethod
    def _set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        """Store the (validated) tasks as arrays for :meth:`_rewards`."""

    @abc.abstractmethod
    def _observation(self) -> np.ndarray:
        """Every copy's observation, float64 ``[B, obs_dim]``, from ``self.physics``."""

    @abc.abstractmethod
    def _before_step(self) -> Any:
        """What :meth:`_rewards` needs from before the step (copied, e.g. x positions)."""

    @abc.abstractmethod
    def _rewards(
        self, before: Any, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(rewards [B], terminated [B], info)`` for every copy after a step.

        ``info`` holds each reward part under a ``reward_*`` key (they sum to the
        reward) and any diagnostics, each a ``[B]`` array.
        """

    # --- the BatchedTaskEnv interface ---------------------------------------------
    @property
    def tasks(self) -> list[dict[str, Any]]:
        return [dict(t) for t in self._tasks]

    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        """Start an episode in every copy; copy ``i`` is seeded with ``seed + i``.

        With ``seed=None`` each copy continues its own random stream (fresh entropy on
        the first reset), as a single Gymnasium env reset without a seed does.
        """
        if len(tasks) != self.num_copies:
            raise ValueError(f"expected {self.num_copies} tasks, got {len(tasks)}")
        self._tasks = [self.env.validate_task(t) for t in tasks]
        self._set_tasks(self._tasks)
        if seed is not None:
            self._rngs = [seeding.np_random(seed + i)[0] for i in range(self.num_copies)]
        elif self._rngs is None:
            self._rngs = [seeding.np_random()[0] for _ in range(self.num_copies)]
        model = self.env.model
        # the same draws, in the same order, as the single env's reset_model
        qpos = np.empty((self.num_copies, model.nq))
        qvel = np.empty((self.num_copies, model.nv))
        for i, rng in enumerate(self._rngs):
            qpos[i], qvel[i] = self.env.initial_state(rng)
        self.physics.reset(self._all, qpos, qvel)
        self._done = np.zeros(self.num_copies, dtype=bool)
        self._steps = 0
        self.last_info = {}
        self._obs = self._observation().astype(np.float32)
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self._tasks:
            raise RuntimeError("call reset(tasks) before step()")
        actions = check_actions(actions, self.num_copies, self.action_dim)
        live = ~self._done
        ids = np.flatnonzero(live)
        before = self._before_step()
        warnings_before = self.physics.warnings[:, BAD_STATE_WARNINGS].sum(axis=1)
        failed = np.zeros(self.num_copies, dtype=bool)
        failed[ids] = self.physics.step(ids, actions[ids])

        obs = self._observation()
        rewards, terminated, info = self._rewards(before, actions)
        # MuJoCo resets a simulation whose state turns bad and counts a warning
        reset_by_mujoco = self.physics.warnings[:, BAD_STATE_WARNINGS].sum(axis=1) > warnings_before
        unstable = live & (
            failed
            | reset_by_mujoco
            | ~np.all(np.isfinite(obs), axis=1)
            | ~np.isfinite(rewards)
            | ~np.all(np.isfinite(self.physics.qpos), axis=1)
            | ~np.all(np.isfinite(self.physics.qvel), axis=1)
        )
        if unstable.any():
            bad = np.flatnonzero(unstable).tolist()
            warnings.warn(
                f"{type(self).__name__}: physics became unstable in cop"
                f"{'y' if len(bad) == 1 else 'ies'} {bad} at step {self._steps + 1}; "
                "ending their episodes (terminated, zero reward)",
                RuntimeWarning,
                stacklevel=2,
            )
            obs = np.where(np.isfinite(obs), obs, 0.0)

        counted = live & ~unstable
        rewards = np.where(counted, rewards, 0.0)
        terminated = (live & terminated.astype(bool) & ~unstable) | unstable
        self._steps += 1
        truncated = live & ~terminated & (self._steps >= self.max_episode_steps)
        self._done |= terminated | truncated
        # copies that were already done keep their last observation
        self._obs = np.where(live[:, None], obs.astype(np.float32), self._obs)
        self.last_info = {
            key: np.where(counted, value, 0.0) if key.startswith("reward_") else value
            for key, value in info.items()
        }
        self.last_info["unstable"] = unstable
        return self._obs.copy(), rewards.astype(np.float64), terminated, truncated

    def close(self) -> None:
        self.physics.close()
