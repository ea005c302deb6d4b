"""Reproduce one row of the paper's table with one command.

    python scripts/reproduce.py metarl/HalfCheetahDir-v0 --seed 0 --out runs/repro_cheetah_dir

Meta-trains with the env's paper preset up to the iteration of the paper's snapshot (or
--budget-iterations, said so in the table), trains or reuses the baselines (SB3 PPO
pretrained and oracle, random initialisation), picks the MAML snapshot and the baselines'
fine-tuning step on validation tasks (seed --validation-seed, never the test tasks),
evaluates every method on the same held-out tasks after 0..3 steps with the env's test
protocol, and writes into --out: table.md / table.json / table.csv (ours beside the
paper's, with adaptation ratios), comparison.png (the paper's figure) and comparison/
(JSON, CSV, TensorBoard). Killed, it resumes where it stopped: run it again. With
--paper-tasks the test tasks are the paper's own (those of its test scripts); run again with
it on a finished --out, it reuses the training and baselines and redoes the choices on
validation tasks and the tests.

Training settings: the paper's preset for the env; any training flag of scripts/train.py
overrides it (e.g. --fisher-subsample 0.1, or tiny runs for a smoke test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metarl import cli
from metarl.config import add_config_arguments, config_from_args
from metarl.reproduction import (
    BASELINE_KINDS,
    PAPER,
    Reproduction,
    ReproductionSettings,
    paper_iteration,
)
from metarl.runtime import configure_process
from metarl.stop_request import TrainingInterrupted
from metarl.trainer import TrainingDiverged


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_id", help=f"the env of the row (the paper's: {', '.join(PAPER)})")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    parser.add_argument(
        "--budget-iterations",
        type=cli.count,
        default=None,
        help="stop meta-training at this iteration if before the paper's snapshot (the table says so)",
    )
    parser.add_argument(
        "--num-tasks",
        type=cli.integer(1, 10**5),
        default=40,
        help="held-out test tasks (default: 40)",
    )
    parser.add_argument(
        "--adapt-steps", type=cli.integer(1, 100), default=3, help="largest step count (default: 3)"
    )
    parser.add_argument(
        "--episodes",
        type=cli.integer(1, 10**5),
        default=None,
        help="episodes per step (default: the env's protocol)",
    )
    parser.add_argument(
        "--test-seed", type=cli.seed, default=1234, help="test tasks' seed (default: 1234)"
    )
    parser.add_argument(
        "--paper-tasks",
        action="store_true",
        help="test on the paper's own 40 test tasks (drawn as its test scripts drew them, so "
        "returns compare task for task) instead of 40 drawn with --test-seed, which then seeds "
        "only the rollouts",
    )
    parser.add_argument(
        "--validation-seed",
        type=cli.seed,
        default=4321,
        help="validation tasks' seed (default: 4321)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        choices=BASELINE_KINDS,
        default=list(BASELINE_KINDS),
        help="baselines to train and compare (default: all)",
    )
    parser.add_argument(
        "--pretrained-timesteps", type=cli.count, default=1_000_000, help="PPO steps (default: 1M)"
    )
    parser.add_argument(
        "--oracle-timesteps", type=cli.count, default=2_000_000, help="PPO steps (default: 2M)"
    )
    add_config_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_from_args(args: argparse.Namespace) -> ReproductionSettings:
    args.env = args.env_id
    config = config_from_args(args)
    target = args.iterations or paper_iteration(config.env)
    return ReproductionSettings(
        config=config,
        target_iteration=target,
        budget_iterations=args.budget_iterations,
        num_tasks=args.num_tasks,
        adapt_steps=args.adapt_steps,
        episodes=args.episodes,
        seed=args.test_seed,
        paper_tasks=args.paper_tasks,
        validation_seed=args.validation_seed,
        baselines=tuple(args.baselines),
        ppo_timesteps={"pretrained": args.pretrained_timesteps, "oracle": args.oracle_timesteps},
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.env is not None and args.env != args.env_id:
            raise ValueError("give the env once, as the first argument")
        settings = settings_from_args(args)
        configure_process(settings.config.threads)
        reproduction = Reproduction(settings, args.out)
        reproduction.run(progress=not args.no_progress)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(
            f"stopped by {error.signal_name} at iteration {error.iteration} with a checkpoint; "
            "run the same command again to continue",
            file=sys.stderr,
        )
        return error.exit_code
    return 0


if __name__ == "__main__":
    cli.run_script(main)
