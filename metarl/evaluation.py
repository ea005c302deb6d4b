"""Adaptation curves on held-out tasks: returns after 0, 1, ..., K inner steps.

The paper's protocol (Finn et al. 2017, section 5.3): for each held-out task, sample
episodes with the current parameters, take a policy-gradient step with the same
:func:`~metarl.adaptation.inner_step` used in training (step size ``alpha`` first,
``alpha / 2`` afterwards), and repeat; report the mean undiscounted return per episode
after each number of steps. All tasks are evaluated at once.

Also here: loading any evaluable policy (a meta-training run or a baseline from
:mod:`metarl.baselines`), the oracle's batched view of an env (observations with the task
vector appended), and the comparison of several policies on the same held-out tasks with
95% confidence intervals over tasks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from envs import BatchedTaskEnv, TaskEnv, episode_horizon, make_task_env
from metarl import memory
from metarl.adaptation import StepSize, inner_step, split_meta_params
from metarl.advantages import add_advantages
from metarl.baselines import baseline_info
from metarl.checkpoint import CheckpointError, load_checkpoint
from metarl.config import TrainConfig, config_from_dict, evaluation_protocol
from metarl.episodes import Episodes
from metarl.paper_tasks import paper_test_tasks
from metarl.policies import GaussianMLPPolicy, Params
from metarl.sampler import rollouts, rollouts_of_min_steps

_NUMBERED = re.compile(r"(?:snapshot|iter)_(\d+)\.pt")


def test_time_step_sizes(step_size: float, steps: int, later_ratio: float = 0.5) -> list[float]:
    """The paper's schedule: ``alpha`` for the first step, ``later_ratio * alpha`` after
    (``alpha / 2``; AntDir's snapshot was tested with ``0.1`` then ``0.001``)."""
    return [step_size if k == 0 else step_size * later_ratio for k in range(steps)]


def held_out_tasks(env: TaskEnv, num_tasks: int, seed: int) -> list[dict[str, Any]]:
    """The evaluation tasks: ``num_tasks`` draws from ``np.random.default_rng(seed)`` of the
    env's held-out split (``sample_test_tasks``; the training distribution unless the env
    has a test split, as Meta-World's benchmarks do).

    Training draws its tasks from ``default_rng(config.seed)``, so any ``seed`` other than
    the run's training seed gives tasks the run has (almost surely) never seen.
    """
    return env.sample_test_tasks(num_tasks, np.random.default_rng(seed))


def given_tasks(
    env: TaskEnv, env_id: str, tasks: Sequence[Mapping[str, Any]] | str
) -> list[dict[str, Any]]:
    """Tasks named by the caller, checked against ``env``: a list, or ``"paper"`` for the
    paper's own 40 test tasks of ``env_id``."""
    if tasks == "paper":
        tasks = paper_test_tasks(env_id)
    elif isinstance(tasks, str):
        raise ValueError(f"tasks must be a list of tasks or 'paper', got {tasks!r}")
    checked = [env.validate_task(task) for task in tasks]
    if not checked:
        raise ValueError("tasks is empty: give at least one task")
    return checked


@dataclass(frozen=True)
class AdaptationStage:
    """The rollouts after ``step`` inner steps, and the parameters that produced them."""

    step: int
    params: Params
    per_task: bool
    episodes: Episodes | None  # None for the last stage of a trace with ``sample_last=False``


def adaptation_trace(
    policy: nn.Module,
    params: Params,
    env: BatchedTaskEnv,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    step_sizes: Sequence[StepSize],
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    seed: int = 0,
    estimator: str = "reinforce",
    adapted_names: Collection[str] | None = None,
    normalize_advantages: bool = True,
    sample_last: bool = True,
    batch_per_task: str = "episodes",
) -> Iterator[AdaptationStage]:
    """Yield the rollouts after ``k = 0..len(step_sizes)`` inner steps, adapting in between.

    Deterministic for a given ``seed``. The adapted parameters are per task. A step size
    is a number or, for Meta-SGD, a dict of per-parameter step sizes; ``estimator`` and
    ``adapted_names`` (ANIL) are passed to :func:`~metarl.adaptation.inner_step`. With
    ``sample_last=False`` the final stage carries the adapted parameters without rollouts
    (what adapting, as opposed to evaluating, needs). ``batch_per_task="steps"`` samples
    the paper's batch (:func:`~metarl.sampler.rollouts_of_min_steps`) at every stage.
    """
    sample = rollouts_of_min_steps if batch_per_task == "steps" else rollouts
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    current, per_task = params, False
    adapt_steps = len(step_sizes)
    for k in range(adapt_steps + 1):
        if k == adapt_steps and not sample_last:
            yield AdaptationStage(k, current, per_task, None)
            break
        env_seed = int(rng.integers(2**31 - 1))
        episodes = sample(
            policy, current, env, tasks, episodes_per_task, generator, env_seed, per_task
        )
        yield AdaptationStage(k, current, per_task, episodes)
        if k == adapt_steps:
            break
        episodes = add_advantages(episodes, gamma, gae_lambda, normalize_advantages)
        adapted = inner_step(
            policy,
            current,
            episodes,
            step_sizes[k],
            per_task,
            first_order=True,
            estimator=estimator,
            adapted_names=adapted_names,
        )
        current = {name: value.detach() for name, value in adapted.items()}
        per_task = True


def adaptation_curve(*args: Any, **kwargs: Any) -> torch.Tensor:
    """Mean return per task after ``k = 0..adapt_steps`` inner steps: ``[adapt_steps + 1, tasks]``
    (:func:`adaptation_outcomes` without the success rates)."""
    return adaptation_outcomes(*args, **kwargs)[0]


def adaptation_outcomes(
    policy: nn.Module,
    params: Params,
    env: BatchedTaskEnv,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    adapt_steps: int,
    step_size: float,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    seed: int = 0,
    step_sizes: Sequence[StepSize] | None = None,
    estimator: str = "reinforce",
    adapted_names: Collection[str] | None = None,
    normalize_advantages: bool = True,
    batch_per_task: str = "episodes",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean return and success rate per task after ``k = 0..adapt_steps`` inner steps, each
    ``[adapt_steps + 1, tasks]`` (success ``None`` unless the env reports ``info["success"]``).

    Deterministic for a given ``seed``. ``step_sizes`` overrides the paper's schedule.
    """
    if adapt_steps < 0:
        raise ValueError(f"adapt_steps must be >= 0, got {adapt_steps}")
    schedule = (
        list(step_sizes) if step_sizes is not None else test_time_step_sizes(step_size, adapt_steps)
    )
    if len(schedule) != adapt_steps:
        raise ValueError(f"got {len(schedule)} step sizes for {adapt_steps} steps")
    returns, rates = [], []
    for stage in adaptation_trace(  # one stage's episodes in memory at a time
        policy,
        params,
        env,
        tasks,
        episodes_per_task,
        schedule,
        gamma,
        gae_lambda,
        seed,
        estimator,
        adapted_names,
        normalize_advantages,
        batch_per_task=batch_per_task,
    ):
        returns.append(stage.episodes.mean_returns())
        rates.append(stage.episodes.success_rate())
    return torch.stack(returns), None if rates[0] is None else torch.stack(rates)


class OracleBatchedEnv(BatchedTaskEnv):
    """A batched env whose observations carry each copy's task vector (the oracle's view).

    The batched counterpart of :class:`envs.OracleObservation`: ``obs`` becomes
    ``concat(obs, task_vector(task))`` for every copy.
    """

    def __init__(self, env: BatchedTaskEnv, task_env: TaskEnv) -> None:
        self.env, self.task_env = env, task_env
        self.num_copies = env.num_copies
        self.task_dim = int(task_env.task_vector(task_env.task).shape[0])
        self.observation_dim = env.observation_dim + self.task_dim
        self.action_dim = env.action_dim
        self.action_low, self.action_high = env.action_low, env.action_high
        self.max_episode_steps = env.max_episode_steps
        self._vectors = np.zeros((self.num_copies, self.task_dim), dtype=np.float32)

    def _augment(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self._vectors], axis=1).astype(np.float32)

    def reset(self, tasks: Sequence[Mapping[str, Any]], seed: int | None = None) -> np.ndarray:
        obs = self.env.reset(tasks, seed=seed)
        vectors = [self.task_env.task_vector(self.task_env.validate_task(t)) for t in tasks]
        self._vectors = np.stack(vectors).astype(np.float32)
        return self._augment(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        obs, rewards, terminated, truncated = self.env.step(actions)
        return self._augment(obs), rewards, terminated, truncated

    @property
    def last_info(self) -> dict[str, np.ndarray]:
        """The wrapped env's per-copy info (e.g. ``success``), passed on."""
        return getattr(self.env, "last_info", {})


@dataclass
class LoadedPolicy:
    """An evaluable policy: a meta-training run's checkpoint or a saved baseline."""

    path: Path
    config: TrainConfig
    env: TaskEnv
    policy: GaussianMLPPolicy
    params: Params
    iteration: int
    env_steps: int
    kind: str  # "maml" for a meta-training run, else the baseline's kind
    oracle: bool
    learned_step_sizes: Params | None = None  # Meta-SGD's per-parameter step sizes
    adapted_names: list[str] | None = None  # ANIL: the only parameters adapted
    adapted: dict[str, Any] | None = None  # a saved adapted policy: its steps and task

    def schedule(
        self, steps: int, step_size: float | None = None, later_step_ratio: float | None = None
    ) -> list[StepSize]:
        """Test-time step sizes: Meta-SGD's learned ones at every step unless ``step_size``
        is given, else the paper's schedule for the env (``alpha, alpha/2, ...``; ``alpha``:
        the run's inner_lr), or ``alpha, later_step_ratio * alpha, ...`` if given."""
        if self.learned_step_sizes is not None and step_size is None:
            return [self.learned_step_sizes] * steps
        ratio = later_step_ratio or evaluation_protocol(self.config.env).later_step_ratio
        return list(test_time_step_sizes(step_size or self.config.inner_lr, steps, ratio))

    def batched_env(self, num_copies: int) -> BatchedTaskEnv:
        """The batched env this policy acts in (task vectors appended for an oracle).

        Refuses (:class:`~metarl.memory.MemoryBudgetError`) a number of copies whose
        episodes cannot fit in memory, before allocating them.
        """
        horizon = episode_horizon(self.config.env)
        needed = memory.batch_bytes(
            num_copies * horizon,
            int(np.prod(self.env.observation_space.shape)),
            int(np.prod(self.env.action_space.shape)),
            self.config.hidden_sizes,
            num_copies,
            memory.env_copy_bytes(self.env),
        )
        memory.check_fits(
            needed,
            f"evaluating {num_copies} episodes of {horizon} steps at once",
            "lower --num-tasks or --episodes",
        )
        batched = self.env.batched(num_copies)
        return OracleBatchedEnv(batched, self.env) if self.oracle else batched


def checkpoint_path(run_dir: str | Path, checkpoint: str | int = "latest") -> Path:
    """The file ``checkpoint`` names in a run folder: ``"latest"`` / ``"best"`` ->
    ``checkpoints/{latest,best}.pt``; an iteration number ``N`` -> that iteration's
    ``checkpoints/snapshot_N.pt`` or ``iter_N.pt``; anything else is itself a path.

    A ``run_dir`` that is itself a ``.pt`` file is returned as it is. The file may not exist:
    :func:`resolve_checkpoint` says why.
    """
    if Path(run_dir).suffix == ".pt":
        return Path(run_dir)
    folder, checkpoint = Path(run_dir) / "checkpoints", str(checkpoint)
    if checkpoint in ("latest", "best"):
        return folder / f"{checkpoint}.pt"
    if checkpoint.isdigit():
        names = (f"snapshot_{int(checkpoint):06d}.pt", f"iter_{int(checkpoint):06d}.pt")
        return next((folder / n for n in names if (folder / n).is_file()), folder / names[0])
    return Path(checkpoint)


def kept_iterations(run_dir: str | Path) -> list[int]:
    """Iterations a run folder keeps a numbered checkpoint of (snapshots and ``iter_*``)."""
    found = (_NUMBERED.fullmatch(p.name) for p in (Path(run_dir) / "checkpoints").glob("*.pt"))
    return sorted({int(m.group(1)) for m in found if m})


def resolve_checkpoint(path: str | Path, checkpoint: str | int = "latest") -> Path:
    """The checkpoint file of a run folder (see :func:`checkpoint_path`) or a ``.pt`` file,
    raising :class:`CheckpointError` that says what is missing and what there is."""
    path, checkpoint = Path(path), str(checkpoint)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (give a run folder or a .pt checkpoint)")
    if not path.is_dir():
        return path
    file = checkpoint_path(path, checkpoint)
    if file.is_file():
        return file
    if checkpoint.isdigit():
        kept = kept_iterations(path)
        raise CheckpointError(
            f"{path} holds no checkpoint of iteration {int(checkpoint)}; it keeps "
            + (f"iterations {', '.join(map(str, kept))}" if kept else "no numbered checkpoint")
        )
    if checkpoint not in ("latest", "best"):
        raise CheckpointError(
            f"checkpoint {checkpoint!r} is not 'latest', 'best', an iteration number or an "
            "existing .pt file"
        )
    raise CheckpointError(
        f"{path} holds no checkpoint {file.name!r} (expected {file}); is it a run "
        "folder written by scripts/train.py or scripts/baselines.py?"
    )


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load a checkpoint written by the trainer or by :func:`metarl.baselines.train_baseline`.

    Raises :class:`CheckpointError` (or ``ValueError`` for a bad config) naming the file.
    """
    path = Path(path)
    return policy_from_payload(load_checkpoint(path), path)


def policy_from_payload(payload: Mapping[str, Any], path: Path) -> LoadedPolicy:
    """A checkpoint's content as an evaluable policy (``path``: where it is, or will be)."""
    from metarl.trainer import head_names

    try:
        config = config_from_dict(payload["config"])
        params, learned = split_meta_params(payload["params"])
    except KeyError as error:
        raise CheckpointError(f"checkpoint {path} has no {error.args[0]!r} entry") from error
    info = baseline_info(payload)
    kind = info["kind"] if info else "maml"
    oracle = bool(info and info.get("oracle"))
    env = make_task_env(config.env)
    obs_dim = int(np.prod(env.observation_space.shape))
    if oracle:
        obs_dim += int(env.task_vector(env.task).shape[0])
    act_dim = int(np.prod(env.action_space.shape))
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, config.hidden_sizes, config.activation, config.init_std, config.init
    )
    expected = {name: tuple(value.shape) for name, value in policy.named_parameters()}
    if {name: tuple(value.shape) for name, value in params.items()} != expected:
        raise CheckpointError(f"checkpoint {path} does not fit the policy its config describes")
    return LoadedPolicy(
        path=path,
        config=config,
        env=env,
        policy=policy,
        params={name: value.float() for name, value in params.items()},
        iteration=int(payload.get("iteration", 0)),
        env_steps=int(payload.get("env_steps", 0)),
        kind=kind,
        oracle=oracle,
        learned_step_sizes=(
            None if learned is None else {name: value.float() for name, value in learned.items()}
        ),
        adapted_names=head_names(policy) if config.anil else None,
        adapted=adapted_info(payload),
    )


