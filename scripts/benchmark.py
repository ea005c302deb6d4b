"""Seconds per meta-iteration of MAML-TRPO, split into its parts.

    python scripts/benchmark.py --env metarl/Navigation2D-v0 --iterations 5

Runs the paper's configuration for the env (2D navigation: 20 tasks x 20 episodes x
100 steps, before and after adaptation, plus the TRPO step) and prints the median
time of sampling, inner adaptation, post-update sampling and the outer step, for
exact KL Hessian-vector products and for each --fisher-subsample given. For MAML-TRPO it
splits the outer step (gradient, curvature products, line search) and prints its floor:
the matrix-product FLOPs of the step (`outer_step_flops`) at the speed this machine runs
the policy's widest batched product, a lower bound that leaves out elementwise work.
The floor counts every episode at the full horizon: with --checkpoint (a trained policy,
whose episodes may end early) or batch_per_task=steps it is only indicative.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import time

import numpy as np
import torch

from envs import make_task_env
from metarl import cli
from metarl.adaptation import split_meta_params
from metarl.advantages import add_advantages
from metarl.algorithms.maml_trpo import MetaBatch
from metarl.checkpoint import CheckpointError, load_checkpoint
from metarl.config import MAX_HIDDEN_UNITS, config_from_dict, preset_for
from metarl.runtime import configure_process
from metarl.sampler import rollouts, rollouts_of_min_steps
from metarl.trainer import initial_meta_params, make_algorithm, make_policy


def layer_flops(config, env, rows: int) -> tuple[float, float]:
    """``(U1, Ur)``: multiply-add FLOPs of one pass of ``rows`` rows through the policy's first
    layer and through the rest (``2 * rows * in * out`` per layer)."""
    widths = [env.observation_dim, *config.hidden_sizes, env.action_dim]
    passes = [2.0 * rows * a * b for a, b in itertools.pairwise(widths)]
    return passes[0], sum(passes[1:])


def outer_step_flops(config, env, candidates: float) -> float:
    """Matrix-product FLOPs of one MAML-TRPO outer step (one inner step), as computed here.

    Per pass over ``rows``: forward ``U1 + Ur``, pullback or tangent ``U1 + 2 Ur``, inner
    Hessian product ``2 U1 + 6 Ur``, Fisher product ``2 U1 + 4 Ur`` (``metarl/mlp_products``).
    Elementwise work is left out: this is a lower bound.
    """
    rows = config.meta_batch_size * config.episodes_per_task * env.max_episode_steps
    u1, ur = layer_flops(config, env, rows)
    forward, pullback, hessian, fisher = u1 + ur, u1 + 2 * ur, 2 * u1 + 6 * ur, 2 * u1 + 4 * ur
    f = config.fisher_subsample
    first_order = config.first_order
    gradient = (forward + pullback) * 2 + forward + (0.0 if first_order else hessian)
    setup = f * forward + (0.0 if first_order or f == 1.0 else f * (forward + pullback))
    product = f * (fisher + (0.0 if first_order else 2 * hessian))
    search = candidates * (forward + pullback + forward)
    return gradient + setup + (config.cg_iterations + 1) * product + search


def gemm_rate(config, env) -> float:
    """FLOP/s of this machine's batched matrix product on the policy's widest layer, shaped
    as the outer step runs it (a chunk of tasks x their rows)."""
    width = max(config.hidden_sizes)
    rows = config.episodes_per_task * env.max_episode_steps
    tasks = max(1, 8192 // rows)
    x, w = torch.randn(tasks, rows, width), torch.randn(tasks, width, width)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        torch.bmm(x, w)
        times.append(time.perf_counter() - start)
    return 2.0 * tasks * rows * width * width / statistics.median(times[5:])


def start_params(path: str, config, policy) -> dict[str, torch.Tensor]:
    """A checkpoint's meta-parameters, checked against ``config``'s policy."""
    saved = load_checkpoint(path)
    expected = initial_meta_params(config, policy)
    params = {
        k: v.to(expected[k].dtype) if k in expected else v for k, v in saved["params"].items()
    }
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    if shapes != {k: tuple(v.shape) for k, v in expected.items()}:
        raise ValueError(
            f"checkpoint {path} holds another policy than this benchmark's "
            f"(env {config.env}, hidden {list(config.hidden_sizes)}, variant settings)"
        )
    return params


def time_iterations(config, iterations: int, checkpoint: str | None = None) -> dict[str, float]:
    env = make_task_env(config.env)
    batched = env.batched(config.meta_batch_size * config.episodes_per_task)
    sample = rollouts_of_min_steps if config.batch_per_task == "steps" else rollouts
    torch.manual_seed(config.seed)
    policy = make_policy(config, env)
    algorithm = make_algorithm(config, policy)
    params = initial_meta_params(config, policy)
    if checkpoint is not None:
        params = start_params(checkpoint, config, policy)
    rng, generator = np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed)
    parts: dict[str, list[float]] = {
        "sampling": [],
        "adaptation": [],
        "post_sampling": [],
        "outer_step": [],
        "total": [],
    }
    outer_parts = ("time/outer_gradient_s", "time/outer_curvature_s", "time/outer_line_search_s")
    split: dict[str, list[float]] = {}
    for _ in range(iterations + 1):  # the first iteration warms up and is not counted
        tasks = env.sample_tasks(config.meta_batch_size, rng)
        t0 = time.perf_counter()
        pre = add_advantages(
            sample(
                policy,
                split_meta_params(params)[0],
                batched,
                tasks,
                config.episodes_per_task,
                generator,
            ),
            config.gamma,
            config.gae_lambda,
        )
        t1 = time.perf_counter()
        phi = {k: v.detach() for k, v in algorithm.inner(policy, params, [pre]).items()}
        t2 = time.perf_counter()
        post = add_advantages(
            sample(policy, phi, batched, tasks, config.episodes_per_task, generator, per_task=True),
            config.gamma,
            config.gae_lambda,
        )
        t3 = time.perf_counter()
        params, metrics = algorithm.step(params, MetaBatch([pre], post))
        t4 = time.perf_counter()
        for name, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            parts[name].append(value)
        for name in outer_parts:  # MAML-TRPO's split of its outer step
            if name in metrics:
                split.setdefault(name, []).append(metrics[name])
        if "charts/line_search_backtracks" in metrics:
            candidates = metrics["charts/line_search_backtracks"] + 1
            split.setdefault("floor_s", []).append(
                outer_step_flops(config, batched, candidates) / gemm_rate(config, batched)
            )
    parts.update(split)
    return {name: statistics.median(values[1:]) for name, values in parts.items()}


def parse_overrides(text: str) -> dict:
    """``"algo=promp,first_order=true"`` -> ``{"algo": "promp", "first_order": True}``."""
    values: dict = {}
    for item in text.split(","):
        key, equals, raw = item.partition("=")
        if not key or not equals:
            raise ValueError(f"--variants entries are key=value[,key=value], got {text!r}")
        if raw.lower() in ("true", "false"):
            values[key] = raw.lower() == "true"
            continue
        for kind in (int, float, str):
            try:
                values[key] = kind(raw)
                break
            except ValueError:
                continue
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="metarl/Navigation2D-v0")
    parser.add_argument(
        "--iterations",
        type=cli.integer(1, 10**4),
        default=5,
        help="timed meta-iterations per setting",
    )
    parser.add_argument(
        "--fisher-subsample",
        type=cli.number(0, 1, open_minimum=True),
        nargs="*",
        default=[0.1],
        help="MAML-TRPO curvature subsamples to time besides exact",
    )
    parser.add_argument(
        "--hidden-sizes", type=cli.integer(1, MAX_HIDDEN_UNITS), nargs="+", default=[100, 100]
    )
    parser.add_argument("--threads", type=cli.threads, default=2)
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="start from this checkpoint's meta-parameters instead of a fresh policy (a "
        "trained policy's episodes end early, which changes what an iteration costs)",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="more settings to time, each 'key=value[,key=value]' of config overrides, "
        "e.g. algo=promp first_order=true inner_estimator=dice",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = [{"fisher_subsample": f} for f in [1.0, *args.fisher_subsample]]
        settings += [parse_overrides(text) for text in args.variants]
        base = {"env": args.env, "hidden_sizes": args.hidden_sizes, "threads": args.threads}
        configs = []
        for overrides in settings:
            preset = preset_for(args.env, overrides.get("algo", "maml-trpo"))
            configs.append(config_from_dict({**preset, **base, **overrides}))
            make_task_env(args.env)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_process(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, {args.env}, hidden {args.hidden_sizes}"
    )
    print(
        f"{'setting':<40} {'sampling':>9} {'adapt':>7} {'post':>7} {'outer':>7} {'total s/it':>10}"
        f"   outer = {'gradient':>8} {'curvature':>9} {'search':>7}"
    )
    for overrides, config in zip(settings, configs, strict=True):
        try:
            t = time_iterations(config, args.iterations, args.checkpoint)
        except (ValueError, CheckpointError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        label = ",".join(f"{k}={v}" for k, v in overrides.items())
        print(
            f"{label:<40} {t['sampling']:>9.3f} {t['adaptation']:>7.3f} "
            f"{t['post_sampling']:>7.3f} {t['outer_step']:>7.3f} {t['total']:>10.3f}"
            + (
                f"           {t['time/outer_gradient_s']:>8.3f} {t['time/outer_curvature_s']:>9.3f}"
                f" {t['time/outer_line_search_s']:>7.3f}"
                f"   floor {t['floor_s']:.3f} s (ratio {t['outer_step'] / t['floor_s']:.2f})"
                if "floor_s" in t
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    cli.run_script(main)
