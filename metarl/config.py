"""Meta-training configuration: one dataclass, per-env presets, validation, and the CLI.

Field docstrings (``help`` metadata) become the ``--help`` text. A config is resolved
once as ``defaults <- env preset <- command line`` and never mutated afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import typing
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from metarl import cli

ALGORITHMS = ("maml-trpo", "promp", "reptile")
ESTIMATORS = ("reinforce", "lvc", "dice")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a meta-training run (the paper's 2D-navigation settings by default)."""

    env: str = _opt("metarl/Navigation2D-v0", "environment id (task distribution)")
    algo: str = _opt("maml-trpo", "outer algorithm", choices=ALGORITHMS)
    iterations: int = _opt(500, "number of meta-iterations", minimum=1, maximum=10**7)
    seed: int = _opt(0, "random seed (tasks, actions, env noise)", minimum=0, maximum=2**32 - 1)
    meta_batch_size: int = _opt(20, "tasks per meta-iteration", minimum=1, maximum=10**4)
    episodes_per_task: int = _opt(
        20, "episodes per task per inner step (K)", minimum=1, maximum=10**5
    )
    batch_per_task: str = _opt(
        "episodes",
        "what a task's batch holds: 'episodes' = exactly K episodes; 'steps' = the paper's "
        "sampler, whole episodes until at least K x horizon steps, so episodes that end early "
        "(Ant's falls, goals reached) are made up for (up to horizon x more memory and outer-"
        "step work when episodes are short)",
        choices=("episodes", "steps"),
    )
    inner_steps: int = _opt(1, "inner gradient steps at training time", minimum=1, maximum=100)
    inner_lr: float = _opt(0.1, "inner step size alpha", positive=True, maximum=100.0)
    first_order: bool = _opt(False, "first-order MAML: no gradient through the inner step")
    inner_estimator: str = _opt(
        "reinforce", "inner policy-gradient objective (promp defaults to lvc)", choices=ESTIMATORS
    )
    meta_sgd: bool = _opt(False, "Meta-SGD: meta-learn a step size per parameter entry")
    anil: bool = _opt(False, "ANIL: adapt only the policy's last layer in the inner loop")
    gamma: float = _opt(0.99, "discount factor", interval=(0.0, 1.0))
    gae_lambda: float = _opt(
        1.0, "GAE lambda (1 = Monte-Carlo returns minus baseline)", interval=(0.0, 1.0)
    )
    normalize_advantages: bool = _opt(True, "normalize advantages per task")
    hidden_sizes: tuple[int, ...] = _opt((100, 100), "hidden layer sizes of the policy MLP")
    activation: str = _opt("relu", "hidden activation", choices=("relu", "tanh"))
    init_std: float = _opt(
        1.0,
        "initial action standard deviation (policy units, actions in [-1, 1])",
        positive=True,
        maximum=1000.0,
    )
    init: str = _opt(
        "glorot",
        "policy initialisation: glorot (the paper's: Glorot-uniform weights, zero biases) "
        "or torch (PyTorch's nn.Linear default)",
        choices=("glorot", "torch"),
    )
    max_kl: float = _opt(
        0.01,
        "TRPO trust region: max mean KL of the post-update policies",
        positive=True,
        maximum=10.0,
        sensible=0.1,
    )
    cg_iterations: int = _opt(10, "conjugate-gradient iterations", minimum=1, maximum=10**4)
    cg_damping: float = _opt(1e-5, "damping added to the KL Hessian", minimum=0, maximum=1e6)
    line_search_steps: int = _opt(15, "backtracking line-search steps", minimum=1, maximum=1000)
    line_search_ratio: float = _opt(0.8, "line-search shrink factor", interval=(0.0, 1.0))
    fisher_subsample: float = _opt(
        1.0,
        "fraction of episodes used for KL Hessian-vector products (1 = exact)",
        interval=(0.0, 1.0),
    )
    promp_learning_rate: float = _opt(
        1e-3, "ProMP: Adam learning rate", positive=True, maximum=10.0
    )
    promp_outer_steps: int = _opt(5, "ProMP: Adam steps per meta-batch", minimum=1, maximum=10**4)
    promp_clip: float = _opt(
        0.3, "ProMP: clipping range of the likelihood ratio", positive=True, maximum=10.0
    )
    promp_kl_coeff: float = _opt(
        5e-4, "ProMP: initial KL penalty coefficient eta", minimum=0, maximum=1e6
    )
    promp_adaptive_kl: bool = _opt(False, "ProMP: adapt eta towards promp_kl_target")
    promp_kl_target: float = _opt(
        0.01, "ProMP: KL target of the adaptive penalty", positive=True, maximum=10.0
    )
    reptile_step_size: float = _opt(
        0.1, "Reptile: outer step size epsilon", positive=True, maximum=10.0
    )
    checkpoint_every: int = _opt(10, "save a checkpoint every N iterations", minimum=1)
    keep_checkpoints: int = _opt(
        3, "numbered checkpoints to keep (plus latest and best)", minimum=1
    )
    snapshot_every: int = _opt(
        25,
        "keep a snapshot every N iterations for ever (checkpoints/snapshot_*.pt; the paper "
        "kept one every 25); evaluate.py --select picks among them on validation tasks",
        minimum=1,
    )
    threads: int = _opt(2, "torch CPU threads", minimum=1, maximum=1024)
    precision: str = _opt(
        "float32",
        "floating-point type of the policy, the rollouts and the outer step; float64 is "
        "slower but reproducible to ~1e-9 across numbers of ranks (TRPO's conjugate gradient "
        "magnifies float32 rounding by up to the Fisher's largest eigenvalue / cg_damping)",
        choices=("float32", "float64"),
    )
    device: str = _opt(
        "cpu",
        "where the outer step (and the inner loop inside it) runs: cpu, cuda or cuda:N; "
        "sampling and checkpoints stay on the CPU",
    )
    max_consecutive_failures: int = _opt(
        10, "stop after this many consecutive rejected (non-finite) updates", minimum=1
    )

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def for_env(
        cls, env: str = "metarl/Navigation2D-v0", algo: str = "maml-trpo", **overrides: Any
    ) -> TrainConfig:
        """The paper's settings for ``env`` and ``algo`` (:func:`preset_for`), then ``overrides``.

        ``TrainConfig(env=...)`` alone keeps the field defaults (2D navigation's); this is
        what ``scripts/train.py --env ...`` resolves to. Unknown keys are refused by name.
        """
        return config_from_dict({**preset_for(env, algo), "env": env, "algo": algo, **overrides})

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        return values


