"""Look at a policy before and after adaptation to a held-out task.

    python scripts/render.py --run-dir runs/nav --out nav.png --adapt-steps 1
    python scripts/render.py --run-dir runs/cheetah_vel --out cheetah.gif --adapt-steps 1

Loads a run or baseline, draws one held-out task (--seed, --task-index), samples
--episodes episodes with the initial parameters, adapts with the evaluator's inner step
(alpha, then alpha/2) and samples again. An oracle is shown without adaptation.

- 2D navigation: a PNG of --show of the sampled paths of each stage (thin), the path of
  the mean action (bold), the start and the goal.
- MuJoCo envs: a GIF (offscreen rendering, MUJOCO_GL=egl unless set) of one episode per
  stage with the policy's mean actions, captioned with the stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from metarl import cli
from metarl.checkpoint import CheckpointError
from metarl.evaluation import (
    AdaptationStage,
    LoadedPolicy,
    adaptation_trace,
    held_out_tasks,
    load_policy,
    resolve_checkpoint,
)
from metarl.plotting import plot_navigation_paths
from metarl.sampler import rollouts

NAVIGATION = "metarl/Navigation2D-v0"
MAX_STEP = 0.1  # the env clips each displacement to this


def episode_paths(observations: np.ndarray, actions: np.ndarray, mask: np.ndarray) -> list:
    """Positions ``[length + 1, 2]`` of each episode of one task, from the start to the end."""
    paths = []
    for episode in range(observations.shape[1]):
        length = int(mask[:, episode].sum())
        positions = observations[:length, episode, :2]
        last = positions[-1] + np.clip(actions[length - 1, episode], -MAX_STEP, MAX_STEP)
        paths.append(np.concatenate([positions, last[None]]))
    return paths


def render_gif(
    loaded: LoadedPolicy,
    task: dict,
    trace: Iterable[AdaptationStage],
    out: Path,
    seed: int,
    size: tuple[int, int] = (320, 240),
    frame_every: int = 2,
) -> Path:
    """One episode per adaptation stage with the mean action, rendered offscreen to a GIF."""
    import gymnasium as gym
    from PIL import Image, ImageDraw

    from envs import OracleObservation, PolicyActions

    env = gym.make(loaded.config.env, render_mode="rgb_array", width=size[0], height=size[1])
    if loaded.oracle:
        env = gym.wrappers.TimeLimit(
            OracleObservation(env.unwrapped), env.spec.max_episode_steps if env.spec else None
        )
    env = PolicyActions(env)
    frames = []
    for stage in trace:
        params = {k: v[0] for k, v in stage.params.items()} if stage.per_task else stage.params
        caption = "before adaptation" if stage.step == 0 else f"after {stage.step} step(s)"
        obs, _ = env.reset(seed=seed, options={"task": task})
        total, done, t = 0.0, False, 0
        while not done:
            with torch.no_grad():
                mean, _ = torch.func.functional_call(
                    loaded.policy, params, (torch.as_tensor(obs, dtype=torch.float32),)
                )
            obs, reward, terminated, truncated, _ = env.step(mean.numpy())
            total += float(reward)
            done = terminated or truncated
            if t % frame_every == 0 or done:
                image = Image.fromarray(env.render())
                draw = ImageDraw.Draw(image)
                draw.rectangle((0, 0, size[0], 16), fill="black")
                draw.text((4, 3), f"{caption}: return {total:.1f}", fill="white")
                frames.append(image)
            t += 1
    env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="a run or baseline folder")
    parser.add_argument(
        "--checkpoint",
        default="latest",
        help="'latest', 'best', an iteration number (its snapshot) or a .pt path",
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument(
        "--adapt-steps", type=cli.integer(0, 100), default=1, help="inner steps (default: 1)"
    )
    parser.add_argument(
        "--episodes",
        type=cli.integer(1, 10**4),
        default=40,
        help="episodes per adaptation step (default: 40)",
    )
    parser.add_argument(
        "--show", type=cli.integer(1, 1000), default=5, help="paths drawn per stage (default: 5)"
    )
    parser.add_argument("--inner-lr", type=cli.step_size, default=None, help="first step size")
    parser.add_argument("--seed", type=cli.seed, default=1234, help="held-out task seed")
    parser.add_argument(
        "--task-index", type=cli.integer(0, 10**4), default=0, help="which held-out task"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    try:
        path = resolve_checkpoint(args.run_dir, args.checkpoint)
        # offscreen MuJoCo rendering must be chosen before mujoco is first imported
        os.environ.setdefault("MUJOCO_GL", "egl")
        loaded = load_policy(path)
        if loaded.config.env != NAVIGATION and args.out.suffix != ".gif":
            raise ValueError(f"{loaded.config.env} is rendered as a GIF: give --out <name>.gif")
        if loaded.config.env == NAVIGATION:
            try:
                cli.figure_file(str(args.out))
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"--out {error}") from None
    except (ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    task = held_out_tasks(loaded.env, args.task_index + 1, args.seed)[args.task_index]
    steps = 0 if loaded.oracle else args.adapt_steps
    trace = adaptation_trace(
        loaded.policy,
        loaded.params,
        loaded.batched_env(args.episodes),
        [task],
        args.episodes,
        loaded.schedule(steps, args.inner_lr),
        loaded.config.gamma,
        loaded.config.gae_lambda,
        seed=args.seed,
        estimator=loaded.config.inner_estimator,
        adapted_names=loaded.adapted_names,
        normalize_advantages=loaded.config.normalize_advantages,
    )
    if loaded.config.env != NAVIGATION:
        path = render_gif(loaded, task, trace, args.out, args.seed)
        print(f"wrote {path}")
        return 0
    stages, mean_paths = [], []
    for stage in trace:
        deterministic = rollouts(
            loaded.policy,
            stage.params,
            loaded.batched_env(1),
            [task],
            1,
            torch.Generator(),
            per_task=stage.per_task,
            deterministic=True,
        )
        mean_paths += episode_paths(
            deterministic.observations[:, 0].numpy(),
            deterministic.actions[:, 0].numpy(),
            deterministic.mask[:, 0].numpy(),
        )
        episodes = stage.episodes
        paths = episode_paths(
            episodes.observations[:, 0].numpy(),
            episodes.actions[:, 0].numpy(),
            episodes.mask[:, 0].numpy(),
        )
        mean_return = float(episodes.episode_returns()[0].mean())
        name = "before adaptation" if stage.step == 0 else f"after {stage.step} step(s)"
        if loaded.oracle:
            name = "oracle (observes the goal)"
        stages.append((f"{name} (return {mean_return:.1f})", paths[: args.show]))
    goal = task["goal"]
    title = f"{args.run_dir.name}: goal ({goal[0]:.2f}, {goal[1]:.2f})"
    path = plot_navigation_paths(goal, stages, args.out, title, mean_paths=mean_paths)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run_script(main)
