"""The Python API: train, load, adapt, act and evaluate in a few lines (SB3's conventions).

    import metarl
    meta = metarl.load("runs/nav")                      # a run folder or a checkpoint file
    adapted = meta.adapt({"goal": [0.3, -0.2]}, steps=1)  # sample, adapt with the paper's schedule
    action, _ = adapted.predict(obs, deterministic=True)  # in the env's own action units

Everything here is a thin layer over what the scripts use: :class:`~metarl.trainer.Trainer`,
:func:`~metarl.evaluation.adaptation_trace` (the evaluator's adaptation),
:func:`~metarl.adaptation.inner_step` (the one inner step) and the checkpoint format.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.func import functional_call

from envs import OracleObservation, PolicyActions
from envs.base import to_env_actions
from metarl.adaptation import STEP_SIZE_PREFIX, inner_step
from metarl.advantages import add_advantages
from metarl.checkpoint import CheckpointError, save_checkpoint
from metarl.config import TrainConfig, evaluation_protocol
from metarl.distributed import DEFAULT_TIMEOUT_S, World
from metarl.episodes import Episodes
from metarl.evaluation import (
    CurveSummary,
    LoadedPolicy,
    adaptation_trace,
    evaluate_policy_curve,
    given_tasks,
    held_out_tasks,
    load_policy,
    policy_from_payload,
    resolve_checkpoint,
)
from metarl.policies import Params, gaussian_log_prob
from metarl.selection import Selection, select_snapshot, snapshot_paths
from metarl.task_groups import groups_dict, task_groups

EPISODE_KEYS = ("observations", "actions", "rewards")


class MetaPolicy:
    """A policy that adapts: a meta-trained initialisation, a baseline, or one adapted to a task.

    Get one with :func:`load` or :func:`train`. :meth:`adapt` and :meth:`adapt_from` return a
    new ``MetaPolicy`` adapted to one task (``steps_taken`` > 0); adapting that one again
    continues with the next step size of the run's test-time schedule (``alpha``, then
    ``alpha / 2``; AntDir ``alpha / 100``). :meth:`predict` acts like SB3's.
    """

    def __init__(
        self,
        loaded: LoadedPolicy,
        params: Params | None = None,
        steps_taken: int = 0,
        task: dict[str, Any] | None = None,
        adaptation_returns: Sequence[float] = (),
        seed: int = 0,
    ) -> None:
        self._loaded = loaded
        self.params: Params = dict(loaded.params if params is None else params)
        self.steps_taken = steps_taken
        self.task = task
        self.adaptation_returns = list(adaptation_returns)
        self.training_metrics: dict[str, float] = {}
        self._generator = torch.Generator().manual_seed(seed)
        space = loaded.env.action_space
        self._low, self._high, self._action_dtype = space.low, space.high, space.dtype

    # --- what it is -------------------------------------------------------------------
    @property
    def env_id(self) -> str:
        return self._loaded.config.env

    @property
    def config(self) -> TrainConfig:
        """The training config of the run (or baseline) this policy comes from."""
        return self._loaded.config

    @property
    def kind(self) -> str:
        """``"maml"`` for a meta-training run, else the baseline's kind (pretrained, random, oracle)."""
        return self._loaded.kind

    @property
    def iteration(self) -> int:
        """The meta-iteration of the checkpoint it was loaded from (0 for a baseline)."""
        return self._loaded.iteration

    @property
    def observation_dim(self) -> int:
        return self._loaded.policy.obs_dim

    def __repr__(self) -> str:
        task = "" if self.task is None else f", task={self.task}"
        return (
            f"MetaPolicy({self.env_id}, kind={self.kind}, iteration={self.iteration}, "
            f"steps_taken={self.steps_taken}{task})"
        )

    def make_env(
        self, task: Mapping[str, Any] | None = None, policy_units: bool = False, **kwargs: Any
    ) -> gym.Env:
        """A Gymnasium env of this policy's task family, set to ``task`` (default: the task it
        was adapted to, else the env's default). An oracle's env carries the task vector in
        its observations. With ``policy_units`` the env takes the policy's raw actions
        (``predict(..., policy_units=True)``) and maps them itself (:class:`envs.PolicyActions`).
        ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode``)."""
        env = gym.make(self.env_id, **kwargs)
        chosen = task if task is not None else self.task
        if chosen is not None:
            env.unwrapped.set_task(self._loaded.env.validate_task(chosen))
        if policy_units:
            env = PolicyActions(env)
        return OracleObservation(env) if self._loaded.oracle else env

    # --- acting -----------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Seed the action noise of :meth:`predict`."""
        self._generator.manual_seed(seed)

    @torch.no_grad()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        policy_units: bool = False,
    ) -> tuple[np.ndarray, None]:
        """``(action, None)`` for one observation ``[obs_dim]`` or a batch ``[n, obs_dim]``.

        The action is in the env's own units: the policy's action (mean if ``deterministic``,
        else a sample) mapped onto the action bounds and clipped, as the sampler maps it.
        ``policy_units=True`` returns the policy's raw action instead (what :meth:`adapt_from`
        takes with ``action_units="policy"``). ``state``/``episode_start`` exist for SB3
        compatibility; the policy is not recurrent.
        """
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.observation_dim:
            raise ValueError(
                f"observation has shape {obs.shape}; {self.env_id} "
                f"{'(oracle) ' if self._loaded.oracle else ''}expects [{self.observation_dim}] "
                f"or [n, {self.observation_dim}]"
            )
        if not np.all(np.isfinite(obs)):
            raise ValueError("observation holds NaN or infinite values")
        batch = torch.as_tensor(obs.reshape(-1, self.observation_dim))
        mean, log_std = functional_call(self._loaded.policy, self.params, (batch,))
        if deterministic:
            action = mean
        else:
            noise = torch.randn(mean.shape, generator=self._generator, dtype=mean.dtype)
            action = mean + torch.exp(log_std) * noise
        action = action.numpy()
        if not policy_units:
            action = to_env_actions(action, self._low, self._high).astype(self._action_dtype)
        return (action[0] if single else action), None

    # --- adapting ---------------------------------------------------------------------
    def _task_of(self, env_or_task: gym.Env | Mapping[str, Any]) -> dict[str, Any]:
        task_env = self._loaded.env
        if isinstance(env_or_task, gym.Env):
            unwrapped = env_or_task.unwrapped
            if type(unwrapped) is not type(task_env.unwrapped):
                raise ValueError(
                    f"this policy adapts on {self.env_id} ({type(task_env.unwrapped).__name__}), "
                    f"not on {type(unwrapped).__name__}"
                )
            task = getattr(unwrapped, "task", None)
            if not isinstance(task, Mapping):
                raise ValueError(
                    f"{type(unwrapped).__name__} has no task property to read the task from; "
                    "pass the task dict instead"
                )
        elif isinstance(env_or_task, Mapping):
            task = env_or_task
        else:
            raise ValueError(
                f"adapt takes a task dict or a {self.env_id} env, got {type(env_or_task).__name__}"
            )
        task = task_env.validate_task(task)
        if self.task is not None and json.dumps(task, sort_keys=True) != json.dumps(
            self.task, sort_keys=True
        ):
            raise ValueError(
                f"this policy was adapted to task {self.task}; adapt the meta-policy "
                f"(steps_taken 0) to task {task} instead"
            )
        return task

    def _check_adaptable(self) -> None:
        if self._loaded.oracle:
            raise ValueError("an oracle sees its task in its observations and is not adapted")

    def _step_sizes(self, steps: int, step_size: float | None) -> list:
        if step_size is not None and not (isinstance(step_size, int | float) and step_size > 0):
            raise ValueError(f"step_size must be a positive number, got {step_size!r}")
        return self._loaded.schedule(self.steps_taken + steps, step_size)[self.steps_taken :]

    def _adapted(self, params: Params, steps: int, task: Any, returns: list[float]) -> MetaPolicy:
        return MetaPolicy(
            self._loaded,
            {name: value.detach().clone() for name, value in params.items()},
            self.steps_taken + steps,
            task,
            [*self.adaptation_returns, *returns],
        )

    def adapt(
        self,
        env_or_task: gym.Env | Mapping[str, Any],
        steps: int = 1,
        episodes: int | None = None,
        seed: int = 0,
        step_size: float | None = None,
    ) -> MetaPolicy:
        """Adapt to a task with ``steps`` policy-gradient steps on rollouts it samples itself.

        ``env_or_task``: a task dict (``{"goal": [0.3, -0.2]}``) or an env of this family
        (its current task is used). ``episodes`` per step default to the paper's test
        protocol for the env (40 for 2D navigation and AntDir, else 20); step sizes follow
        the run's test-time schedule unless ``step_size`` (the first step's) is given.
        Exactly what ``scripts/evaluate.py`` does per task, deterministic for a ``seed``.
        """
        self._check_adaptable()
        task = self._task_of(env_or_task)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        episodes = evaluation_protocol(self.env_id).episodes if episodes is None else episodes
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
        loaded, config = self._loaded, self._loaded.config
        stages = list(
            adaptation_trace(
                loaded.policy,
                self.params,
                loaded.batched_env(episodes),
                [task],
                episodes,
                self._step_sizes(steps, step_size),
                config.gamma,
                config.gae_lambda,
                seed=seed,
                estimator=config.inner_estimator,
                adapted_names=loaded.adapted_names,
                normalize_advantages=config.normalize_advantages,
                sample_last=False,
            )
        )
        returns = [float(stage.episodes.episode_returns().mean()) for stage in stages[:-1]]
        params = {name: value[0] for name, value in stages[-1].params.items()}
        return self._adapted(params, steps, task, returns)

    def adapt_from(
        self,
        episodes: Sequence[Mapping[str, Any]],
        step_size: float | None = None,
        action_units: str = "env",
        task: Mapping[str, Any] | None = None,
    ) -> MetaPolicy:
        """One adaptation step on episodes collected elsewhere (your sampler, your system).

        ``episodes``: a list with one mapping per episode of one task, each with
        ``observations`` ``[T, obs_dim]``, ``actions`` ``[T, act_dim]`` and ``rewards``
        ``[T]`` (arrays or lists; ``T`` may differ between episodes) and optionally
        ``terminated`` (bool; accepted for completeness: the paper's estimator does not
        bootstrap at the horizon, so it does not change the step). Actions are in the env's
        units (``action_units="env"``, what :meth:`predict` returns; mapped back to policy
        units, so a clipped action counts as its clipped value) or the policy's
        (``"policy"``, from ``predict(..., policy_units=True)``). The data should come from
        this policy (on-policy), as the paper's inner step assumes. Call it again on the
        returned policy's new episodes for a second step.
        """
        self._check_adaptable()
        if task is not None:
            task = self._task_of(task)
        batch = self._episodes_from_records(episodes, action_units)
        config, loaded = self._loaded.config, self._loaded
        batch = add_advantages(batch, config.gamma, config.gae_lambda, config.normalize_advantages)
        (rate,) = self._step_sizes(1, step_size)
        adapted = inner_step(
            loaded.policy,
            self.params,
            batch,
            rate,
            per_task=False,
            first_order=True,
            estimator=config.inner_estimator,
            adapted_names=loaded.adapted_names,
        )
        params = {name: value[0] for name, value in adapted.items()}
        returns = [float(batch.episode_returns().mean())]
        return self._adapted(params, 1, task if task is not None else self.task, returns)

    @torch.no_grad()
    def _episodes_from_records(
        self, records: Sequence[Mapping[str, Any]], action_units: str
    ) -> Episodes:
        """The user's episodes as one task's time-major batch ``[T, 1, episodes, ...]``."""
        if action_units not in ("env", "policy"):
            raise ValueError(f"action_units must be 'env' or 'policy', got {action_units!r}")
        if isinstance(records, Mapping) or not isinstance(records, Sequence) or not records:
            raise ValueError("episodes must be a non-empty list of per-episode mappings")
        obs_dim, act_dim = self.observation_dim, self._loaded.policy.act_dim
        arrays = [self._episode_arrays(i, r, obs_dim, act_dim) for i, r in enumerate(records)]
        if action_units == "env":
            low, high = self._low.astype(np.float64), self._high.astype(np.float64)
            for i, (_, actions, _) in enumerate(arrays):
                if np.any(actions < low - 1e-6) or np.any(actions > high + 1e-6):
                    raise ValueError(
                        f"episode {i}: actions lie outside the env's bounds [{low}, {high}]; "
                        "give action_units='policy' if they are the policy's raw actions"
                    )
        horizon, count = max(len(r) for _, _, r in arrays), len(arrays)
        dtype = next(iter(self.params.values())).dtype
        observations = torch.zeros(horizon, 1, count, obs_dim, dtype=dtype)
        actions = torch.zeros(horizon, 1, count, act_dim, dtype=dtype)
        rewards = torch.zeros(horizon, 1, count, dtype=dtype)
        mask = torch.zeros(horizon, 1, count, dtype=dtype)
        for j, (obs, act, rew) in enumerate(arrays):
            if action_units == "env":
                act = 2.0 * (act - self._low) / (self._high - self._low) - 1.0
            length = len(rew)
            observations[:length, 0, j] = torch.as_tensor(obs, dtype=dtype)
            actions[:length, 0, j] = torch.as_tensor(act, dtype=dtype)
            rewards[:length, 0, j] = torch.as_tensor(rew, dtype=dtype)
            mask[:length, 0, j] = 1.0
        mean, log_std = functional_call(self._loaded.policy, self.params, (observations,))
        log_probs = gaussian_log_prob(mean, log_std, actions) * mask
        return Episodes(observations, actions, rewards, mask, log_probs=log_probs)

    @staticmethod
    def _episode_arrays(
        index: int, record: Mapping[str, Any], obs_dim: int, act_dim: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(record, Mapping):
            raise ValueError(f"episode {index} must be a mapping, got {type(record).__name__}")
        missing = [key for key in EPISODE_KEYS if key not in record]
        if missing:
            raise ValueError(f"episode {index} lacks {missing}; each needs {list(EPISODE_KEYS)}")
        try:
            obs, act, rew = (np.asarray(record[key], dtype=np.float64) for key in EPISODE_KEYS)
        except (TypeError, ValueError) as error:
            raise ValueError(f"episode {index} holds non-numeric data: {error}") from error
        length = rew.shape[0] if rew.ndim == 1 else -1
        expected = {"observations": (length, obs_dim), "actions": (length, act_dim)}
        if length < 1:
            raise ValueError(f"episode {index}: rewards must be a non-empty [T] array")
        for key, value in (("observations", obs), ("actions", act)):
            if value.shape != expected[key]:
                raise ValueError(
                    f"episode {index}: {key} has shape {value.shape}, expected {expected[key]}"
                )
        for key, value in zip(EPISODE_KEYS, (obs, act, rew), strict=True):
            if not np.all(np.isfinite(value)):
                raise ValueError(f"episode {index}: {key} holds NaN or infinite values")
        if "terminated" in record and not isinstance(record["terminated"], bool | np.bool_):
            raise ValueError(f"episode {index}: terminated must be true or false")
        return obs, act, rew

    # --- saving -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write this policy as a checkpoint (atomically); :func:`load` reads it back, and the
        scripts (evaluate, render) take it as a ``.pt`` file."""
        path = Path(path)
        if path.suffix != ".pt":
            raise ValueError(f"save to a .pt file, got {path}")
        loaded = self._loaded
        params = dict(self.params)
        if loaded.learned_step_sizes is not None:
            params.update({STEP_SIZE_PREFIX + k: v for k, v in loaded.learned_step_sizes.items()})
        payload: dict[str, Any] = {
            "config": loaded.config.to_dict(),
            "params": params,
            "iteration": loaded.iteration,
            "env_steps": loaded.env_steps,
            "best_return": math.nan,
            "adapted": json.dumps({"steps": self.steps_taken, "task": self.task}),
        }
        if loaded.kind != "maml":
            payload["baseline"] = json.dumps({"kind": loaded.kind, "oracle": loaded.oracle})
        save_checkpoint(path, payload)
        return path

    def _as_loaded(self) -> LoadedPolicy:
        """The evaluator's view of this policy, with its current parameters."""
        return dataclasses.replace(self._loaded, params=self.params)


def load(
    path: str | Path, checkpoint: str | int = "latest", env: str | None = None, seed: int = 0
) -> MetaPolicy:
    """Load a meta-policy: a run folder (``checkpoint``: ``"latest"``, ``"best"``, an iteration
    such as ``100``, or a path), a baseline folder, or a ``.pt`` file (also one written by
    :meth:`MetaPolicy.save`).

    ``env``, if given, must be the checkpoint's env id. Every failure is a
    :class:`~metarl.checkpoint.CheckpointError` (a ``ValueError``) naming the problem.
    """
    loaded = load_policy(resolve_checkpoint(path, checkpoint))
    if env is not None and env != loaded.config.env:
        raise CheckpointError(f"{loaded.path} is a policy for {loaded.config.env}, not {env}")
    adapted = loaded.adapted or {}
    return MetaPolicy(
        loaded, steps_taken=int(adapted.get("steps", 0)), task=adapted.get("task"), seed=seed
    )


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    dist_timeout_s: float = DEFAULT_TIMEOUT_S,
    given: Collection[str] | None = None,
) -> MetaPolicy:
    """Meta-train with ``config`` into ``run_dir`` (TensorBoard logs, checkpoints), as
    ``scripts/train.py`` does; ``resume`` continues a stopped run. Returns the final policy,
    with the last iteration's logged values in ``training_metrics``.

    A resumed run keeps its saved config except ``iterations``, ``threads``, ``device`` and
    the checkpoint cadence (:data:`~metarl.config.RESUMABLE_KEYS`), which come from
    ``config``; another key of ``config`` (or, with ``given``, of the keys named there, as
    the command line passes its flags) that differs from the saved one is refused.

    Under ``torchrun`` every rank calls this and trains its share of each meta-batch
    (:mod:`metarl.distributed`; ``dist_timeout_s`` bounds every wait for another rank);
    rank 0 writes ``run_dir``, and every rank returns the same policy.

    Raises ``ValueError`` for a bad config or run folder,
    :class:`~metarl.trainer.TrainingDiverged` if the updates stay non-finite and
    :class:`~metarl.distributed.RankFailure` if another rank fails.
    """
    from metarl.trainer import Trainer

    world = World.join(dist_timeout_s)
    trainer = Trainer(config, run_dir, resume=resume, world=world, given=given)
    metrics = trainer.run(progress=progress)
    if world.is_main:
        meta = load(trainer.run_dir)
    else:  # the same parameters, without reading rank 0's files (maybe on another machine)
        latest = trainer.checkpoint_dir / "latest.pt"
        meta = MetaPolicy(policy_from_payload(trainer.payload(), latest))
    meta.training_metrics = dict(metrics)
    return meta