# The settings of the snapshots behind the paper's table, read from its original code
# (shared/REFERENCE.md 1b): trajectories per inner step (fbs), tasks per meta-batch (mbs),
# inner step (flr) and max KL (mlr). The paper's text says alpha = 0.1 everywhere; its
# 2D-navigation file used 0.5, and that file's settings are what produced its numbers.
ENV_PRESETS: dict[str, dict[str, Any]] = {
    "metarl/Navigation2D-v0": {
        "meta_batch_size": 20,
        "episodes_per_task": 20,
        "inner_lr": 0.5,
        "max_kl": 0.01,
    },
    "metarl/HalfCheetahVel-v0": {"episodes_per_task": 10},
    "metarl/HalfCheetahDir-v0": {"max_kl": 0.02},
    "metarl/AntVel-v0": {},
    "metarl/AntDir-v0": {"episodes_per_task": 40},
    "metarl/AntGoal-v0": {},  # not in the paper: the locomotion defaults
    # the README's worked example (not in the paper): 2D navigation's batch, alpha 0.1
    # (measured: 2D navigation's 0.5 made post-adaptation returns worse as training went on)
    "metarl/MiscalibratedPoint-v0": {
        "meta_batch_size": 20,
        "episodes_per_task": 20,
        "inner_lr": 0.1,
        "max_kl": 0.01,
    },
}
# Meta-World (not in the MAML paper; our choice): Meta-World's protocol adapts on 10
# episodes per task, so 10 per inner step; 20 tasks per meta-batch to keep an iteration
# affordable (its episodes are 500 steps long)
METAWORLD_PRESET: dict[str, Any] = {
    "meta_batch_size": 20,
    "episodes_per_task": 10,
    "inner_lr": 0.1,
    "max_kl": 0.01,
}
LOCOMOTION_ENVS = (
    "metarl/HalfCheetahVel-v0",
    "metarl/HalfCheetahDir-v0",
    "metarl/AntVel-v0",
    "metarl/AntDir-v0",
    "metarl/AntGoal-v0",
)
LOCOMOTION_PRESET: dict[str, Any] = {
    "meta_batch_size": 40,
    "episodes_per_task": 20,
    "inner_lr": 0.1,
    "max_kl": 0.01,
}


@dataclass(frozen=True)
class EvaluationProtocol:
    """How the paper evaluated an env: trajectories per adaptation step, and the ratio of
    later step sizes to the first (``alpha, ratio * alpha, ...``)."""

    episodes: int = 20
    later_step_ratio: float = 0.5


