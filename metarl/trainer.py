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
from metarl.config import TrainConfig, config_from_dict, load_config
from metarl.episodes import Episodes
from metarl.guards import RejectedBatch, check_episodes, update_problem
from metarl.policies import GaussianMLPPolicy, Params, policy_params
from metarl.run_lock import LOCK_NAME, RunLock
from metarl.runtime import configure_process
from metarl.sampler import rollouts
from metarl.stop_request import StopRequest, TrainingInterrupted


def make_policy(config: TrainConfig, env: TaskEnv) -> GaussianMLPPolicy:
    """The policy architecture a config describes, for ``env``'s spaces."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    return GaussianMLPPolicy(
        obs_dim, act_dim, config.hidden_sizes, config.activation, config.init_std, config.init
    )


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


def make_algorithm(config: TrainConfig, policy: GaussianMLPPolicy) -> OuterAlgorithm:
    """The outer algorithm a config names, around the configured inner loop."""
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
        )
    if config.algo == "reptile":
        return Reptile(policy, inner, step_size=config.reptile_step_size)
    return MamlTrpo(
        policy,
        inner,
        max_kl=config.max_kl,
        cg_iterations=config.cg_iterations,
        cg_damping=config.cg_damping,
        line_search_steps=config.line_search_steps,
        line_search_ratio=config.line_search_ratio,
        fisher_subsample=config.fisher_subsample,
    )


def sample_meta_batch(
    policy: GaussianMLPPolicy,
    params: Params,
    inner: InnerLoop,
    env: BatchedTaskEnv,
    tasks: list[dict[str, Any]],
    config: TrainConfig,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> MetaBatch:
    """Pre-update rollouts for each inner step, then post-update rollouts with adapted params.

    Raises :class:`~metarl.guards.RejectedBatch` as soon as a batch is unfit to learn from.
    """

    def collect(current: Params, per_task: bool, name: str) -> Episodes:
        env_seed = int(rng.integers(2**31 - 1))
        episodes = rollouts(
            policy, current, env, tasks, config.episodes_per_task, generator, env_seed, per_task
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
    rng: np.random.Generator
    generator: torch.Generator
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
            "torch_rng": self.generator.get_state(),
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
        generator = torch.Generator()
        generator.set_state(payload["torch_rng"])
        return cls(
            params={name: value.clone() for name, value in params.items()},
            iteration=int(payload["iteration"]),
            env_steps=int(payload["env_steps"]),
            best_return=float(payload["best_return"]),
            rng=rng,
            generator=generator,
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


class Trainer:
    """Meta-trains a policy initialisation as a config says, in ``run_dir``."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        config_path = self.run_dir / "config.json"
        if resume:
            if not config_path.is_file():
                raise FileNotFoundError(f"cannot resume: {config_path} does not exist")
            saved = load_config(str(config_path))
            if config.iterations < saved.iterations:
                config = saved
            else:  # resuming may extend a run; nothing else may change
                config = config_from_dict({**saved.to_dict(), "iterations": config.iterations})
        else:
            refuse_occupied(self.run_dir)
        self.config = config
        configure_process(config.threads)
        self.env = make_task_env(config.env)
        num_copies = config.meta_batch_size * config.episodes_per_task
        check_training_memory(config, self.env, num_copies)  # before anything is written
        self.fresh = not resume  # a fresh run's folder holds only what it wrote
        self.created_dir = not self.run_dir.exists()
        self.lock = RunLock(self.run_dir)
        try:
            self._build(config, resume, num_copies)
        except BaseException:
            self.discard_if_never_saved()
            self.lock.release()
            raise

    def _build(self, config: TrainConfig, resume: bool, num_copies: int) -> None:
        """Everything after the run folder is locked: env copies, policy, state, config.json."""
        self.batched_env = self.env.batched(num_copies)
        torch.manual_seed(config.seed)
        self.policy = make_policy(config, self.env)
        self.algorithm = make_algorithm(config, self.policy)
        initial = initial_meta_params(config, self.policy)
        latest = self.checkpoint_dir / "latest.pt"
        if resume and latest.is_file():
            self.state = load_run_checkpoint(latest, config, initial)
            self.algorithm.load_state_dict(self.state.algorithm_state, self.state.params)
        else:
            self.state = TrainState(
                params=initial,
                iteration=0,
                env_steps=0,
                best_return=-math.inf,
                rng=np.random.default_rng(config.seed),
                generator=torch.Generator().manual_seed(config.seed),
            )
        self.last_problem: str | None = None
        text = json.dumps(config.to_dict(), indent=2)
        atomic_write(self.run_dir / "config.json", lambda file: file.write(text.encode()))

    def iterate(self) -> dict[str, float]:
        """One meta-iteration; updates the state and returns its metrics."""
        config, state = self.config, self.state
        start = time.perf_counter()
        tasks = self.env.sample_tasks(config.meta_batch_size, state.rng)
        metrics: dict[str, float] = {}
        try:
            batch = sample_meta_batch(
                self.policy,
                state.params,
                self.algorithm.inner,
                self.batched_env,
                tasks,
                config,
                state.generator,
                state.rng,
            )
            problem = None
        except RejectedBatch as error:
            batch, problem = None, str(error)
            state.env_steps += error.env_steps
        sampled = time.perf_counter()
        if batch is not None:
            new_params, metrics = self.algorithm.step(state.params, batch)
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
        steps = sum(episodes.num_steps for episodes in [*batch.pre, batch.post])
        state.env_steps += steps
        pre_return = batch.pre[0].episode_returns().mean().item()
        post_return = batch.post.episode_returns().mean().item()
        metrics.update(
            {
                "charts/return_pre_adaptation": pre_return,
                "charts/return_post_adaptation": post_return,
                "charts/adaptation_gain": post_return - pre_return,
                # episodes that end early (2D navigation: on the goal) show up here
                "charts/episode_length_pre_adaptation": batch.pre[0].mask.sum(0).mean().item(),
                "charts/episode_length_post_adaptation": batch.post.mask.sum(0).mean().item(),
                "charts/iteration": float(state.iteration),
                "charts/SPS": steps / (finished - start),
                "time/sampling_s": sampled - start,
                "time/outer_step_s": finished - sampled,
            }
        )
        for stage, episodes in (("pre", batch.pre[0]), ("post", batch.post)):
            rate = episodes.success_rate()  # envs that report info["success"] (Meta-World)
            if rate is not None:
                metrics[f"charts/success_rate_{stage}_adaptation"] = rate.mean().item()
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

    def iterate_and_log(self, writer: SummaryWriter, bar: Any) -> dict[str, float]:
        """One iteration with its logging, best-so-far and checkpoints; returns its metrics."""
        config, state = self.config, self.state
        sampled_with = state.params
        metrics = self.iterate()
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, state.env_steps)
        if state.consecutive_failures >= config.max_consecutive_failures:
            latest = self.checkpoint_dir / "latest.pt"
            saved = (
                f"The last good checkpoint is {latest}"
                if latest.is_file()
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
            self.save_best(sampled_with, state.iteration - 1)
        bar.update(1)
        bar.set_postfix(
            pre=f"{metrics.get('charts/return_pre_adaptation', nan):.1f}",
            post=f"{post:.1f}",
            kl=f"{metrics.get('losses/kl', nan):.4f}",
        )
        done = state.iteration == config.iterations
        if done or state.iteration % config.checkpoint_every == 0:
            writer.flush()
            self.save()
        if state.iteration % config.snapshot_every == 0:
            self.save_snapshot()
        return metrics

    def discard_if_never_saved(self) -> None:
        """After a failure before the first checkpoint, remove what this run wrote."""
        if not self.fresh or (self.checkpoint_dir / "latest.pt").is_file():
            return
        if self.created_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        for path in self.run_dir.iterdir():  # the folder was the user's, empty
            if path.name != LOCK_NAME:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def run(self, progress: bool = True) -> dict[str, float]:
        """Train until ``config.iterations``; returns the last iteration's metrics."""
        from tqdm import tqdm

        config, state = self.config, self.state
        # Events past the checkpoint were written by the killed process: drop them.
        purge_step = state.env_steps + 1 if state.iteration else None
        writer = SummaryWriter(str(self.run_dir), purge_step=purge_step)
        if state.iteration == 0:
            writer.add_text("hyperparameters", hyperparameter_table(config))
        metrics: dict[str, float] = {}
        bar = tqdm(
            total=config.iterations, initial=state.iteration, disable=not progress, unit="it"
        )
        completed = False
        try:
            with StopRequest() as stop:
                while state.iteration < config.iterations and not stop.requested:
                    metrics = self.iterate_and_log(writer, bar)
                if stop.requested:
                    writer.flush()
                    self.save()
                    raise TrainingInterrupted(
                        f"stopped by {stop.signal_name} at iteration {state.iteration}; "
                        f"checkpoint saved to {self.checkpoint_dir / 'latest.pt'}. Continue "
                        f"with: python scripts/train.py --run-dir {self.run_dir} --resume",
                        stop.signal_name or "signal",
                        128 + stop.signal_number,
                        state.iteration,
                    )
            completed = True
        except KeyboardInterrupt:
            if (self.checkpoint_dir / "latest.pt").is_file():
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
            self.lock.release()
        return metrics
