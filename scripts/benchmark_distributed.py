"""Seconds per meta-iteration with 1 and N ranks, and what the ranks send each other.

For each env and rank count: ``scripts/train.py`` with the env's paper defaults (``--threads``
per rank, default 1, launched with torchrun for N > 1) for ``--iterations`` meta-iterations in a
temporary folder; the per-iteration times and traffic come from its TensorBoard log (the
first iteration is a warm-up and is left out). Then the time of one all-reduce of the
policy's gradient between two ranks on this machine (loopback), the per-message cost a
model of several machines starts from.

Usage: ``python scripts/benchmark_distributed.py [--env ID ...] [--ranks 1 2] [--iterations 4]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metarl import cli
from metarl.plotting import read_scalars

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_ENVS = ["metarl/Navigation2D-v0", "metarl/HalfCheetahDir-v0"]
TAGS = {
    "sampling_s": "time/sampling_s",
    "outer_step_s": "time/outer_step_s",
    "sync_wait_s": "time/sync_wait_s",
    "collectives": "distributed/collectives",
    "bytes": "distributed/bytes",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=DEFAULT_ENVS, help="env ids")
    parser.add_argument("--ranks", nargs="+", type=cli.integer(1, 64), default=[1, 2])
    parser.add_argument("--iterations", type=cli.integer(2, 1000), default=4)
    parser.add_argument("--threads", type=cli.threads, default=1, help="torch threads per rank")
    parser.add_argument(
        "--all-reduce-floats",
        type=cli.integer(1, 10**9),
        default=None,
        help="size of the all-reduce to time (default: the first env's gradient)",
    )
    return parser


def train_command(
    env_id: str, ranks: int, iterations: int, run_dir: Path, threads: int
) -> list[str]:
    script = [
        str(ROOT / "scripts/train.py"),
        "--env", env_id,
        "--iterations", str(iterations),
        "--threads", str(threads),
        "--run-dir", str(run_dir),
        "--no-progress",
    ]  # fmt: skip
    if ranks == 1:
        return [sys.executable, *script]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(ranks), *script]


def measure_training(env_id: str, ranks: int, iterations: int, threads: int) -> dict[str, float]:
    """Mean per-iteration times and traffic of a short run (iterations after the first)."""
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        result = subprocess.run(
            train_command(env_id, ranks, iterations, run_dir, threads),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"training {env_id} on {ranks} ranks failed:\n{result.stderr}")
        scalars = read_scalars(run_dir, list(TAGS.values()))
    row: dict[str, float] = {}
    for name, tag in TAGS.items():
        values = scalars[tag][1][1:] if tag in scalars else []
        row[name] = statistics.fmean(values) if len(values) else 0.0
    row["iteration_s"] = row["sampling_s"] + row["outer_step_s"]
    return row


def _time_all_reduce(rank: int, size: int, port: int, floats: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    tensor = torch.ones(floats)
    for _ in range(5):
        dist.all_reduce(tensor)
    repeats = 50
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(tensor)
    if rank == 0:
        out["seconds"] = (time.perf_counter() - start) / repeats
    dist.destroy_process_group()


def all_reduce_seconds(floats: int, ranks: int = 2) -> float:
    """Mean time of one gloo all-reduce of ``floats`` float32 values between local ranks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_time_all_reduce, args=(ranks, port, floats, out), nprocs=ranks)
        return float(out["seconds"])


def gradient_floats(env_id: str) -> int:
    from envs import make_task_env
    from metarl.config import TrainConfig
    from metarl.trainer import make_policy

    config = TrainConfig.for_env(env_id)
    policy = make_policy(config, make_task_env(env_id))
    return sum(parameter.numel() for parameter in policy.parameters())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print("| env | ranks x threads | s / iteration | sampling s | outer step s | waiting s | "
          "collectives / it | all-reduced KB / it |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for env_id in args.env:
        for ranks in args.ranks:
            row = measure_training(env_id, ranks, args.iterations, args.threads)
            print(
                f"| {env_id} | {ranks} x {args.threads} | {row['iteration_s']:.2f} | {row['sampling_s']:.2f} | "
                f"{row['outer_step_s']:.2f} | {row['sync_wait_s']:.3f} | "
                f"{row['collectives']:.0f} | {row['bytes'] / 1024:.0f} |",
                flush=True,
            )
    floats = args.all_reduce_floats or gradient_floats(args.env[0])
    seconds = all_reduce_seconds(floats)
    print(
        f"\none gloo all-reduce of {floats} float32 between 2 local ranks: {seconds * 1e6:.0f} us"
    )
    return 0


if __name__ == "__main__":
    cli.run_script(main)