EVALUATION_PROTOCOLS: dict[str, EvaluationProtocol] = {
    "metarl/Navigation2D-v0": EvaluationProtocol(episodes=40),  # 0.5 then 0.25
    "metarl/AntDir-v0": EvaluationProtocol(episodes=40, later_step_ratio=0.01),  # 0.1 then 0.001
}
METAWORLD_PROTOCOL = EvaluationProtocol(episodes=10)  # Meta-World's 10 adaptation episodes


def evaluation_protocol(env_id: str) -> EvaluationProtocol:
    """The paper's test protocol for ``env_id`` (20 trajectories, alpha then alpha/2 if unlisted)."""
    if env_id.startswith("metarl/MetaWorld-"):
        return METAWORLD_PROTOCOL
    return EVALUATION_PROTOCOLS.get(env_id, EvaluationProtocol())


ALGORITHM_PRESETS: dict[str, dict[str, Any]] = {"promp": {"inner_estimator": "lvc"}}


def preset_for(env_id: str, algo: str = "maml-trpo") -> dict[str, Any]:
    """The paper's hyperparameters for ``env_id`` (see :data:`ENV_PRESETS`) and ``algo``.

    An env the toolkit does not know (a user's ``module:EnvId``) gets the field defaults.
    """
    env_preset = ENV_PRESETS.get(env_id, {})
    base = LOCOMOTION_PRESET if env_id in LOCOMOTION_ENVS else {}
    if env_id.startswith("metarl/MetaWorld-"):
        base = METAWORLD_PRESET
    return {**base, **env_preset, **ALGORITHM_PRESETS.get(algo, {})}


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


MAX_HIDDEN_LAYERS, MAX_HIDDEN_UNITS = 16, 65536


def _check_type(name: str, kind: Any, value: Any) -> None:
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"config {name!r} must be true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"config {name!r} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config {name!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"config {name!r} must be a finite number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"config {name!r} must be a string, got {value!r}")


def _check_range(name: str, meta: Mapping[str, Any], value: Any) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"config {name!r} must be one of {list(meta['choices'])}, got {value!r}")
    if "minimum" in meta and value < meta["minimum"]:
        raise ValueError(f"config {name!r} must be >= {meta['minimum']}, got {value!r}")
    if meta.get("positive") and not value > 0:
        raise ValueError(f"config {name!r} must be positive, got {value!r}")
    if "interval" in meta:
        low, high = meta["interval"]
        if name in ("gamma", "gae_lambda"):  # 0 is allowed: no discounting, TD(0)
            if not low <= value <= high:
                raise ValueError(f"config {name!r} must be in [{low}, {high}], got {value!r}")
        elif not low < value <= high:
            raise ValueError(f"config {name!r} must be in ({low}, {high}], got {value!r}")
    if "maximum" in meta and value > meta["maximum"]:
        raise ValueError(
            f"config {name!r} must be <= {meta['maximum']} (larger cannot run sensibly), "
            f"got {value!r}"
        )
    if "sensible" in meta and value > meta["sensible"]:
        warnings.warn(
            f"config {name!r} = {value!r} is far above any sensible value (the paper's are "
            f"0.01-0.02; above {meta['sensible']:g} the trust region no longer holds the "
            "step near the data)",
            UserWarning,
            stacklevel=4,
        )


DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


