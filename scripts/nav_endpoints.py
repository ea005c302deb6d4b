"""Where the adapted 2D-navigation policy stops, relative to its goal (a diagnostic).

    python scripts/nav_endpoints.py runs/nav_s0/checkpoints/snapshot_000100.pt \\
        runs/nav_s0/checkpoints/snapshot_000500.pt --out endpoints.json

For each checkpoint: draws --num-tasks held-out goals (--seed, as evaluate.py), adapts to
each with the evaluator's sampled episodes and step sizes (alpha, then alpha/2), and after
0..K steps runs the policy's mean action (no noise) from the start for one episode. Its
last position is where the adapted policy settles (a point moves at most 0.1 per step, so
100 steps reach any goal). Printed per step, as medians over goals: the distance to the
goal, the reach (the endpoint's projection on the start-to-goal line over the goal's
distance: 1 on the goal, below 1 short of it, above 1 beyond it), the lateral miss (the
distance off that line), and the share of goals whose mean-action episode ends in the goal
box; and the mean return of the sampled episodes at that step (what evaluate.py reports,
for the same goals and seed). Tells apart a step too short (reach below 1), an overshoot
(above 1) and a miss to the side. --step-sizes replaces the test schedule, e.g.
``--step-sizes 0.5 0.125 0.125`` to try smaller later steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from metarl import cli
from metarl.checkpoint import CheckpointError, atomic_write
from metarl.evaluation import adaptation_trace, held_out_tasks, load_policy
from metarl.runtime import configure_process
from metarl.sampler import rollouts

NAVIGATION = "metarl/Navigation2D-v0"


def endpoint_geometry(endpoints: np.ndarray, goals: np.ndarray) -> dict[str, np.ndarray]:
    """Per goal (start at the origin): distance to the goal, reach along the start-to-goal
    line (1 = on the goal) and lateral distance off that line."""
    offsets = endpoints - goals
    norms = np.linalg.norm(goals, axis=1)
    unit = goals / np.maximum(norms, 1e-12)[:, None]
    along = (endpoints * unit).sum(1)
    return {
        "distance": np.linalg.norm(offsets, axis=1),
        "reach": along / np.maximum(norms, 1e-12),
        "lateral": np.abs(endpoints[:, 0] * unit[:, 1] - endpoints[:, 1] * unit[:, 0]),
    }


def last_positions(observations: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The last observed position of each task's single episode: ``[T, tasks, 1, 2]`` -> ``[tasks, 2]``."""
    lengths = mask[:, :, 0].sum(0).long().clamp(min=1)
    index = (lengths - 1).reshape(1, -1, 1).expand(1, -1, observations.shape[-1])
    return observations[:, :, 0].gather(0, index)[0].numpy()


def endpoints_of(path: Path, args: argparse.Namespace) -> dict:
    loaded = load_policy(path)
    if loaded.config.env != NAVIGATION or loaded.oracle:
        raise ValueError(f"{path} is not a {NAVIGATION} policy that adapts")
    tasks = held_out_tasks(loaded.env, args.num_tasks, args.seed)
    goals = np.array([task["goal"] for task in tasks], dtype=np.float64)
    trace = adaptation_trace(
        loaded.policy,
        loaded.params,
        loaded.batched_env(len(tasks) * args.episodes),
        tasks,
        args.episodes,
        args.step_sizes or loaded.schedule(args.adapt_steps),
        loaded.config.gamma,
        loaded.config.gae_lambda,
        seed=args.seed,
        normalize_advantages=loaded.config.normalize_advantages,
    )
    single = loaded.batched_env(len(tasks))
    steps = []
    for stage in trace:
        episodes = rollouts(
            loaded.policy,
            stage.params,
            single,
            tasks,
            1,
            torch.Generator().manual_seed(0),
            env_seed=args.seed,
            per_task=stage.per_task,
            deterministic=True,
        )
        ended = (episodes.mask[:, :, 0].sum(0) < single.max_episode_steps).numpy()
        geometry = endpoint_geometry(last_positions(episodes.observations, episodes.mask), goals)
        steps.append(
            {
                "step": stage.step,
                **{f"median_{name}": float(np.median(values)) for name, values in geometry.items()},
                "ended_in_goal_box": float(ended.mean()),
                "mean_return": float((stage.episodes.rewards * stage.episodes.mask).sum(0).mean()),
                **{name: values.tolist() for name, values in geometry.items()},
            }
        )
    return {"checkpoint": str(path), "iteration": loaded.iteration, "steps": steps}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="2D-navigation .pt files")
    parser.add_argument("--num-tasks", type=cli.integer(1, 10**4), default=40)
    parser.add_argument("--episodes", type=cli.integer(1, 10**4), default=40)
    parser.add_argument("--adapt-steps", type=cli.integer(0, 100), default=3)
    parser.add_argument(
        "--step-sizes",
        nargs="+",
        type=cli.step_size,
        default=None,
        help="the inner step sizes, one per step (default: the test schedule, alpha then "
        "alpha/2); overrides --adapt-steps",
    )
    parser.add_argument("--seed", type=cli.seed, default=1234, help="held-out goal seed")
    parser.add_argument("--threads", type=cli.integer(1, 512), default=1)
    parser.add_argument("--out", type=Path, default=None, help="JSON file with every goal")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_process(args.threads)
    results = []
    print(
        "iteration | step | distance | reach | lateral | ended in goal box (medians over goals)"
        " | mean return"
    )
    for path in args.checkpoints:
        try:
            result = endpoints_of(path, args)
        except (ValueError, CheckpointError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        results.append(result)
        for step in result["steps"]:
            print(
                f"{result['iteration']:9d} | {step['step']:4d} | {step['median_distance']:8.3f} | "
                f"{step['median_reach']:5.2f} | {step['median_lateral']:7.3f} | "
                f"{step['ended_in_goal_box']:17.0%} | {step['mean_return']:.2f}"
            )
    if args.out is not None:
        text = json.dumps(results, indent=2)
        atomic_write(args.out, lambda file: file.write(text.encode()))
    return 0


if __name__ == "__main__":
    cli.run_script(main)
