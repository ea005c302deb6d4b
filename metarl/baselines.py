"""The paper's comparison policies, trained with Stable-Baselines3 PPO on metarl's envs.

- ``pretrained``: one policy trained on the whole task distribution; the task is resampled
  at every reset and not observed (:class:`TaskResampling`). Fine-tuned at evaluation time
  with the same inner step as MAML.
- ``oracle``: a policy that observes the task parameters (:class:`envs.OracleObservation`);
  evaluated without adaptation.
- ``random``: a freshly initialised :class:`~metarl.policies.GaussianMLPPolicy` (the same
  initialisation meta-training starts from); fine-tuned at evaluation time.

The SB3 actor is built with exactly our policy's layout (``net_arch.pi`` = hidden sizes,
same activation, state-independent ``log_std``) so :func:`sb3_to_params` maps it onto
``GaussianMLPPolicy`` parameters one to one. A baseline is saved like a training run
(``checkpoints/latest.pt`` in the trainer's format, with a ``baseline`` entry naming its
kind), so ``scripts/evaluate.py`` loads it as it loads a run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from envs import OracleObservation, PolicyActions, TaskEnv, make_task_env, register_all
from envs.task_api import require_task_vector
from metarl.checkpoint import atomic_write, save_checkpoint
from metarl.config import TrainConfig
from metarl.policies import ACTIVATIONS, GaussianMLPPolicy, Params, policy_params

KINDS = ("pretrained", "oracle", "random")


class TaskResampling(gym.Wrapper):
    """Draws a new task from the env's distribution at every reset (``options={"task": ...}``).

    The task is not observed: a policy trained through this wrapper is the paper's
    multi-task "pretrained" baseline. Wrap it around :class:`envs.OracleObservation` to
    get the oracle's training env (the oracle wrapper then appends the new task).
    """

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self.task_env: TaskEnv = env.unwrapped  # type: ignore[assignment]
        self.task_rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        (task,) = self.task_env.sample_tasks(1, self.task_rng)
        self.task_env.set_task(task)  # the minimal task API: reset need not take a task
        return self.env.reset(seed=seed, options=options)


def make_training_env(env_id: str, kind: str, seed: int) -> gym.Env:
    """A single Gymnasium env for PPO: task resampled every episode, task observed if oracle,
    actions in policy units (:class:`envs.PolicyActions`)."""
    if kind not in ("pretrained", "oracle"):
        raise ValueError(f"only 'pretrained' and 'oracle' baselines are trained, got {kind!r}")
    # validates the id (and the oracle's task_vector) with a helpful error
    require_task_vector(env_id) if kind == "oracle" else make_task_env(env_id)
    register_all()
    env = gym.make(env_id)
    if kind == "oracle":
        # OracleObservation reads task_vector from the env it wraps, so it goes right around
        # the bare task env; the episode time limit is put back around it.
        horizon = env.spec.max_episode_steps if env.spec else None
        env = gym.wrappers.TimeLimit(OracleObservation(env.unwrapped), horizon)
    # PPO acts in policy units [-1, 1], like the meta-learned policies it is compared with
    return TaskResampling(PolicyActions(env), seed)


@dataclass(frozen=True)
class PPOSettings:
    """Stable-Baselines3 PPO hyperparameters of a baseline (SB3's defaults unless noted)."""

    timesteps: int = 200_000
    num_envs: int = 8
    n_steps: int = 256  # per env per rollout: 2048 steps per update with 8 envs
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0


def sb3_policy_kwargs(hidden_sizes: tuple[int, ...], activation: str, init_std: float) -> dict:
    """``policy_kwargs`` giving an SB3 actor with exactly ``GaussianMLPPolicy``'s layout."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    return {
        "net_arch": {"pi": list(hidden_sizes), "vf": list(hidden_sizes)},
        "activation_fn": ACTIVATIONS[activation],
        "log_std_init": math.log(init_std),
    }


def sb3_to_params(sb3_policy: nn.Module) -> Params:
    """Our ``GaussianMLPPolicy`` parameters from an SB3 ``ActorCriticPolicy``'s actor.

    ``mlp_extractor.policy_net.{i}`` -> ``mean.{i}`` and ``action_net`` -> ``mean.{last}``
    (our ``mean`` Sequential has the same Linear/activation interleaving);
    ``log_std`` -> ``log_std``. The critic is dropped.
    """
    if getattr(sb3_policy, "squash_output", False) or not hasattr(sb3_policy, "log_std"):
        raise ValueError("only SB3 diagonal-Gaussian actors (no squashing, no gSDE) can be mapped")
    params: Params = {}
    hidden = sb3_policy.mlp_extractor.policy_net
    last = 0
    for index, layer in enumerate(hidden):
        if isinstance(layer, nn.Linear):
            params[f"mean.{index}.weight"] = layer.weight.detach().clone()
            params[f"mean.{index}.bias"] = layer.bias.detach().clone()
        last = index + 1
    params[f"mean.{last}.weight"] = sb3_policy.action_net.weight.detach().clone()
    params[f"mean.{last}.bias"] = sb3_policy.action_net.bias.detach().clone()
    params["log_std"] = sb3_policy.log_std.detach().clone()
    return params


def baseline_config(
    env_id: str,
    hidden_sizes: tuple[int, ...],
    activation: str,
    inner_lr: float,
    init_std: float = 1.0,
    seed: int = 0,
    gamma: float = 0.99,
) -> TrainConfig:
    """The ``TrainConfig`` stored with a baseline: architecture and fine-tuning step size."""
    return TrainConfig(
        env=env_id,
        seed=seed,
        hidden_sizes=tuple(hidden_sizes),
        activation=activation,
        inner_lr=inner_lr,
        init_std=init_std,
        gamma=gamma,
    )


def check_params_fit(params: Params, policy: GaussianMLPPolicy) -> None:
    expected = {name: tuple(value.shape) for name, value in policy.named_parameters()}
    found = {name: tuple(value.shape) for name, value in params.items()}
    if expected != found:
        raise ValueError(f"parameters {found} do not fit the policy {expected}")


def policy_dims(env_id: str, oracle: bool) -> tuple[int, int]:
    """Observation and action sizes of a (possibly oracle) policy for ``env_id``."""
    env = make_task_env(env_id)
    obs_dim = int(np.prod(env.observation_space.shape))
    if oracle:
        obs_dim += int(env.task_vector(env.task).shape[0])
    return obs_dim, int(np.prod(env.action_space.shape))


@dataclass
class BaselineResult:
    kind: str
    out_dir: Path
    params: Params
    env_steps: int
    wall_time_s: float


def train_baseline(
    kind: str,
    out_dir: str | Path,
    config: TrainConfig,
    ppo: PPOSettings | None = None,
    seed: int = 0,
    tensorboard: bool = True,
    verbose: int = 0,
) -> BaselineResult:
    """Train (or, for ``random``, initialise) a baseline and save it in ``out_dir``.

    Writes ``checkpoints/latest.pt`` (the trainer's checkpoint format plus a ``baseline``
    entry), ``baseline.json`` (kind, PPO settings, budget, wall time), and for PPO baselines
    SB3's own TensorBoard logs under ``ppo/``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; choose from {list(KINDS)}")
    out_dir = Path(out_dir)
    if (out_dir / "checkpoints" / "latest.pt").exists():
        raise FileExistsError(f"{out_dir} already holds a checkpoint; choose another folder")
    ppo = ppo or PPOSettings()
    oracle = kind == "oracle"
    obs_dim, act_dim = policy_dims(config.env, oracle)
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, config.hidden_sizes, config.activation, config.init_std
    )
    start = time.perf_counter()
    env_steps = 0
    if kind == "random":
        params = policy_params(policy)
    else:
        from stable_baselines3 import PPO
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        vec_env = DummyVecEnv(
            [
                (lambda i=i: Monitor(make_training_env(config.env, kind, seed * 1000 + i)))
                for i in range(ppo.num_envs)
            ]
        )
        model = PPO(
            "MlpPolicy",
            vec_env,
            learning_rate=ppo.learning_rate,
            n_steps=ppo.n_steps,
            batch_size=ppo.batch_size,
            n_epochs=ppo.n_epochs,
            gamma=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clip_range=ppo.clip_range,
            ent_coef=ppo.ent_coef,
            policy_kwargs=sb3_policy_kwargs(
                config.hidden_sizes, config.activation, config.init_std
            ),
            tensorboard_log=str(out_dir / "ppo") if tensorboard else None,
            seed=seed,
            device="cpu",
            verbose=verbose,
        )
        model.learn(total_timesteps=ppo.timesteps, tb_log_name=kind, progress_bar=False)
        params = sb3_to_params(model.policy)
        env_steps = int(model.num_timesteps)
        vec_env.close()
    check_params_fit(params, policy)
    wall_time = time.perf_counter() - start
    info = {
        "kind": kind,
        "oracle": oracle,
        "seed": seed,
        "ppo": asdict(ppo) if kind != "random" else None,
        "wall_time_s": wall_time,
    }
    payload = {
        "config": config.to_dict(),
        "params": params,
        "iteration": 0,
        "env_steps": env_steps,
        "best_return": float("nan"),
        "baseline": json.dumps(info),
    }
    save_checkpoint(out_dir / "checkpoints" / "latest.pt", payload)
    text = json.dumps({**info, "env_steps": env_steps, "config": config.to_dict()}, indent=2)
    atomic_write(out_dir / "baseline.json", lambda file: file.write(text.encode()))
    return BaselineResult(kind, out_dir, params, env_steps, wall_time)


def baseline_info(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``baseline`` entry of a checkpoint payload (``None`` for a meta-training run)."""
    info = payload.get("baseline")
    if info is None:
        return None
    return json.loads(info) if isinstance(info, str) else dict(info)
