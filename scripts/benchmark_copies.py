"""Throughput of the generic batched form (copies of a single env): sync against async.

What a task family without its own ``batched()`` is sampled through (:mod:`envs.copies`).
For each env and mode: ``copies`` copies reset with sampled tasks, stepped ``steps`` times
with random actions; env steps per second (best of ``--repeats``). ``async`` splits the
copies over ``--workers`` processes. Used to pick ``envs.copies.DEFAULT_MODE``.

Usage: ``python scripts/benchmark_copies.py [--env ID ...] [--copies 200] [--steps 100]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import make_task_env
from envs.copies import MODES, batched_copies
from metarl import cli
from metarl.runtime import configure_process

DEFAULT_ENVS = ["metarl/MiscalibratedPoint-v0", "metarl/HalfCheetahVel-v0"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=DEFAULT_ENVS, help="env ids")
    parser.add_argument("--copies", type=cli.integer(1, 10**5), default=200)
    parser.add_argument("--steps", type=cli.integer(1, 10**5), default=100)
    parser.add_argument("--workers", type=cli.integer(1, 256), default=2)
    parser.add_argument("--repeats", type=cli.integer(1, 100), default=3)
    return parser


def steps_per_second(env_id: str, mode: str, copies: int, steps: int, workers: int) -> float:
    """Env steps per second of ``copies`` copies of ``env_id`` stepped in ``mode``."""
    task_env = make_task_env(env_id)
    batched = batched_copies(task_env, copies, mode, workers)
    try:
        rng = np.random.default_rng(0)
        tasks = task_env.sample_tasks(copies, rng)
        batched.reset(tasks, seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            batched.step(
                rng.uniform(batched.action_low, batched.action_high, (copies, batched.action_dim))
            )
        return copies * steps / (time.perf_counter() - start)
    finally:
        batched.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_process(1)
    print(
        f"| env | mode | env steps/s ({args.copies} copies, {args.steps} steps, best of {args.repeats}) |"
    )
    print("|---|---|---|")
    for env_id in args.env:
        for mode in MODES:
            best = max(
                steps_per_second(env_id, mode, args.copies, args.steps, args.workers)
                for _ in range(args.repeats)
            )
            label = f"async ({args.workers} workers)" if mode == "async" else mode
            print(f"| {env_id} | {label} | {best:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    cli.run_script(main)