@dataclass(frozen=True)
class Evaluation:
    """Mean return after ``0..adapt_steps`` steps on held-out tasks (what evaluate.py prints)."""

    env: str
    checkpoint: str
    kind: str
    iteration: int
    adapt_steps: int
    num_tasks: int
    episodes_per_task: int
    inner_lr: float | str
    seed: int
    training_seed: int  # the run's: a test seed equal to it evaluates on training tasks
    tasks: list[dict[str, Any]]
    summary: CurveSummary
    selection: Selection | None = None

    @property
    def mean_return(self) -> list[float]:
        """Mean over tasks after each number of steps."""
        return list(self.summary.mean)

    @property
    def returns(self) -> list[list[float]]:
        """``[steps + 1][tasks]`` mean return per task."""
        return self.summary.returns

    def to_dict(self) -> dict[str, Any]:
        """The content of ``evaluation.json``."""
        result: dict[str, Any] = {
            "env": self.env,
            "checkpoint": self.checkpoint,
            "kind": self.kind,
            "iteration": self.iteration,
            "adapt_steps": self.adapt_steps,
            "num_tasks": self.num_tasks,
            "episodes_per_task": self.episodes_per_task,
            "inner_lr": self.inner_lr,
            "step_sizes": self.summary.step_sizes,
            "seed": self.seed,
            "tasks": [dict(task) for task in self.tasks],
            "mean_return": {str(k): m for k, m in enumerate(self.summary.mean)},
            "ci95": {str(k): c for k, c in enumerate(self.summary.ci95)},
            "returns": {str(k): r for k, r in enumerate(self.summary.returns)},
        }
        if self.summary.success is not None:  # envs reporting info["success"] (Meta-World)
            summary = self.summary.to_dict()
            result["success_rate"], result["success"] = summary["success_rate"], summary["success"]
        if self.selection is not None:
            result["selection"] = self.selection.to_dict()
        groups = task_groups(self.tasks)
        if groups:  # e.g. backwards and forwards, each direction's mean on its own
            result["by_task_group"] = groups_dict(self.summary.returns, groups)
        return result


