"""Meta-train a policy initialisation.

    python scripts/train.py --env metarl/Navigation2D-v0 --iterations 500 --run-dir runs/nav

Defaults are the paper's hyperparameters for the env; every one can be overridden
(see --help). Progress goes to the terminal; returns and losses to TensorBoard in the
run dir (``tensorboard --logdir runs``). ``--resume`` continues a killed run.

Over several processes or machines, launch it with torchrun (each rank samples its share
of the meta-batch's tasks; rank 0 writes the run dir):

    torchrun --standalone --nproc-per-node 2 scripts/train.py --threads 1 --run-dir runs/nav
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from metarl import cli
from metarl.api import train
from metarl.config import add_config_arguments, config_from_args, given_keys
from metarl.distributed import DEFAULT_TIMEOUT_S, RankFailure, launched_ranks, leave_ranks
from metarl.stop_request import TrainingInterrupted
from metarl.trainer import TrainingDiverged


def default_run_dir(env: str, algo: str, seed: int) -> Path:
    name = env.split("/")[-1].replace(":", "_")
    return Path("runs") / f"{name}__{algo}__{seed}__{int(time.time())}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output folder (default: runs/<env>__<algo>__<seed>__<time>)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its latest checkpoint, with the settings of "
        "its config.json: only --iterations, --threads, --device and the checkpoint flags may "
        "change (another flag that differs is refused)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dist-timeout",
        type=cli.positive,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for the others before the run stops "
        "with an error naming the late rank (default: %(default)g)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_rank = os.environ.get("RANK", "0") == "0"
    try:
        config = config_from_args(args)
        if args.resume and args.run_dir is None:
            raise ValueError("--resume needs --run-dir")
        if args.run_dir is None and launched_ranks() > 1:
            raise ValueError("under torchrun, give --run-dir (every rank must name the same)")
        run_dir = args.run_dir or default_run_dir(config.env, config.algo, config.seed)
        if main_rank:
            print(f"run dir: {run_dir}  (tensorboard --logdir {run_dir})")
        meta = train(
            config,
            run_dir,
            resume=args.resume,
            progress=not args.no_progress,
            dist_timeout_s=args.dist_timeout,
            given=given_keys(args),
        )
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (TrainingDiverged, RankFailure) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        if main_rank:
            print(str(error), file=sys.stderr)
        return error.exit_code
    finally:
        leave_ranks()
    metrics = meta.training_metrics
    if metrics and main_rank:
        print(
            f"iteration {meta.iteration}: return before adaptation "
            f"{metrics['charts/return_pre_adaptation']:.2f}, after "
            f"{metrics['charts/return_post_adaptation']:.2f}"
        )
    elif main_rank:
        print(
            f"nothing to train: the run is at iteration {meta.iteration} already "
            "(pass a larger --iterations to continue it)"
        )
    return 0


if __name__ == "__main__":
    cli.run_script(main, distributed=True)
