"""MAML on sinusoid regression, the paper's section 5.1: the same inner loop as for RL.

    python scripts/sinusoid.py --iterations 5000

Meta-trains a 1-40-40-1 ReLU regressor (K = 10 points, inner step 0.01, Adam 1e-3),
trains the "pretrained" baseline on all tasks, and prints the mean squared error on
held-out tasks after 0, 1 and 10 gradient steps for both.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from metarl import cli
from metarl.sinusoid import SinusoidTasks, adaptation_losses, meta_train, pretrain, regression_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iterations", type=cli.count, default=5000, help="outer iterations (default: 5000)"
    )
    parser.add_argument(
        "--inner-lr", type=cli.step_size, default=0.01, help="inner step size (default: 0.01)"
    )
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--test-tasks", type=cli.integer(1, 10**5), default=100)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    maml_model = regression_model()
    maml = meta_train(
        maml_model, args.iterations, np.random.default_rng(args.seed), step_size=args.inner_lr
    )
    torch.manual_seed(args.seed)
    pretrained_model = regression_model()
    pretrained = pretrain(pretrained_model, args.iterations, np.random.default_rng(args.seed + 1))
    tasks = SinusoidTasks.sample(args.test_tasks, np.random.default_rng(args.seed + 1000))
    steps = [0, 1, 10]
    rows = {
        "MAML": adaptation_losses(
            maml_model, maml, tasks, steps, args.inner_lr, np.random.default_rng(7)
        ),
        "pretrained": adaptation_losses(
            pretrained_model, pretrained, tasks, steps, args.inner_lr, np.random.default_rng(7)
        ),
    }
    print(f"mean squared error on {args.test_tasks} held-out sinusoids (K = 10)")
    print(f"{'method':<11}" + "".join(f"{f'{s} steps':>10}" for s in steps))
    for name, losses in rows.items():
        print(f"{name:<11}" + "".join(f"{losses[s]:>10.3f}" for s in steps))


if __name__ == "__main__":
    cli.run_script(main)