def adapted_info(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``adapted`` entry of a checkpoint saved by an adapted :class:`metarl.MetaPolicy`."""
    info = payload.get("adapted")
    if info is None:
        return None
    return json.loads(info) if isinstance(info, str) else dict(info)


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t (table to 30 dof, Cornish-Fisher expansion beyond)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964
    return (
        z
        + (z**3 + z) / (4 * dof)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * dof**3)
    )


def mean_and_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval of the mean (t interval)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, 0.0
    half = t_quantile_975(values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return mean, float(half)


@dataclass(frozen=True)
class CurveSummary:
    """One method's adaptation curve on the held-out tasks."""

    label: str
    kind: str
    path: str
    step_size: float | str | None  # first inner step size ("learned": Meta-SGD; None: not adapted)
    returns: list[list[float]]  # [steps + 1][tasks]
    mean: list[float]
    ci95: list[float]  # half-widths
    iteration: int = 0  # of the checkpoint (meta-iterations; 0 for a baseline)
    env_steps: int = 0  # environment steps that trained it (meta-training or PPO)
    success: list[list[float]] | None = None  # [steps + 1][tasks], envs with info["success"]
    seeds: tuple[CurveSummary, ...] = ()  # the training seeds pooled here (see pool_seeds)
    selection: dict[str, Any] | None = None  # how the snapshot was chosen (Selection.to_dict)
    step_sizes: list[float] | None = None  # the inner steps' sizes (None: learned or oracle)

    @property
    def success_rate(self) -> list[float] | None:
        """Mean success rate over tasks after each step (Meta-World's measure)."""
        return None if self.success is None else [float(np.mean(row)) for row in self.success]

    @property
    def oracle(self) -> bool:
        return self.kind == "oracle"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "checkpoint": self.path,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "inner_lr": self.step_size,
            "step_sizes": self.step_sizes,
            "mean_return": {str(k): m for k, m in enumerate(self.mean)},
            "ci95": {str(k): c for k, c in enumerate(self.ci95)},
            "returns": {str(k): r for k, r in enumerate(self.returns)},
            **(
                {}
                if self.success is None
                else {
                    "success_rate": {str(k): m for k, m in enumerate(self.success_rate or [])},
                    "success": {str(k): r for k, r in enumerate(self.success)},
                }
            ),
            **({"selection": self.selection} if self.selection is not None else {}),
            **({"seeds": [seed.to_dict() for seed in self.seeds]} if self.seeds else {}),
        }