def resolve(
    source: str | Path | MetaPolicy,
    checkpoint: str = "latest",
    num_tasks: int = 40,
    episodes: int | None = None,
    seed: int = 1234,
    validation_seed: int | None = None,
    select_steps: int = 1,
    later_step_ratio: float | None = None,
    test_tasks: Sequence[Mapping[str, Any]] | str | None = None,
) -> tuple[LoadedPolicy, Selection | None]:
    """The policy to evaluate: a :class:`MetaPolicy` as it is, a path's checkpoint, or with
    ``checkpoint="select"`` a run's snapshot chosen on validation tasks (seed
    ``validation_seed``, default ``seed + 1``; never the test tasks) by the mean return after
    ``select_steps`` steps of the schedule that ``later_step_ratio`` sets. The test tasks
    the validation tasks avoid: ``test_tasks`` (a list, or ``"paper"``), else the
    ``num_tasks`` drawn with ``seed``."""
    if isinstance(source, MetaPolicy):
        return source._as_loaded(), None
    path = Path(source)
    if checkpoint != "select" or path.suffix == ".pt" or not snapshot_paths(path):
        return load(path, "latest" if checkpoint == "select" else checkpoint)._loaded, None
    probe = load_policy(snapshot_paths(path)[-1])
    if probe.kind != "maml":
        return probe, None
    episodes = episodes or evaluation_protocol(probe.config.env).episodes
    validation_seed = seed + 1 if validation_seed is None else validation_seed
    if test_tasks is not None:
        test_tasks = given_tasks(probe.env, probe.config.env, test_tasks)
    selection = select_snapshot(
        path,
        num_tasks,
        episodes,
        validation_seed,
        seed,
        select_steps,
        later_step_ratio,
        test_tasks,
    )
    return selection.chosen, selection


