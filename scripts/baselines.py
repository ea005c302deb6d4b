"""Train the paper's comparison policies with Stable-Baselines3 PPO and save them like runs.

    python scripts/baselines.py --kind pretrained --timesteps 1000000 --init-std 0.1 \
        --out runs/baselines/nav_pretrained
    python scripts/baselines.py --kind oracle --timesteps 1000000 --init-std 0.1 \
        --out runs/baselines/nav_oracle
    python scripts/baselines.py --kind random --out runs/baselines/nav_random

(2D navigation's actions are clipped to [-0.1, 0.1]: PPO learns far faster from an initial
std of 0.1 than from 1.0. The random baseline keeps 1.0, the initialisation MAML starts from.
Each PPO run above takes about 4 minutes on one core.)

pretrained: one policy for the whole task distribution (task resampled every episode and
not observed), fine-tuned at evaluation time with the MAML inner step (--inner-lr).
oracle: observes the task parameters; evaluated without adaptation.
random: a fresh initialisation of the same policy (no training), fine-tuned at evaluation.

The saved folder holds checkpoints/latest.pt (the trainer's format, loadable by
scripts/evaluate.py), baseline.json (kind, PPO settings, steps, wall time) and SB3's
TensorBoard logs under ppo/.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from metarl import cli
from metarl.baselines import KINDS, PPOSettings, baseline_config, train_baseline
from metarl.config import MAX_HIDDEN_UNITS

# the range of each PPO flag (SB3 itself only fails later, deep inside training)
PPO_FLAG_TYPES = {
    "timesteps": cli.count,
    "num_envs": cli.integer(1, 1024),
    "n_steps": cli.integer(2, 10**6),
    "batch_size": cli.integer(2, 10**6),  # SB3 asserts > 1
    "n_epochs": cli.integer(1, 10**4),
    "learning_rate": cli.number(0, 10, open_minimum=True),
    "gamma": cli.number(0, 1),
    "gae_lambda": cli.number(0, 1),
    "clip_range": cli.number(0, 10, open_minimum=True),
    "ent_coef": cli.number(0, 10),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=KINDS, required=True, help="which baseline")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--env", default="metarl/Navigation2D-v0", help="environment id")
    parser.add_argument(
        "--hidden-sizes",
        type=cli.integer(1, MAX_HIDDEN_UNITS),
        nargs="+",
        default=[100, 100],
        help="(default: 100 100)",
    )
    parser.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    parser.add_argument(
        "--init-std",
        type=cli.number(0, 1000, open_minimum=True),
        default=1.0,
        help="initial action std (default: 1.0)",
    )
    parser.add_argument(
        "--inner-lr",
        type=cli.step_size,
        default=0.1,
        help="fine-tuning step size stored with the baseline (evaluate.py can override)",
    )
    parser.add_argument("--seed", type=cli.seed, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--threads", type=cli.threads, default=1, help="torch CPU threads (default: 1)"
    )
    parser.add_argument("--verbose", type=cli.integer(0, 2), default=0, help="SB3 verbosity (0, 1)")
    defaults = PPOSettings()
    for field in dataclasses.fields(PPOSettings):
        parser.add_argument(
            cli.flag(field.name),
            type=PPO_FLAG_TYPES[field.name],
            default=None,
            help=f"PPO {field.name} (default: {getattr(defaults, field.name)})",
        )
    return parser


def ppo_settings(args: argparse.Namespace) -> PPOSettings:
    """The PPO settings the flags give; refuses PPO-only flags for the random baseline,
    which is not trained (``--gamma`` also sets its fine-tuning discount, so it stays)."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PPOSettings)
        if getattr(args, f.name) is not None
    }
    unused = sorted(name for name in given if name != "gamma")
    if args.kind == "random" and unused:
        flags = ", ".join(cli.flag(name) for name in unused)
        raise ValueError(
            f"{flags}: PPO settings, but the random baseline is not trained (it is a fresh "
            "initialisation); drop them or use --kind pretrained / oracle"
        )
    return PPOSettings(**given)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ppo = ppo_settings(args)
        config = baseline_config(
            args.env,
            tuple(args.hidden_sizes),
            args.activation,
            args.inner_lr,
            args.init_std,
            args.seed,
            ppo.gamma,
        )
        torch.set_num_threads(args.threads)
        result = train_baseline(
            args.kind, args.out, config, ppo, seed=args.seed, verbose=args.verbose
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.kind} baseline for {args.env}: {result.env_steps} PPO steps in "
        f"{result.wall_time_s:.1f} s; saved to {result.out_dir / 'checkpoints' / 'latest.pt'}"
    )
    return 0


if __name__ == "__main__":
    cli.run_script(main)