def evaluate_policy_curve(
    loaded: LoadedPolicy,
    tasks: Sequence[Mapping[str, Any]],
    episodes_per_task: int,
    adapt_steps: int,
    seed: int,
    step_size: float | None = None,
    label: str | None = None,
    later_step_ratio: float | None = None,
) -> CurveSummary:
    """Adaptation curve of a loaded policy; an oracle is evaluated at 0 steps only.
    ``later_step_ratio`` replaces the env's test schedule's ratio of later steps to the first."""
    steps = 0 if loaded.oracle else adapt_steps
    schedule = loaded.schedule(steps, step_size, later_step_ratio)
    learned = loaded.learned_step_sizes is not None and step_size is None
    alpha: float | str = "learned" if learned else (step_size or loaded.config.inner_lr)
    curve, success = adaptation_outcomes(
        loaded.policy,
        loaded.params,
        loaded.batched_env(len(tasks) * episodes_per_task),
        tasks,
        episodes_per_task,
        steps,
        0.0,
        loaded.config.gamma,
        loaded.config.gae_lambda,
        seed=seed,
        step_sizes=schedule,
        estimator=loaded.config.inner_estimator,
        adapted_names=loaded.adapted_names,
        normalize_advantages=loaded.config.normalize_advantages,
        batch_per_task=loaded.config.batch_per_task,  # as the run was trained
    )
    stats = [mean_and_ci95(row) for row in curve.double().numpy()]
    return CurveSummary(
        label=label or loaded.path.parent.parent.name,
        kind=loaded.kind,
        path=str(loaded.path),
        step_size=None if loaded.oracle else alpha,
        returns=curve.tolist(),
        mean=[m for m, _ in stats],
        ci95=[c for _, c in stats],
        iteration=loaded.iteration,
        env_steps=loaded.env_steps,
        success=None if success is None else success.tolist(),
        step_sizes=[float(x) for x in schedule] if not learned else None,
    )