def evaluate(
    source: str | Path | MetaPolicy,
    num_tasks: int = 40,
    adapt_steps: int = 3,
    episodes: int | None = None,
    seed: int = 1234,
    step_size: float | None = None,
    checkpoint: str = "latest",
    validation_seed: int | None = None,
    later_step_ratio: float | None = None,
    select_steps: int = 1,
    tasks: Sequence[Mapping[str, Any]] | str | None = None,
) -> Evaluation:
    """Adapt to ``num_tasks`` held-out tasks (drawn with ``seed``) with ``0..adapt_steps``
    steps and return the mean returns: ``scripts/evaluate.py --run-dir`` without the files.
    ``tasks`` replaces the drawn tasks with these, or with ``"paper"`` the paper's own 40 test
    tasks for the env (:func:`metarl.paper_tasks.paper_test_tasks`); ``seed`` still seeds
    the rollouts.

    ``source``: a run or baseline folder, a ``.pt`` file or a :class:`MetaPolicy`.
    ``episodes`` per step and the step schedule default to the env's test protocol
    (``later_step_ratio``: later steps' size over the first's); an oracle is evaluated at
    0 steps only. ``checkpoint="select"`` chooses the run's snapshot by the return after
    ``select_steps`` steps on validation tasks that avoid the test tasks (see :func:`resolve`).
    """
    for name, value in (("num_tasks", num_tasks), ("episodes", episodes)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(adapt_steps, bool) or not isinstance(adapt_steps, int) or adapt_steps < 0:
        raise ValueError(f"adapt_steps must be an integer >= 0, got {adapt_steps!r}")
    for name, value in (("step_size", step_size), ("later_step_ratio", later_step_ratio)):
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise ValueError(f"{name} must be positive, got {value!r}")
    loaded, selection = resolve(
        source,
        checkpoint,
        num_tasks,
        episodes,
        seed,
        validation_seed,
        select_steps,
        later_step_ratio,
        tasks,
    )
    episodes = episodes or evaluation_protocol(loaded.config.env).episodes
    if tasks is None:
        tasks = held_out_tasks(loaded.env, num_tasks, seed)
    else:
        tasks = given_tasks(loaded.env, loaded.config.env, tasks)
    summary = evaluate_policy_curve(
        loaded, tasks, episodes, adapt_steps, seed, step_size, "MAML", later_step_ratio
    )
    first = summary.step_size if summary.step_size is not None else loaded.config.inner_lr
    return Evaluation(
        env=loaded.config.env,
        checkpoint=str(loaded.path),
        kind=loaded.kind,
        iteration=loaded.iteration,
        adapt_steps=len(summary.mean) - 1,
        num_tasks=len(tasks),
        episodes_per_task=episodes,
        inner_lr=first,
        seed=seed,
        training_seed=loaded.config.seed,
        tasks=tasks,
        summary=summary,
        selection=selection,
    )
