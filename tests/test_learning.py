"""Learning test: MAML-TRPO meta-learns 2D navigation on a small budget."""

import numpy as np
import pytest
import torch

from metarl.config import TrainConfig
from metarl.evaluation import adaptation_curve
from metarl.trainer import Trainer


@pytest.mark.slow
def test_maml_trpo_learns_to_adapt_on_navigation(tmp_path):
    config = TrainConfig(
        iterations=25,
        meta_batch_size=10,
        episodes_per_task=10,
        hidden_sizes=(32, 32),
        fisher_subsample=0.5,
        threads=1,
        checkpoint_every=25,
    )
    trainer = Trainer(config, tmp_path / "run")
    history = []
    for _ in range(config.iterations):
        metrics = trainer.iterate()
        history.append(
            (metrics["charts/return_pre_adaptation"], metrics["charts/return_post_adaptation"])
        )
    history = np.array(history)
    first_post, last_pre, last_post = (
        history[:3, 1].mean(),
        history[-5:, 0].mean(),
        history[-5:, 1].mean(),
    )
    assert last_post > last_pre + 10.0, history  # adaptation helps (seen: ~20)
    assert last_post > first_post + 40.0, history  # training improved it (seen: ~70)

    tasks = trainer.env.sample_tasks(10, np.random.default_rng(99))
    curve = adaptation_curve(
        trainer.policy,
        trainer.state.params,
        trainer.env.batched(10 * 10),
        tasks,
        10,
        adapt_steps=2,
        step_size=config.inner_lr,
        seed=99,
    ).mean(dim=1)
    assert curve[1] > curve[0] + 8.0, curve  # held-out goals: one step helps (seen: ~17)
    assert torch.isfinite(curve).all()
