"""The meta-training loop: sample, adapt, sample again, outer step, log, checkpoint.

A run lives in one folder: ``config.json``, TensorBoard events (x-axis: environment
steps), and ``checkpoints/`` (``latest.pt``, ``best.pt`` and the last few numbered ones).
A killed run continues from ``latest.pt`` with ``resume=True``, bit-identically.

One process at a time may use a run folder (:mod:`metarl.run_lock`). SIGINT and SIGTERM
stop the loop after the current iteration with a checkpoint (:mod:`metarl.stop_request`).
A run that fails before its first checkpoint removes what it wrote, so the same command
can simply be run again.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from envs import BatchedTaskEnv, TaskEnv, episode_horizon, make_task_env
from metarl import memory
from metarl.adaptation import learned_step_sizes, split_meta_params
from metarl.advantages import add_advantages
from metarl.algorithms.base import InnerLoop, MetaBatch, OuterAlgorithm
from metarl.algorithms.maml_trpo import MamlTrpo
from metarl.algorithms.promp import ProMP
from metarl.algorithms.reptile import Reptile
from metarl.checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint
from metarl.config import TrainConfig, config_from_dict, load_config, resumed_config
from metarl.distributed import RankFailure, World
from metarl.episodes import Episodes
from metarl.guards import RejectedBatch, check_adapted, check_episodes, update_problem
from metarl.policies import GaussianMLPPolicy, Params, policy_params
from metarl.run_lock import LOCK_NAME, RunLock
from metarl.runtime import check_device, configure_process
from metarl.sampler import rollouts, rollouts_of_min_steps
from metarl.stop_request import StopRequest, TrainingInterrupted


def make_policy(config: TrainConfig, env: TaskEnv) -> GaussianMLPPolicy:
    """The policy architecture a config describes, for ``env``'s spaces."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, config.hidden_sizes, config.activation, config.init_std, config.init
    )
    return policy.to(getattr(torch, config.precision))


def head_names(policy: GaussianMLPPolicy) -> list[str]:
    """Names of the policy's last layer (what ANIL adapts)."""
    last = len(policy.mean) - 1
    return [f"mean.{last}.weight", f"mean.{last}.bias"]


def initial_meta_params(config: TrainConfig, policy: GaussianMLPPolicy) -> Params:
    """The policy's initial parameters, plus learned step sizes for Meta-SGD."""
    params = policy_params(policy)
    if config.meta_sgd:
        names = head_names(policy) if config.anil else None
        params.update(learned_step_sizes(params, config.inner_lr, names))
    return params


def make_algorithm(
    config: TrainConfig, policy: GaussianMLPPolicy, world: World | None = None
) -> OuterAlgorithm:
    """The outer algorithm a config names, around the configured inner loop; its means over
    tasks span ``world``'s ranks (default: this process alone)."""
    world = World() if world is None else world
    inner = InnerLoop(
        step_size=config.inner_lr,
        first_order=config.first_order or config.algo == "reptile",
        estimator=config.inner_estimator,
        adapted_names=head_names(policy) if config.anil else None,
    )
    if config.algo == "promp":
        return ProMP(
            policy,
            inner,
            learning_rate=config.promp_learning_rate,
            outer_steps=config.promp_outer_steps,
            clip=config.promp_clip,
            kl_coeff=config.promp_kl_coeff,
            adaptive_kl=config.promp_adaptive_kl,
            kl_target=config.promp_kl_target,
            world=world,
        )
    if config.algo == "reptile":
        return Reptile(policy, inner, step_size=config.reptile_step_size, world=world)
    return MamlTrpo(
        policy,
        inner,
        max_kl=config.max_kl,
        cg_iterations=config.cg_iterations,
        cg_damping=config.cg_damping,
        line_search_steps=config.line_search_steps,
        line_search_ratio=config.line_search_ratio,
        fisher_subsample=config.fisher_subsample,
        world=world,
    )


def task_streams(
    rng: np.random.Generator, num_tasks: int, episodes_per_task: int, block: slice
) -> tuple[list[torch.Generator], int]:
    """Random streams of one batch for the tasks in ``block`` of ``num_tasks``.

    Returns an action-noise generator per task and the reset seed of the block's first env
    copy. Every rank draws the same numbers from ``rng`` (for all tasks) and keeps its
    block's, so a task's episodes do not depend on how the meta-batch is split.
    """
    seeds = rng.integers(2**31 - 1, size=num_tasks + 1)
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds[1:][block]]
    return generators, int(seeds[0]) + block.start * episodes_per_task