def validate(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first field whose type or value is wrong.

    Numbers must be finite and inside a range that can run; a legal but unusual value
    (a trust region far beyond any sensible KL) gets a warning.
    """
    hints = typing.get_type_hints(TrainConfig)
    for name, spec in _fields().items():
        value = getattr(config, name)
        _check_type(name, hints[name], value)
        _check_range(name, spec.metadata, value)
    if not DEVICE_PATTERN.fullmatch(config.device):
        raise ValueError(f"config 'device' must be cpu, cuda or cuda:N, got {config.device!r}")
    sizes = config.hidden_sizes
    if not isinstance(sizes, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_HIDDEN_UNITS for s in sizes
    ):
        raise ValueError(
            f"config 'hidden_sizes' must be integers in [1, {MAX_HIDDEN_UNITS}], got {sizes!r}"
        )
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise ValueError(
            f"config 'hidden_sizes' may have at most {MAX_HIDDEN_LAYERS} layers, got {len(sizes)}"
        )


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a config from a mapping (e.g. ``config.json``), rejecting unknown keys by name."""
    if not isinstance(values, dict):
        raise ValueError(f"a config must be a JSON object, got {type(values).__name__}")
    known = _fields()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
    values = dict(values)
    if "hidden_sizes" in values:
        if not isinstance(values["hidden_sizes"], list | tuple):
            raise ValueError(
                f"config 'hidden_sizes' must be a list, got {values['hidden_sizes']!r}"
            )
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    return TrainConfig(**values)


def load_config(path: str) -> TrainConfig:
    """Read and validate a ``config.json``; a malformed file gets an error naming it."""
    try:
        with open(path) as handle:
            values = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    return config_from_dict(values)


def _flag_type(name: str, kind: Any, meta: Mapping[str, Any]) -> Callable[[str], Any]:
    """The argparse type of a field: its type, finiteness and range checked at parse time."""
    if kind is int:
        return cli.integer(meta.get("minimum", 0), meta.get("maximum", cli.MAX_COUNT))
    if kind is float:
        maximum = meta.get("maximum", math.inf)
        if "interval" in meta:
            low, high = meta["interval"]
            closed = name in ("gamma", "gae_lambda")  # 0 is allowed: no discounting
            return cli.number(low, high, open_minimum=not closed)
        if meta.get("positive"):
            return cli.number(0.0, maximum, open_minimum=True)
        return cli.number(meta.get("minimum", -math.inf), maximum)
    return kind


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per config field, with its help text; unset flags stay ``None``."""
    hints = typing.get_type_hints(TrainConfig)
    for name, spec in _fields().items():
        flag = cli.flag(name)
        help_text = f"{spec.metadata['help']} (default: {spec.default})"
        kind = hints[name]
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif name == "hidden_sizes":
            parser.add_argument(
                flag,
                type=cli.integer(1, MAX_HIDDEN_UNITS),
                nargs="+",
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag,
                type=_flag_type(name, kind, spec.metadata),
                default=None,
                help=help_text,
                choices=spec.metadata.get("choices"),
            )


def given_keys(args: argparse.Namespace) -> set[str]:
    """The config keys whose flags were given on the command line (unset flags are None)."""
    return {name for name in _fields() if getattr(args, name, None) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Resolve ``defaults <- preset(env) <- command line`` into a validated config."""
    given = {name: getattr(args, name) for name in given_keys(args)}
    try:
        return TrainConfig.for_env(**given)
    except ValueError as error:  # name the flag, not the config key
        message = re.sub(r"config '(\w+)'", lambda m: cli.flag(m.group(1)), str(error))
        raise ValueError(message) from None


# What a resumed run may change: how long and how it runs, not what it computes.
RESUMABLE_KEYS = frozenset(
    {
        "iterations",
        "threads",
        "device",
        "checkpoint_every",
        "keep_checkpoints",
        "snapshot_every",
        "max_consecutive_failures",
    }
)


def resume_conflicts(
    saved: TrainConfig, wanted: TrainConfig, given: Collection[str] | None = None
) -> list[str]:
    """The keys of ``given`` (default: all) outside :data:`RESUMABLE_KEYS` on which
    ``wanted`` differs from a run's ``saved`` config, each as ``key (--flag): saved there,
    wanted here``."""
    keys = _fields() if given is None else given
    return [
        f"{key} ({cli.flag(key)}): {getattr(saved, key)!r} there, {getattr(wanted, key)!r} here"
        for key in sorted(keys)
        if key not in RESUMABLE_KEYS and getattr(saved, key) != getattr(wanted, key)
    ]


def resumed_config(
    saved: TrainConfig, wanted: TrainConfig, given: Collection[str] | None = None
) -> TrainConfig:
    """The config a run resumes with: ``saved``, with the :data:`RESUMABLE_KEYS` among
    ``given`` (default: all keys) taken from ``wanted``.

    Refuses (``ValueError``, naming each) a given key outside them that ``wanted`` sets to
    another value: silently training with the saved one would mislead.
    """
    keys = set(_fields()) if given is None else set(given)
    conflicts = resume_conflicts(saved, wanted, keys)
    if conflicts:
        allowed = ", ".join(cli.flag(key) for key in sorted(RESUMABLE_KEYS))
        raise ValueError(
            f"cannot resume with settings other than its config.json's "
            f"({'; '.join(conflicts)}). A resumed run keeps its settings except {allowed}; "
            "start another run folder to change the others"
        )
    changes = {key: getattr(wanted, key) for key in RESUMABLE_KEYS & keys}
    return dataclasses.replace(saved, **changes)
