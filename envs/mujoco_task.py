"""What the MuJoCo task envs (HalfCheetah, Ant) share: their form, start state, task arrays
and control cost.

Each task family is one env class with two forms, chosen by the ``form`` constructor
argument (shared/REFERENCE.md 1b):

- ``"paper"`` (default): what the MAML paper's code ran (rllab's models and envs): its
  control time step, observations with the torso's centre of mass, forward velocity of the
  torso subtree's centre of mass, reset noise ``0.01 N(0, 1)`` on positions and
  ``0.1 N(0, 1)`` on velocities.
- ``"v5"``: Gymnasium's v5 env as it is (its time step, observations, finite-difference
  velocity and reset noise), for comparisons with other Gymnasium work.

Either way only the reward differs from the base Gymnasium env's, and actions are charged
at their clipped value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from envs.base import TaskEnv, control_cost
from envs.mujoco_batched import initial_state

_TOTAL_MASS = re.compile(r'\s+settotalmass="([^"]+)"')


ModelEdit = Callable[[mujoco.MjSpec], None]


def load_model(path: str | Path, edit: ModelEdit | None = None) -> mujoco.MjModel:
    """Compile a model file as MuJoCo would, without its deprecated ``settotalmass``.

    MuJoCo warns about that compiler attribute (Gymnasium's HalfCheetah uses it) and writes
    the warning to ``MUJOCO_LOG.TXT`` in the working directory. Here the attribute is
    removed before compiling and applied afterwards with ``mj_setTotalmass`` and
    ``mj_setConst``, as MuJoCo's message advises: the masses and inertias are the same.
    ``edit`` changes the model's spec before it is compiled (see :func:`add_sensors`).
    """
    text = Path(path).read_text()
    match = _TOTAL_MASS.search(text)
    if match is None and edit is None:
        return mujoco.MjModel.from_xml_path(str(path))
    if match is not None:
        text = _TOTAL_MASS.sub("", text, count=1)
    if edit is None:
        model = mujoco.MjModel.from_xml_string(text)
    else:
        spec = mujoco.MjSpec.from_string(text)
        spec.modelfiledir = str(Path(path).parent)
        edit(spec)
        model = spec.compile()
    if match is None:
        return model
    mujoco.mj_setTotalmass(model, float(match.group(1)))
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def add_sensors(spec: mujoco.MjSpec, body: str, accelerations: bool = False) -> None:
    """Sensors on ``body`` that make ``mj_forward`` compute what the paper-form envs read.

    The physics is unchanged. A subtree linear-velocity sensor makes MuJoCo's velocity
    stage run ``mj_subtreeVel`` (every body's ``subtree_linvel``); with ``accelerations``,
    a linear-acceleration sensor makes its acceleration stage run ``mj_rnePostConstraint``
    (``cfrc_ext``, the contact forces). ``mujoco.batch`` computes both only this way.
    """
    spec.add_sensor(
        type=mujoco.mjtSensor.mjSENS_SUBTREELINVEL, objtype=mujoco.mjtObj.mjOBJ_BODY, objname=body
    )
    if accelerations:
        spec.add_sensor(
            type=mujoco.mjtSensor.mjSENS_FRAMELINACC, objtype=mujoco.mjtObj.mjOBJ_BODY, objname=body
        )


class MujocoTaskEnv(TaskEnv):
    """Mixin for a Gymnasium ``MujocoEnv`` task env; put it before the Gymnasium class."""

    form: str = "paper"

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """Gymnasium's model set-up, compiled by :func:`load_model` (no MuJoCo warnings)."""
        model = load_model(self.fullpath, self.model_edit())  # type: ignore[attr-defined]
        width, height = self.width, self.height  # type: ignore[attr-defined]
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        return model, mujoco.MjData(model)

    def model_edit(self) -> ModelEdit | None:
        """How this env's form changes the model file before compiling (``None``: not at all)."""
        return None

    def task_array(self, task: Mapping[str, Any]) -> np.ndarray:
        """A validated task's parameters as a float64 vector (the reward's view of it)."""
        raise NotImplementedError

    def task_vector(self, task: Mapping[str, Any]) -> np.ndarray:
        return self.task_array(task).astype(np.float32)

    def task_params(self, tasks: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The tasks' parameters as a float64 ``[n, k]`` array (validated)."""
        return np.stack([self.task_array(self.validate_task(t)) for t in tasks])

    def control_cost(self, action: np.ndarray) -> float:
        """The control cost of ``action``, charged on its clipped value (float64)."""
        space = self.action_space  # type: ignore[attr-defined]
        weight = self._ctrl_cost_weight  # type: ignore[attr-defined]
        return float(control_cost(action, weight, space.low, space.high))

    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A start state ``(qpos, qvel)`` drawn from ``rng`` as this env's form does it."""
        return initial_state(
            self.form,
            self.init_qpos,  # type: ignore[attr-defined]
            self.init_qvel,  # type: ignore[attr-defined]
            self._reset_noise_scale,  # type: ignore[attr-defined]
            rng,
        )

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.initial_state(self.np_random)  # type: ignore[attr-defined]
        self.set_state(qpos, qvel)  # type: ignore[attr-defined]
        if self.form == "paper":
            mujoco.mj_subtreeVel(self.model, self.data)  # type: ignore[attr-defined]
        return self._get_obs()  # type: ignore[attr-defined]