def sample_meta_batch(
    policy: GaussianMLPPolicy,
    params: Params,
    inner: InnerLoop,
    env: BatchedTaskEnv,
    tasks: list[dict[str, Any]],
    config: TrainConfig,
    rng: np.random.Generator,
    block: slice | None = None,
) -> MetaBatch:
    """Pre-update rollouts for each inner step, then post-update rollouts with adapted params.

    ``tasks`` is the whole meta-batch; only those in ``block`` (default: all) are sampled,
    with ``env`` holding their copies. Raises :class:`~metarl.guards.RejectedBatch` as soon
    as a batch is unfit to learn from.
    """
    block = slice(0, len(tasks)) if block is None else block
    own_tasks = tasks[block]
    # drawn up front: every rank consumes rng alike, even if its batch is rejected early
    streams = [
        task_streams(rng, len(tasks), config.episodes_per_task, block)
        for _ in range(config.inner_steps + 1)
    ]

    def collect(current: Params, per_task: bool, name: str) -> Episodes:
        generators, env_seed = streams[len(pre)]
        sample = rollouts_of_min_steps if config.batch_per_task == "steps" else rollouts
        episodes = sample(
            policy,
            current,
            env,
            own_tasks,
            config.episodes_per_task,
            generators,
            env_seed,
            per_task,
        )
        check_episodes(episodes, name)
        episodes = add_advantages(
            episodes, config.gamma, config.gae_lambda, config.normalize_advantages
        )
        return check_episodes(episodes, name)

    pre: list[Episodes] = []
    try:
        policy_params_only = split_meta_params(params)[0]
        pre.append(collect(policy_params_only, per_task=False, name="pre-update batch"))
        for step in range(config.inner_steps):
            adapted = {name: value.detach() for name, value in inner(policy, params, pre).items()}
            check_adapted(adapted, step + 1)
            last = step == config.inner_steps - 1
            name = "post-update batch" if last else f"batch after inner step {step + 1}"
            pre.append(collect(adapted, per_task=True, name=name))
    except RejectedBatch as error:
        error.env_steps += sum(episodes.num_steps for episodes in pre)
        raise
    return MetaBatch(pre=pre[:-1], post=pre[-1])


def hyperparameter_table(config: TrainConfig) -> str:
    rows = "\n".join(f"|{key}|{value}|" for key, value in config.to_dict().items())
    return "|param|value|\n|-|-|\n" + rows


@dataclass
class TrainState:
    """Everything that changes during a run and must survive a restart."""

    params: Params
    iteration: int  # completed meta-iterations
    env_steps: int
    best_return: float
    rng: np.random.Generator  # every draw of the run: tasks, seeds of per-task streams
    consecutive_failures: int = 0
    algorithm_state: dict[str, Any] = field(default_factory=dict)

    def to_payload(self, config: TrainConfig) -> dict[str, Any]:
        return {
            "config": config.to_dict(),
            "params": self.params,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_return": self.best_return,
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "consecutive_failures": self.consecutive_failures,
            "algorithm_state": self.algorithm_state,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], reference: Params) -> TrainState:
        params = payload["params"]
        expected = {name: tuple(value.shape) for name, value in reference.items()}
        found = {name: tuple(value.shape) for name, value in params.items()}
        if expected != found:
            raise CheckpointError(
                f"checkpoint parameters {found} do not fit the configured policy {expected}"
            )
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(payload["numpy_rng"])
        return cls(
            params={name: value.clone() for name, value in params.items()},
            iteration=int(payload["iteration"]),
            env_steps=int(payload["env_steps"]),
            best_return=float(payload["best_return"]),
            rng=rng,
            consecutive_failures=int(payload.get("consecutive_failures", 0)),
            algorithm_state=payload.get("algorithm_state", {}),
        )


