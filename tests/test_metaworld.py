"""Meta-World as task distributions, and Meta-World's success criterion.

The Meta-World tests run only where the optional extra is installed (its own environment:
``bash scripts/setup.sh --metaworld``; ``.ci/run`` runs them there). The success criterion
is checked everywhere, on a task family defined in the tests.
"""

import importlib.util
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import make_task_env
from metarl.episodes import Episodes
from metarl.policies import GaussianMLPPolicy, policy_params
from metarl.sampler import rollouts

ML1 = "metarl/MetaWorld-ML1-reach-v0"


def test_success_rate_counts_an_episode_whose_success_was_ever_1():
    shape = (4, 1, 3)  # T, tasks, episodes
    successes = torch.zeros(shape)
    successes[1, 0, 0] = 1.0  # episode 0: success at step 1, then lost: still a success
    successes[3, 0, 1] = 1.0  # episode 1: "success" after it ended (masked): not one
    mask = torch.ones(shape)
    mask[3, 0, 1] = 0.0
    episodes = Episodes(
        torch.zeros(*shape, 1),
        torch.zeros(*shape, 1),
        torch.zeros(shape),
        mask,
        successes=successes,
    )
    assert episodes.success_rate().tolist() == [pytest.approx(1 / 3)]
    assert (
        Episodes(
            torch.zeros(*shape, 1), torch.zeros(*shape, 1), torch.zeros(shape), mask
        ).success_rate()
        is None
    )


def test_sampler_reads_info_success_from_the_env():
    env_id = "tests.task_families:LineGoal-v0"
    task_env = make_task_env(env_id)
    batched = task_env.batched(4)
    start, _ = gym.make(env_id).reset(seed=0)  # copy 0 (seed 0) starts on its goal
    tasks = [{"goal": float(start[0])}, {"goal": 0.9}]
    policy = GaussianMLPPolicy(1, 1, (4,), "tanh", 1e-6, "torch")
    params = {name: torch.zeros_like(value) for name, value in policy_params(policy).items()}
    params["log_std"] = torch.full_like(params["log_std"], -20.0)  # a policy that stands still
    episodes = rollouts(
        policy, params, batched, tasks, 2, torch.Generator().manual_seed(0), env_seed=0
    )
    assert episodes.successes is not None
    rates = episodes.success_rate().tolist()
    assert rates[0] == 0.5 and rates[1] == 0.0  # copy 0 reached its goal at once, copy 1 did not


requires_metaworld = pytest.mark.skipif(
    importlib.util.find_spec("metaworld") is None,
    reason="the Meta-World extra is not installed here (bash scripts/setup.sh --metaworld)",
)


@requires_metaworld
def test_ml1_tasks_sample_reproducibly_and_round_trip_through_json():
    env = make_task_env(ML1)
    first = env.sample_tasks(5, np.random.default_rng(7))
    assert first == env.sample_tasks(5, np.random.default_rng(7))
    assert json.loads(json.dumps(first)) == first
    test = env.sample_test_tasks(5, np.random.default_rng(7))
    assert {t["split"] for t in first} == {"train"} and {t["split"] for t in test} == {"test"}
    goals = set()
    for task in first[:2]:  # different tasks: different hidden goals
        env.set_task(task)
        env.reset(seed=0)
        goals.add(tuple(np.round(env._current._target_pos, 6)))
    assert len(goals) == 2
    with pytest.raises(ValueError, match="is a reach-v3 task, not 'push-v3'"):
        env.set_task({**first[0], "env_name": "push-v3"})


@requires_metaworld
def test_ml10_holds_out_its_test_skills():
    env = make_task_env("metarl/MetaWorld-ML10-v0")
    train = {t["env_name"] for t in env.sample_tasks(200, np.random.default_rng(0))}
    test = {t["env_name"] for t in env.sample_test_tasks(100, np.random.default_rng(0))}
    assert len(train) == 10 and len(test) == 5 and not train & test


@requires_metaworld
def test_one_training_iteration_on_ml1_reach_logs_success(tmp_path):
    from metarl.config import TrainConfig
    from metarl.trainer import Trainer

    config = TrainConfig.for_env(
        ML1, iterations=1, meta_batch_size=2, episodes_per_task=2, hidden_sizes=(8, 8), threads=1
    )
    metrics = Trainer(config, tmp_path / "run").run(progress=False)
    assert "charts/success_rate_post_adaptation" in metrics
    assert 0.0 <= metrics["charts/success_rate_post_adaptation"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
