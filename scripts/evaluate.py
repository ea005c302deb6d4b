"""Evaluate fast adaptation of a trained run on held-out tasks.

    python scripts/evaluate.py --run-dir runs/nav --num-tasks 40 --adapt-steps 3 --seed 1234

Loads the run's final checkpoint (or --checkpoint best), draws --num-tasks tasks with
--seed (a stream separate from training's), adapts to each with 0..K policy-gradient
steps (step size alpha, then alpha/2, as in the paper), prints the mean return per
episode after each step, and writes <run-dir>/evaluation.json and eval/ scalars to
TensorBoard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from envs import make_task_env
from metarl.checkpoint import CheckpointError, atomic_write, load_checkpoint
from metarl.config import config_from_dict
from metarl.evaluation import adaptation_curve
from metarl.trainer import make_policy

# The paper evaluates 2D navigation with 40 episodes per step, locomotion with 20.
EVAL_EPISODES = {"metarl/Navigation2D-v0": 40}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="a training run's folder")
    parser.add_argument(
        "--checkpoint", default="latest", help="'latest', 'best', or a path to a .pt file"
    )
    parser.add_argument("--num-tasks", type=int, default=40, help="held-out tasks (default: 40)")
    parser.add_argument(
        "--adapt-steps", type=int, default=3, help="largest number of inner steps K (default: 3)"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes per task per step (default: 40 for 2D navigation, else 20)",
    )
    parser.add_argument(
        "--inner-lr",
        type=float,
        default=None,
        help="first step size (default: the run's inner_lr; later steps use half)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1234,
        help="seed of the held-out tasks and rollouts (default: 1234)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    args = parser.parse_args(argv)
    try:
        for name in ("num_tasks", "episodes", "inner_lr", "threads"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if args.adapt_steps < 0:
            raise ValueError(f"--adapt-steps must be >= 0, got {args.adapt_steps}")
        path = Path(args.checkpoint)
        if args.checkpoint in ("latest", "best"):
            path = args.run_dir / "checkpoints" / f"{args.checkpoint}.pt"
        payload = load_checkpoint(path)
        config = config_from_dict(payload["config"])
        env = make_task_env(config.env)
        policy = make_policy(config, env)
        params = payload["params"]
        expected = {name: tuple(value.shape) for name, value in policy.named_parameters()}
        if {name: tuple(value.shape) for name, value in params.items()} != expected:
            raise CheckpointError(f"checkpoint {path} does not fit the policy its config describes")
    except (ValueError, CheckpointError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    episodes = args.episodes or EVAL_EPISODES.get(config.env, 20)
    inner_lr = args.inner_lr or config.inner_lr
    tasks = env.sample_tasks(args.num_tasks, np.random.default_rng(args.seed))
    curve = adaptation_curve(
        policy,
        {name: value.float() for name, value in params.items()},
        env.batched(args.num_tasks * episodes),
        tasks,
        episodes,
        args.adapt_steps,
        inner_lr,
        config.gamma,
        config.gae_lambda,
        seed=args.seed,
    )
    result = {
        "env": config.env,
        "checkpoint": str(path),
        "iteration": int(payload["iteration"]),
        "adapt_steps": args.adapt_steps,
        "num_tasks": args.num_tasks,
        "episodes_per_task": episodes,
        "inner_lr": inner_lr,
        "seed": args.seed,
        "mean_return": {str(k): float(curve[k].mean()) for k in range(args.adapt_steps + 1)},
        "returns": {str(k): curve[k].tolist() for k in range(args.adapt_steps + 1)},
    }
    text = json.dumps(result, indent=2)
    atomic_write(args.run_dir / "evaluation.json", lambda file: file.write(text.encode()))
    writer = SummaryWriter(str(args.run_dir))
    for k, value in result["mean_return"].items():
        writer.add_scalar(f"eval/return_step_{k}", value, int(payload["env_steps"]))
    writer.close()
    print(
        f"{config.env}, {args.num_tasks} held-out tasks, {episodes} episodes per step, checkpoint {path}"
    )
    print("steps | mean return | std over tasks")
    for k in range(args.adapt_steps + 1):
        print(f"{k:5d} | {curve[k].mean():11.2f} | {curve[k].std():.2f}")
    print(f"wrote {args.run_dir / 'evaluation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