def load_run_checkpoint(path: str | Path, config: TrainConfig, reference: Params) -> TrainState:
    """Load a checkpoint and check it belongs to a run of ``config``'s env and architecture."""
    payload = load_checkpoint(path)
    saved = payload.get("config", {})
    for key in ("env", "algo", "hidden_sizes", "activation", "meta_sgd"):
        if saved.get(key) != config.to_dict()[key]:
            raise CheckpointError(
                f"checkpoint {path} was made with {key}={saved.get(key)!r}, "
                f"but this run has {key}={config.to_dict()[key]!r}"
            )
    return TrainState.from_payload(payload, reference)


def check_training_memory(config: TrainConfig, env: TaskEnv, num_copies: int) -> None:
    """Refuse a config whose meta-iteration cannot fit in memory, before allocating it."""
    horizon = episode_horizon(config.env)
    steps = num_copies * horizon * (config.inner_steps + 1)
    needed = memory.batch_bytes(
        steps,
        int(np.prod(env.observation_space.shape)),
        int(np.prod(env.action_space.shape)),
        config.hidden_sizes,
        num_copies,
        memory.env_copy_bytes(env),
    )
    memory.check_fits(
        needed,
        f"a meta-iteration of {config.meta_batch_size} tasks x {config.episodes_per_task} "
        f"episodes x {horizon} steps ({config.inner_steps + 1} batches)",
        "lower --meta-batch-size, --episodes-per-task or --hidden-sizes",
    )


