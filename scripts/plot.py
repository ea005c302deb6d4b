"""Learning curves of one or more runs from their TensorBoard event files, to a PNG.

    python scripts/plot.py runs/nav_seed0 runs/nav_seed1 --labels MAML MAML --out curves.png

Plots charts/return_pre_adaptation and charts/return_post_adaptation against environment
steps. Runs given the same label (e.g. seeds of one configuration) are drawn as their mean
with a band from the lowest to the highest run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metarl import cli
from metarl.plotting import LEARNING_TAGS, plot_learning_curves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (with events files)")
    parser.add_argument(
        "--labels", nargs="+", default=None, help="one label per run (default: folder names)"
    )
    parser.add_argument(
        "--out", type=cli.figure_file, required=True, help="figure to write (.png, .pdf, .svg, ...)"
    )
    parser.add_argument(
        "--tags", nargs="+", default=list(LEARNING_TAGS), help="scalar tags, one panel each"
    )
    parser.add_argument(
        "--smoothing",
        type=cli.integer(1, 10**6),
        default=1,
        help="moving-average window in logged points",
    )
    parser.add_argument("--title", default="", help="figure title")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.labels is not None and len(args.labels) != len(args.runs):
            raise ValueError(f"--labels has {len(args.labels)} entries for {len(args.runs)} runs")
        missing = [str(run) for run in args.runs if not run.is_dir()]
        if missing:
            raise ValueError(f"run folder(s) not found: {missing}")
        labels = args.labels or [run.name for run in args.runs]
        path = plot_learning_curves(
            list(zip(labels, args.runs, strict=True)),
            args.out,
            args.tags,
            args.smoothing,
            args.title,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run_script(main)