def pool_seeds(members: Sequence[CurveSummary]) -> CurveSummary:
    """Several training seeds of one method, evaluated on the same tasks, as one curve.

    The mean is the mean over seeds of each seed's mean over tasks, and the 95% interval is
    Student's t over those seed means (``n - 1`` degrees of freedom): how much the result
    moves with the training seed, which a CI over one run's tasks does not show. ``returns``
    and ``success`` hold each task's mean over seeds; ``seeds`` keeps every member.
    """
    if len(members) < 2:
        raise ValueError("pooling needs at least two seeds")
    first = members[0]
    for member in members[1:]:
        if member.kind != first.kind or len(member.mean) != len(first.mean):
            raise ValueError(
                f"cannot pool {first.label!r}: its entries differ in kind or number of steps"
            )
        if np.shape(member.returns) != np.shape(first.returns):
            raise ValueError(f"cannot pool {first.label!r}: its entries saw different tasks")
    stats = [mean_and_ci95(row) for row in np.array([m.mean for m in members]).T]
    first_step_sizes = {member.step_size for member in members}
    success = None
    if all(member.success is not None for member in members):
        success = np.mean([member.success for member in members], axis=0).tolist()
    return CurveSummary(
        label=first.label,
        kind=first.kind,
        path="; ".join(member.path for member in members),
        step_size=first.step_size if len(first_step_sizes) == 1 else "per seed",
        returns=np.mean([member.returns for member in members], axis=0).tolist(),
        mean=[m for m, _ in stats],
        ci95=[c for _, c in stats],
        iteration=max(member.iteration for member in members),
        env_steps=max(member.env_steps for member in members),
        success=success,
        seeds=tuple(members),
        step_sizes=first.step_sizes
        if all(m.step_sizes == first.step_sizes for m in members)
        else None,
    )