def refuse_occupied(run_dir: Path) -> None:
    """Refuse, with the reason, a folder a new run cannot start in (``resume`` aside)."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise FileExistsError(f"run dir {run_dir} is a file, not a folder")
    if not any(path.name != LOCK_NAME for path in run_dir.iterdir()):
        return
    if (run_dir / LOCK_NAME).exists():
        RunLock(run_dir).release()  # raises RunLocked while another run holds it
    if (run_dir / "config.json").is_file() and not (run_dir / "checkpoints/latest.pt").is_file():
        raise FileExistsError(
            f"run dir {run_dir} holds a run that never reached its first checkpoint; pass "
            "--resume to start it again, or choose another --run-dir"
        )
    raise FileExistsError(
        f"run dir {run_dir} already holds files (another run?); "
        "pass --resume to continue it or choose another --run-dir"
    )


class TrainingDiverged(RuntimeError):
    """Raised when too many consecutive updates had to be rejected."""


def resolved_config(
    config: TrainConfig, run_dir: Path, resume: bool, given: Collection[str] | None = None
) -> TrainConfig:
    """The config a run in ``run_dir`` trains with: ``config``, or the saved one to resume.

    A resumed run takes from ``config`` only the keys it may change (``iterations``,
    ``threads``, ...: :func:`~metarl.config.resumed_config`) among ``given`` (the keys the
    caller set, e.g. the command line's flags; default: all), and refuses any other given
    key that differs. A fresh run refuses an occupied folder.
    """
    config_path = run_dir / "config.json"
    if not resume:
        refuse_occupied(run_dir)
        return config
    if not config_path.is_file():
        raise FileNotFoundError(f"cannot resume: {config_path} does not exist")
    try:
        return resumed_config(load_config(str(config_path)), config, given)
    except ValueError as error:
        raise ValueError(f"{run_dir}: {error}") from None


class _NoWriter:
    """What ranks other than 0 log to: nothing."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None: ...

    def add_text(self, *args: Any, **kwargs: Any) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Trainer:
    """Meta-trains a policy initialisation as a config says, in ``run_dir``.

    Under ``torchrun`` (``world``: :meth:`World.join <metarl.distributed.World.join>` by
    default) each rank samples its block of the meta-batch's tasks and the outer step is
    all-reduced (:mod:`metarl.distributed`); rank 0 alone reads and writes the run folder
    and hands the config and state to the others.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: bool = False,
        world: World | None = None,
        given: Collection[str] | None = None,
    ) -> None:
        self.world = World.join() if world is None else world
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.fresh = not resume  # a fresh run's folder holds only what it wrote
        self.created_dir = not self.run_dir.exists()
        self.lock: RunLock | None = None
        config = self._agreed_config(config, resume, given)
        self.config = config
        self.block = self.world.block(config.meta_batch_size)
        configure_process(config.threads)
        self.env = make_task_env(config.env)
        num_copies = (self.block.stop - self.block.start) * config.episodes_per_task
        check_training_memory(config, self.env, num_copies)  # before anything is written
        if self.world.is_main:
            self.lock = RunLock(self.run_dir)
        try:
            self._build(config, resume, num_copies)
        except BaseException:
            self.discard_if_never_saved()
            self.release_lock()
            raise

    def _agreed_config(
        self, config: TrainConfig, resume: bool, given: Collection[str] | None
    ) -> TrainConfig:
        """Rank 0's resolved config on every rank (its error, if any, on every rank)."""
        outcome: tuple[str, Any] = ("ok", None)
        if self.world.is_main:
            try:
                outcome = ("ok", resolved_config(config, self.run_dir, resume, given).to_dict())
            except (ValueError, OSError) as error:
                self.world.broadcast(("error", str(error)))
                raise
        outcome = self.world.broadcast(outcome)
        if outcome[0] == "error":
            raise RankFailure(f"rank 0 refused the run: {outcome[1]}")
        return config_from_dict(outcome[1])

    def _build(self, config: TrainConfig, resume: bool, num_copies: int) -> None:
        """Env copies, policy, algorithm, and the state rank 0 starts or resumes from."""
        check_device(config.device)
        self.batched_env = self.env.batched(num_copies)
        torch.manual_seed(config.seed)
        self.policy = make_policy(config, self.env)
        self.algorithm = make_algorithm(config, self.policy, self.world)
        initial = initial_meta_params(config, self.policy)
        payload = None
        if self.world.is_main:
            latest = self.checkpoint_dir / "latest.pt"
            if resume and latest.is_file():
                payload = load_run_checkpoint(latest, config, initial).to_payload(config)
            else:
                payload = TrainState(
                    params=initial,
                    iteration=0,
                    env_steps=0,
                    best_return=-math.inf,
                    rng=np.random.default_rng(config.seed),
                ).to_payload(config)
        self.state = TrainState.from_payload(self.world.broadcast(payload), initial)
        if self.state.iteration > config.iterations:
            raise ValueError(
                f"{self.run_dir} is already at iteration {self.state.iteration}, past the "
                f"{config.iterations} iterations asked: ask for {self.state.iteration} or more"
            )
        if self.state.algorithm_state:  # a resumed run's (a fresh run's algorithm is fresh)
            device_params = {k: v.to(config.device) for k, v in self.state.params.items()}
            self.algorithm.load_state_dict(self.state.algorithm_state, device_params)
        self.last_problem: str | None = None
        if self.world.is_main:
            text = json.dumps(config.to_dict(), indent=2)
            atomic_write(self.run_dir / "config.json", lambda file: file.write(text.encode()))

    def _sample(self, tasks: list[dict[str, Any]]) -> tuple[MetaBatch | None, str | None]:
        """This rank's part of the meta-batch, or the reason a rank rejected it (all agree)."""
        config, state = self.config, self.state
        rejected_steps = 0
        try:
            batch = sample_meta_batch(
                self.policy,
                state.params,
                self.algorithm.inner,
                self.batched_env,
                tasks,
                config,
                state.rng,
                self.block,
            )
            problem = None
        except RejectedBatch as error:
            batch, problem, rejected_steps = None, str(error), error.env_steps
        arrived = time.perf_counter()
        self.world.wait_for_all("sampling", self.state.iteration + 1)
        self.sync_s = time.perf_counter() - arrived  # waiting for slower ranks
        reports = self.world.gather((problem, rejected_steps))
        state.env_steps += sum(steps for _, steps in reports)
        problems = [(rank, text) for rank, (text, _) in enumerate(reports) if text is not None]
        if not problems:
            return batch, None
        if self.world.size == 1:
            return None, problems[0][1]
        rank, text = problems[0]
        return None, f"rank {rank}: {text}"

    def _outer_step(self, params: Params, batch: MetaBatch) -> tuple[Params, dict[str, float]]:
        """The algorithm's step on ``config.device``; the parameters come back to the CPU."""
        device = torch.device(self.config.device)
        if device.type == "cpu":
            return self.algorithm.step(params, batch)
        on_device = MetaBatch(
            [episodes.to(device) for episodes in batch.pre], batch.post.to(device)
        )
        new_params, metrics = self.algorithm.step(
            {name: value.to(device) for name, value in params.items()}, on_device
        )
        return {name: value.to("cpu") for name, value in new_params.items()}, metrics

    def iterate(self) -> dict[str, float]:
        """One meta-iteration; updates the state and returns its metrics."""
        config, state, world = self.config, self.state, self.world
        start = time.perf_counter()
        traffic = dict(world.traffic)
        tasks = self.env.sample_tasks(config.meta_batch_size, state.rng)
        batch, problem = self._sample(tasks)
        sampled = time.perf_counter()
        metrics: dict[str, float] = {}
        if batch is not None:
            new_params, metrics = self._outer_step(state.params, batch)
            problem = update_problem(metrics, new_params)
        finished = time.perf_counter()
        if problem is None:
            state.params = new_params
            state.consecutive_failures = 0
        else:
            state.consecutive_failures += 1
            self.last_problem = problem
            warnings.warn(
                f"iteration {state.iteration + 1}: update rejected: {problem}", stacklevel=2
            )
        metrics["charts/rejected_update"] = float(problem is not None)
        state.iteration += 1
        if batch is None:
            metrics["charts/iteration"] = float(state.iteration)
            return metrics
        local_steps = sum(episodes.num_steps for episodes in [*batch.pre, batch.post])
        steps = int(world.sum(torch.tensor(float(local_steps), dtype=torch.float64)).item())
        state.env_steps += steps
        metrics.update(batch_statistics(batch, world))
        if "log_std" in state.params:  # the initialisation's exploration, in policy units
            metrics["charts/action_std"] = torch.exp(state.params["log_std"]).mean().item()
        metrics.update(
            {
                "charts/iteration": float(state.iteration),
                "charts/SPS": steps / (finished - start),
                "time/sampling_s": sampled - start,
                "time/outer_step_s": finished - sampled,
            }
        )
        if world.size > 1:  # what a rank sent in this iteration, and how long it waited
            metrics["time/sync_wait_s"] = self.sync_s
            for name in ("collectives", "bytes"):
                metrics[f"distributed/{name}"] = float(world.traffic[name] - traffic[name])
        return metrics

    def payload(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly from here."""
        self.state.algorithm_state = self.algorithm.state_dict()
        return self.state.to_payload(self.config)

    def save_best(self, params: Params, iteration: int) -> None:
        """Save the parameters that produced the best post-adaptation return so far."""
        payload = {
            **self.payload(),
            "params": params,
            "iteration": iteration,
        }
        save_checkpoint(self.checkpoint_dir / "best.pt", payload)

    def save(self) -> None:
        payload = self.payload()
        save_checkpoint(self.checkpoint_dir / "latest.pt", payload)
        numbered = self.checkpoint_dir / f"iter_{self.state.iteration:06d}.pt"
        save_checkpoint(numbered, payload)
        old = sorted(self.checkpoint_dir.glob("iter_*.pt"))[: -self.config.keep_checkpoints]
        for path in old:
            path.unlink(missing_ok=True)

    def save_snapshot(self) -> None:
        """A checkpoint kept for ever, for snapshot selection (``evaluate.py --select``)."""
        path = self.checkpoint_dir / f"snapshot_{self.state.iteration:06d}.pt"
        save_checkpoint(path, self.payload())

    def iterate_and_log(self, writer: SummaryWriter | _NoWriter, bar: Any) -> dict[str, float]:
        """One iteration with its logging, best-so-far and checkpoints; returns its metrics.

        Every rank runs this (their states agree); only rank 0 writes.
        """
        config, state, main = self.config, self.state, self.world.is_main
        sampled_with = state.params
        metrics = self.iterate()
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, state.env_steps)
        if state.consecutive_failures >= config.max_consecutive_failures:
            latest = self.checkpoint_dir / "latest.pt"
            saved = (
                f"The last good checkpoint is {latest}"
                if latest.is_file() or not main
                else "No checkpoint was reached, so the run folder is removed"
            )
            raise TrainingDiverged(
                f"stopped after {state.consecutive_failures} consecutive rejected updates; "
                f"last cause: {self.last_problem}. {saved}"
            )
        nan = float("nan")
        post = metrics.get("charts/return_post_adaptation", nan)
        if post > state.best_return:
            state.best_return = post
            if main:
                self.save_best(sampled_with, state.iteration - 1)
        bar.update(1)
        bar.set_postfix(
            pre=f"{metrics.get('charts/return_pre_adaptation', nan):.1f}",
            post=f"{post:.1f}",
            kl=f"{metrics.get('losses/kl', nan):.4f}",
        )
        done = state.iteration == config.iterations
        if main and (done or state.iteration % config.checkpoint_every == 0):
            writer.flush()
            self.save()
        if main and state.iteration % config.snapshot_every == 0:
            self.save_snapshot()
        return metrics

    def discard_if_never_saved(self) -> None:
        """After a failure before the first checkpoint, remove what this run wrote."""
        if not self.world.is_main:
            return
        if not self.fresh or (self.checkpoint_dir / "latest.pt").is_file():
            return
        if self.created_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        for path in self.run_dir.iterdir():  # the folder was the user's, empty
            if path.name != LOCK_NAME:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def run(self, progress: bool = True) -> dict[str, float]:
        """Train until ``config.iterations``; returns the last iteration's metrics."""
        from tqdm import tqdm

        config, state, world = self.config, self.state, self.world
        writer: SummaryWriter | _NoWriter = _NoWriter()
        if world.is_main:
            # Events past the checkpoint were written by the killed process: drop them.
            purge_step = state.env_steps + 1 if state.iteration else None
            writer = SummaryWriter(str(self.run_dir), purge_step=purge_step)
            if state.iteration == 0:
                writer.add_text("hyperparameters", hyperparameter_table(config))
        metrics: dict[str, float] = {}
        bar = tqdm(
            total=config.iterations,
            initial=state.iteration,
            disable=not (progress and world.is_main),
            unit="it",
        )
        completed = False
        try:
            with StopRequest() as stop:
                stopping = False  # a stop asked of any rank stops every rank, at the same point
                while state.iteration < config.iterations and not stopping:
                    metrics = self.iterate_and_log(writer, bar)
                    stopping = world.any(stop.requested)
                if stopping:
                    writer.flush()
                    if world.is_main:
                        self.save()
                    signal_name = stop.signal_name or "signal"
                    launcher = "python" if world.size == 1 else "torchrun ..."
                    raise TrainingInterrupted(
                        f"stopped by {signal_name} at iteration {state.iteration}; "
                        f"checkpoint saved to {self.checkpoint_dir / 'latest.pt'}. Continue "
                        f"with: {launcher} scripts/train.py --run-dir {self.run_dir} --resume",
                        signal_name,
                        128 + (stop.signal_number or 15),
                        state.iteration,
                    )
            completed = True
        except KeyboardInterrupt:
            if world.is_main and (self.checkpoint_dir / "latest.pt").is_file():
                print(
                    f"stopped at once; the last checkpoint in {self.checkpoint_dir} is kept: "
                    f"continue with python scripts/train.py --run-dir {self.run_dir} --resume",
                    file=sys.stderr,
                )
            raise
        finally:
            bar.close()
            writer.close()
            self.batched_env.close()  # worker processes of a generic batched env
            if not completed:
                self.discard_if_never_saved()
            self.release_lock()
        return metrics


def batch_statistics(batch: MetaBatch, world: World) -> dict[str, float]:
    """Returns, episode lengths and success rates of a meta-batch, averaged over its tasks
    (over every rank's block: one all-reduce)."""
    stages = {"pre": batch.pre[0], "post": batch.post}
    names, values = [], []
    for stage, episodes in stages.items():
        names += [f"charts/return_{stage}_adaptation", f"charts/episode_length_{stage}_adaptation"]
        # episodes that end early (2D navigation: on the goal) show up in the length
        values += [episodes.mean_returns().mean(), episodes.mean_lengths().mean()]
        names.append(f"charts/episodes_per_task_{stage}_adaptation")  # > K: made-up steps
        values.append(episodes.present.sum(1).mean())
        rate = episodes.success_rate()  # envs that report info["success"] (Meta-World)
        if rate is not None:
            names.append(f"charts/success_rate_{stage}_adaptation")
            values.append(rate.mean())
    means = world.mean(torch.stack(values).double()).tolist()
    statistics = dict(zip(names, means, strict=True))
    gain = statistics["charts/return_post_adaptation"] - statistics["charts/return_pre_adaptation"]
    return {**statistics, "charts/adaptation_gain": gain}
