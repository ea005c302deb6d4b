"""The paper's batch per task (``batch_per_task="steps"``): whole episodes until a task has
at least K x H steps, episodes that end early made up for."""

from __future__ import annotations

import numpy as np
import torch

from envs import make_task_env
from metarl.config import TrainConfig
from metarl.episodes import Episodes
from metarl.sampler import rollouts, rollouts_of_min_steps
from metarl.trainer import Trainer, initial_meta_params, make_policy

ENV = "tests.task_families:LineGoal-v0"  # ends on reaching the goal; horizon 20
K = 4


def setup(tasks):
    env = make_task_env(ENV)
    config = TrainConfig(env=ENV, hidden_sizes=(8,), init_std=3.0)  # wide: goals get reached
    torch.manual_seed(0)
    policy = make_policy(config, env)
    return env, policy, initial_meta_params(config, policy)


def generators(seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def test_every_task_gets_whole_episodes_until_it_has_k_times_h_steps():
    tasks = [{"goal": g} for g in (0.05, 0.9, -0.1, 0.3, -0.02, 0.6)]
    env, policy, params = setup(tasks)
    batch = rollouts_of_min_steps(
        policy, params, env.batched(len(tasks) * K), tasks, K, generators(range(6)), 7
    )
    target = K * 20  # the horizon LineGoal-v0 is registered with
    lengths = batch.mask.sum(0)  # [tasks, slots]
    steps = lengths.sum(1)
    assert (steps >= target).all()
    counts = batch.present.sum(1).long()
    last = lengths[torch.arange(len(tasks)), counts - 1]
    assert (steps - last < target).all()  # whole episodes, none more than needed
    assert (counts > K).any()  # some task made up for episodes that ended early
    # each present slot holds one episode from its start; unused slots are empty
    assert torch.equal(batch.mask, torch.cummin(batch.mask, dim=0).values)
    assert torch.equal((lengths > 0).float(), batch.present)
    assert batch.present.sum(1).tolist() == counts.tolist()
    assert (batch.rewards[:, batch.present == 0] == 0).all()
    means = batch.mean_returns()
    torch.testing.assert_close(means, batch.episode_returns().sum(1) / counts.to(means.dtype))


def test_a_task_gets_the_same_episodes_whatever_tasks_share_its_batch():
    tasks = [{"goal": g} for g in (0.05, 0.9, -0.1)]
    env, policy, params = setup(tasks)
    together = rollouts_of_min_steps(
        policy, params, env.batched(3 * K), tasks, K, generators([10, 11, 12]), 100
    )
    alone = rollouts_of_min_steps(
        policy, params, env.batched(K), tasks[2:], K, generators([12]), 100 + 2 * K
    )
    count = int(alone.present.sum().item())
    assert count == int(together.present[2].sum().item())
    for name in ("observations", "actions", "rewards", "mask"):
        torch.testing.assert_close(
            getattr(alone, name)[:, 0, :count], getattr(together, name)[:, 2, :count]
        )


def test_without_early_ends_it_is_the_plain_batch_of_k_episodes():
    tasks = [{"goal": 5.0}, {"goal": -5.0}]  # out of reach within the horizon
    env, policy, params = setup(tasks)
    plain = rollouts(policy, params, env.batched(2 * K), tasks, K, generators([1, 2]), 3)
    paper = rollouts_of_min_steps(
        policy, params, env.batched(2 * K), tasks, K, generators([1, 2]), 3
    )
    for name in ("observations", "actions", "rewards", "mask", "log_probs"):
        assert torch.equal(getattr(paper, name), getattr(plain, name))


def test_a_subsample_takes_a_fraction_of_each_tasks_own_episodes():
    mask = torch.zeros(3, 2, 6)
    mask[:, 0, :6] = 1.0  # task 0: 6 episodes
    mask[:, 1, :2] = 1.0  # task 1: 2 episodes
    batch = Episodes(torch.zeros(3, 2, 6, 1), torch.zeros(3, 2, 6, 1), mask.clone(), mask)
    half = batch.first_episodes(0.5)
    assert half.present.sum(1).tolist() == [3.0, 1.0]
    assert half.mask.shape == (3, 2, 3)


def test_training_with_the_papers_batch_logs_how_many_episodes_tasks_needed(tmp_path):
    config = TrainConfig.for_env(
        ENV,
        meta_batch_size=3,
        episodes_per_task=K,
        hidden_sizes=(8,),
        init_std=3.0,
        threads=1,
        iterations=1,
        batch_per_task="steps",
    )
    trainer = Trainer(config, tmp_path / "run")
    metrics = trainer.run(progress=False)
    assert metrics["charts/rejected_update"] == 0.0
    assert metrics["charts/episodes_per_task_pre_adaptation"] >= K
    assert np.isfinite(metrics["charts/return_post_adaptation"])