def pool_by_label(summaries: Sequence[CurveSummary]) -> list[CurveSummary]:
    """Summaries sharing a label pooled with :func:`pool_seeds`, in first-seen order."""
    groups: dict[str, list[CurveSummary]] = {}
    for summary in summaries:
        groups.setdefault(summary.label, []).append(summary)
    return [group[0] if len(group) == 1 else pool_seeds(group) for group in groups.values()]


def adaptation_ratios(summary: CurveSummary, oracle_return: float) -> list[float]:
    """``(R_k - R_0) / (R_oracle - R_0)`` for each step ``k`` (the paper's adaptation ratio)."""
    gap = oracle_return - summary.mean[0]
    return [(m - summary.mean[0]) / gap if gap != 0 else math.nan for m in summary.mean]


def comparison_table(summaries: Sequence[CurveSummary], adapt_steps: int) -> str:
    """The paper's table: mean return (± 95% CI half-width) after 0..K steps, one row a method."""
    label_width = max([6, *(len(s.label) for s in summaries)])
    header = f"{'method':<{label_width}} | {'alpha':>5} | " + " | ".join(
        f"{f'{k} steps':>16}" for k in range(adapt_steps + 1)
    )
    lines = [header, "-" * len(header)]
    for summary in summaries:
        alpha = summary.step_size
        alpha = "-" if alpha is None else alpha if isinstance(alpha, str) else f"{alpha:g}"
        cells = []
        for k in range(adapt_steps + 1):
            if k < len(summary.mean):
                cells.append(f"{summary.mean[k]:8.2f} ± {summary.ci95[k]:5.2f}")
            else:
                cells.append("")
        row = f"{summary.label:<{label_width}} | {alpha:>5} | " + " | ".join(
            f"{c:>16}" for c in cells
        )
        lines.append(row.rstrip())
    oracle = next((s for s in summaries if s.oracle), None)
    adapted = [s for s in summaries if not s.oracle and len(s.mean) > 1]
    if oracle is not None and adapted:
        lines.append("")
        lines.append("adaptation ratio (R_k - R_0) / (R_oracle - R_0):")
        for summary in adapted:
            ratios = adaptation_ratios(summary, oracle.mean[0])
            cells = " | ".join(f"{r:16.2f}" for r in ratios)
            lines.append(f"{summary.label:<{label_width}} | {'':>5} | {cells}")
    return "\n".join(lines)
