"""Meta-World (Farama, v3) benchmarks as task distributions: ML1 (one skill, 50 goal
positions per split) and ML10 (10 training skills; its 5 test skills are held out).

Optional: ``pip install -e ".[metaworld]"`` in its own environment (Meta-World pins MuJoCo
3.3.0; ``bash scripts/setup.sh --metaworld`` makes ``.venv-metaworld``). A task is a
reference into the benchmark's task list, built with a fixed ``benchmark_seed``::

    {"split": "train", "env_name": "reach-v3", "index": 17}

so it round-trips through JSON. ``sample_tasks`` draws training tasks;
``sample_test_tasks`` (what evaluation uses) draws the held-out split: ML1's test goals,
ML10's test skills. Observations are Meta-World's 39 numbers with the goal hidden (its
meta-learning setting); every step's ``info["success"]`` is passed on, and an episode
succeeds if it is ever 1 (Meta-World's protocol). Episodes last 500 steps.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.base import Task, TaskEnv, require_keys

HORIZON = 500
SPLITS = ("train", "test")


def import_metaworld():
    """The ``metaworld`` module, or an error saying how to install it."""
    try:
        import metaworld
    except ImportError as error:
        raise ImportError(
            "Meta-World is not installed in this environment. It pins MuJoCo 3.3.0, so it gets "
            "its own: bash scripts/setup.sh --metaworld, then use .venv-metaworld/bin/python "
            f"({error})"
        ) from error
    return metaworld


@functools.lru_cache(maxsize=8)
def benchmark_of(benchmark: str, env_name: str, seed: int) -> Any:
    """Meta-World's benchmark object (its task lists), built once per process: ML10 takes
    about 9 s to build, and every copy of the env shares it."""
    metaworld = import_metaworld()
    if benchmark == "ML1":
        return metaworld.ML1(env_name, seed=seed)
    if benchmark == "ML10":
        return metaworld.ML10(seed=seed)
    raise ValueError(f"benchmark must be 'ML1' or 'ML10', got {benchmark!r}")


class MetaWorldTaskEnv(TaskEnv, gym.Env):
    """A Meta-World meta-learning benchmark (``ML1`` of one skill, or ``ML10``) as one env."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self, benchmark: str = "ML1", env_name: str = "reach-v3", benchmark_seed: int = 0
    ) -> None:
        self.benchmark = benchmark_of(benchmark, env_name, benchmark_seed)
        self.classes = {**self.benchmark.train_classes, **self.benchmark.test_classes}
        self.tasks = {"train": self.benchmark.train_tasks, "test": self.benchmark.test_tasks}
        self._envs: dict[str, gym.Env] = {}
        first = self._env(next(iter(self.benchmark.train_classes)))
        low, high = first.observation_space.low, first.observation_space.high
        self.observation_space = gym.spaces.Box(
            low.astype(np.float32), high.astype(np.float32), dtype=np.float32
        )
        self.action_space = first.action_space
        self.set_task({"split": "train", "env_name": self.tasks["train"][0].env_name, "index": 0})

    def _env(self, env_name: str) -> gym.Env:
        """The Meta-World env of ``env_name``'s skill. Only the current skill's is kept
        (about 19 MB and 0.2 s each): ML10's batched copies would hold 15 apiece."""
        if env_name not in self._envs:
            for other in self._envs.values():
                other.close()
            env = self.classes[env_name]()
            env.max_path_length = HORIZON
            self._envs = {env_name: env}
        return self._envs[env_name]

    # --- the task distribution -------------------------------------------------------
    def _sample(self, split: str, n: int, rng: np.random.Generator) -> list[Task]:
        tasks = self.tasks[split]
        indices = rng.choice(len(tasks), size=n, replace=n > len(tasks))
        return [{"split": split, "env_name": tasks[i].env_name, "index": int(i)} for i in indices]

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return self._sample("train", n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return self._sample("test", n, rng)

    def validate_task(self, task: Mapping[str, Any]) -> Task:
        require_keys(task, ["split", "env_name", "index"], "MetaWorld")
        split, index = task["split"], task["index"]
        if split not in SPLITS:
            raise ValueError(f"MetaWorld: split must be one of {SPLITS}, got {split!r}")
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ValueError(f"MetaWorld: index must be an integer, got {index!r}")
        if not 0 <= index < len(self.tasks[split]):
            raise ValueError(f"MetaWorld: index {index} outside the {split} split's tasks")
        if self.tasks[split][index].env_name != task["env_name"]:
            raise ValueError(
                f"MetaWorld: {split} task {index} is a {self.tasks[split][index].env_name} task, "
                f"not {task['env_name']!r}"
            )
        return {"split": split, "env_name": task["env_name"], "index": int(index)}

    def set_task(self, task: Mapping[str, Any]) -> None:
        super().set_task(task)
        task = self.task
        self._current = self._env(task["env_name"])
        self._current.set_task(self.tasks[task["split"]][task["index"]])

    # --- a plain Gymnasium env ---------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        obs, info = self._current.reset(seed=seed)
        return obs.astype(np.float32), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self._current.step(action)
        return obs.astype(np.float32), float(reward), terminated, truncated, info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
