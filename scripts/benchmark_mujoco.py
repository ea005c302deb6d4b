"""Throughput of batched HalfCheetahVel sampling with a policy in the loop, against its limits.

Rows of the table (env steps per second, one env step = ``frame_skip`` physics substeps):

- ``batched (<backend>) + policy``: ``HalfCheetahVelEnv.batched(copies)`` stepped
  ``steps`` times, a torch MLP policy (2x100 ReLU, Gaussian noise, ``torch.no_grad``)
  evaluated on the whole ``[copies, obs]`` batch each step; both physics backends.
- ``mujoco.rollout open loop``: the same model, copies and threads, random controls
  decided in advance: the physics alone, the limit closed-loop sampling can approach.
- ``gymnasium SyncVectorEnv`` / ``AsyncVectorEnv``: ``HalfCheetah-v5`` vectorized the
  usual way, same policy, fewer envs (``--vec-envs``).

Usage: ``python scripts/benchmark_mujoco.py [--form paper|v5] [--copies 800] [--steps 200]
[--threads 2]``. The gymnasium rows are ``HalfCheetah-v5`` in either case.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.half_cheetah import HalfCheetahVelEnv
from metarl import cli


@dataclass(frozen=True)
class Result:
    name: str
    copies: int
    steps: int
    seconds: float
    cpu_seconds: float  # this process's CPU time, all threads (not AsyncVectorEnv's workers)

    @property
    def steps_per_second(self) -> float:
        return self.copies * self.steps / self.seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--copies",
        type=cli.integer(1, 10**5),
        default=800,
        help="batched copies (tasks x episodes)",
    )
    parser.add_argument(
        "--steps", type=cli.integer(1, 10**6), default=200, help="env steps per copy"
    )
    parser.add_argument("--threads", type=cli.threads, default=2, help="physics threads")
    parser.add_argument(
        "--torch-threads", type=cli.threads, default=1, help="torch intra-op threads"
    )
    parser.add_argument(
        "--vec-envs", type=cli.integer(1, 1024), default=8, help="envs in the gymnasium vector envs"
    )
    parser.add_argument(
        "--vec-steps", type=cli.integer(1, 10**6), default=200, help="steps of the vector envs"
    )
    parser.add_argument(
        "--repeats",
        type=cli.integer(1, 100),
        default=2,
        help="rounds over all rows; each row keeps its best",
    )
    parser.add_argument(
        "--form",
        choices=["paper", "v5"],
        default="paper",
        help="the env's form",
    )
    parser.add_argument("--seed", type=cli.seed, default=0)
    return parser


class GaussianMLP(nn.Module):
    """The MAML paper's policy shape: 2 hidden layers of 100 ReLU units, std 1."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.mean = nn.Sequential(
            nn.Linear(obs_dim, 100),
            nn.ReLU(),
            nn.Linear(100, 100),
            nn.ReLU(),
            nn.Linear(100, act_dim),
        )
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        mean = self.mean(torch.from_numpy(np.asarray(obs, dtype=np.float32)))
        return (mean + self.log_std.exp() * torch.randn_like(mean)).numpy()


def time_batched(policy: GaussianMLP, args: argparse.Namespace, backend: str) -> Result:
    env = HalfCheetahVelEnv(form=args.form)
    batched = env.batched(args.copies, backend=backend, num_threads=args.threads)
    tasks_per_batch = max(1, args.copies // 20)  # 40 tasks x 20 episodes for 800 copies
    tasks = env.sample_tasks(tasks_per_batch, np.random.default_rng(args.seed))
    tasks = [tasks[i * tasks_per_batch // args.copies] for i in range(args.copies)]
    start, cpu_start = time.perf_counter(), time.process_time()
    obs = batched.reset(tasks, seed=args.seed)
    for _ in range(args.steps):
        obs, _, _, _ = batched.step(policy.act(obs))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    batched.close()
    return Result(f"batched ({backend}) + policy", args.copies, args.steps, seconds, cpu)


def time_open_loop_rollout(args: argparse.Namespace) -> Result:
    env = HalfCheetahVelEnv(form=args.form)
    model, frame_skip = env.model, env.frame_skip
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    state = np.empty((args.copies, mujoco.mj_stateSize(model, spec)))
    mujoco.mj_getState(model, data, state[0], spec)
    state[:] = state[0]
    rng = np.random.default_rng(args.seed)
    # in chunks, so that the recorded states stay small; the outputs are reused
    chunk = min(args.steps, 25)
    control = rng.uniform(-1, 1, size=(args.copies, chunk * frame_skip, model.nu))
    out = np.empty((args.copies, chunk * frame_skip, state.shape[1]))
    thread_data = [mujoco.MjData(model) for _ in range(args.threads)]
    with mujoco.rollout.Rollout(nthread=args.threads) as rollout:
        start, cpu_start = time.perf_counter(), time.process_time()
        done = 0
        while done < args.steps:
            n = min(chunk, args.steps - done)
            states, _ = rollout.rollout(
                model,
                thread_data,
                state,
                control[:, : n * frame_skip],
                state=out[:, : n * frame_skip] if n == chunk else None,
            )
            state = np.ascontiguousarray(states[:, -1])
            done += n
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Result("mujoco.rollout open loop", args.copies, args.steps, seconds, cpu)


def time_vector_env(policy: GaussianMLP, args: argparse.Namespace, asynchronous: bool) -> Result:
    def make() -> gym.Env:
        return gym.make("HalfCheetah-v5")

    cls = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    envs = cls([make for _ in range(args.vec_envs)])
    obs, _ = envs.reset(seed=args.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.vec_steps):
        obs, *_ = envs.step(policy.act(obs))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    envs.close()
    name = f"gymnasium {'Async' if asynchronous else 'Sync'}VectorEnv + policy"
    return Result(name, args.vec_envs, args.vec_steps, seconds, cpu)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(args.seed)
    probe = HalfCheetahVelEnv(form=args.form)
    policy = GaussianMLP(probe.observation_space.shape[0], probe.action_space.shape[0])

    backends = ["batch", "threads"]
    runs = [lambda backend=backend: time_batched(policy, args, backend) for backend in backends]
    reference = gym.make("HalfCheetah-v5")  # the vector envs' policy takes its observations
    vector_policy = GaussianMLP(
        reference.observation_space.shape[0], reference.action_space.shape[0]
    )
    reference.close()
    runs += [
        lambda: time_open_loop_rollout(args),
        lambda: time_vector_env(vector_policy, args, asynchronous=False),
        lambda: time_vector_env(vector_policy, args, asynchronous=True),
    ]
    # rounds interleave the methods, so that a change in machine load hits them all alike
    rounds = [[run() for run in runs] for _ in range(args.repeats)]
    rows = [min(results, key=lambda r: r.seconds) for results in zip(*rounds, strict=True)]
    batched_rows, limit_row, vector_rows = rows[: len(backends)], rows[len(backends)], rows[-2:]
    limit = limit_row.steps_per_second
    print(
        f"HalfCheetahVel ({args.form} form, dt {probe.dt:g} s, {probe.frame_skip} substeps per "
        f"env step), {args.threads} physics threads, torch threads {args.torch_threads}, "
        f"best of {args.repeats}"
    )
    print(
        f"{'method':<38} {'envs':>5} {'steps':>5} {'seconds':>8} {'cpu/wall':>8} "
        f"{'steps/s':>9} {'of open loop':>12}"
    )
    for row in rows:
        print(
            f"{row.name:<38} {row.copies:>5} {row.steps:>5} {row.seconds:>8.2f} "
            f"{row.cpu_seconds / row.seconds:>8.2f} {row.steps_per_second:>9,.0f} "
            f"{row.steps_per_second / limit:>12.0%}"
        )
    best_batched = max(batched_rows, key=lambda row: row.steps_per_second)
    best_vector = max(vector_rows, key=lambda row: row.steps_per_second)
    print(
        f"best batched: {best_batched.steps_per_second / limit:.0%} of open loop, "
        f"{best_batched.steps_per_second / best_vector.steps_per_second:.1f}x the best vector env"
    )
    return 0


if __name__ == "__main__":
    cli.run_script(main)
