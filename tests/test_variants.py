"""MAML variants as options of one inner loop: LVC, Meta-SGD, ANIL, Reptile, ProMP, sinusoid."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from metarl.adaptation import adapt, learned_step_sizes, split_meta_params
from metarl.algorithms.base import InnerLoop, MetaBatch
from metarl.algorithms.maml_trpo import MamlTrpo, PostUpdateObjective
from metarl.algorithms.promp import ProMP
from metarl.algorithms.reptile import Reptile
from metarl.losses import inner_loss
from metarl.policies import gaussian_log_prob
from metarl.sinusoid import SinusoidTasks, adaptation_losses, meta_train, pretrain, regression_model
from metarl.trpo import flatten, unflatten
from tests.helpers import random_episodes, tiny_policy
from tests.test_meta_gradient import finite_difference_gradient


def log_probs_of(policy, params, episodes, task):
    mean, log_std = functional_call(policy, params, (episodes.observations[:, task],))
    return gaussian_log_prob(mean, log_std, episodes.actions[:, task])


def test_lvc_value_and_gradient_at_the_sampling_parameters():
    policy, theta = tiny_policy()
    episodes = random_episodes(1)
    params = {k: v.clone().requires_grad_() for k, v in theta.items()}
    log_probs = log_probs_of(policy, params, episodes, 0)
    adv, mask = episodes.advantages[:, 0], episodes.mask[:, 0]
    lvc = inner_loss("lvc", log_probs, adv, mask, sampling_log_probs=log_probs.detach())
    reinforce = inner_loss("reinforce", log_probs, adv, mask)
    # value: the likelihood-ratio surrogate at ratio 1, i.e. minus the mean advantage
    assert lvc.item() == pytest.approx(-((adv * mask).sum() / mask.sum()).item())
    g_lvc = torch.autograd.grad(lvc, list(params.values()), retain_graph=True)
    g_score = torch.autograd.grad(reinforce, list(params.values()))
    for a, b in zip(g_lvc, g_score, strict=True):
        torch.testing.assert_close(a, b)
    # without stored sampling log-probs the stop-gradient form gives the same
    lvc_stop = inner_loss("lvc", log_probs, adv, mask)
    torch.testing.assert_close(lvc_stop, lvc)


def test_meta_sgd_step_sizes_get_exact_gradients_and_change():
    policy, theta = tiny_policy(4)
    meta = {**theta, **learned_step_sizes(theta, 0.2)}
    batch = MetaBatch(pre=[random_episodes(1)], post=random_episodes(2))
    objective = PostUpdateObjective(policy, InnerLoop(0.2), meta, batch)
    _, gradient = objective.gradient()
    numeric = finite_difference_gradient(lambda p: objective.surrogate(p).detach(), meta)
    torch.testing.assert_close(gradient, numeric, rtol=1e-6, atol=1e-8)
    lr_part = unflatten(gradient, meta)
    assert any(lr_part[k].abs().max() > 1e-6 for k in meta if k.startswith("inner_lr."))
    new, metrics = MamlTrpo(policy, InnerLoop(0.2)).step(meta, batch)
    assert metrics["charts/line_search_accepted"] == 1.0
    assert any(not torch.equal(new[k], meta[k]) for k in meta if k.startswith("inner_lr."))
    # with learned step sizes the fixed step size is ignored
    params, learned = split_meta_params(meta)
    assert set(learned) == set(theta)
    torch.testing.assert_close(
        flatten(InnerLoop(99.0)(policy, meta, batch.pre)),
        flatten(adapt(policy, params, batch.pre, learned)),
    )


def test_anil_adapts_only_the_head():
    policy, theta = tiny_policy(5, hidden=(6, 6))
    head = ["mean.4.weight", "mean.4.bias"]
    phi = InnerLoop(0.5, adapted_names=head)(policy, theta, [random_episodes(3)])
    for name, value in theta.items():
        for task in range(phi[name].shape[0]):
            if name in head:
                assert not torch.equal(phi[name][task], value)
            else:
                assert torch.equal(phi[name][task], value)


def test_reptile_moves_towards_mean_adapted_parameters():
    policy, theta = tiny_policy(6)
    batch = MetaBatch(pre=[random_episodes(7), random_episodes(8)], post=random_episodes(9))
    inner = InnerLoop(0.3, first_order=True)
    new, _ = Reptile(policy, inner, step_size=0.25).step(theta, batch)
    adapted = inner(policy, theta, batch.pre)
    for name in theta:
        expected = theta[name] + 0.25 * (adapted[name] - theta[name]).mean(0)
        torch.testing.assert_close(new[name], expected)


def test_promp_step_lowers_its_loss_and_its_state_round_trips():
    policy, theta = tiny_policy(7)
    pre, post = random_episodes(10), random_episodes(11)
    batch = MetaBatch(pre=[pre], post=post)
    algorithm = ProMP(policy, InnerLoop(0.1, estimator="lvc"), learning_rate=1e-2, adaptive_kl=True)
    new, metrics = algorithm.step(theta, batch)
    assert metrics["losses/surrogate"] < metrics["losses/surrogate_before"]
    assert metrics["losses/kl"] > 0
    assert algorithm.kl_coeff != 5e-4  # adaptive coefficient moved (KL far from target)
    state = algorithm.state_dict()
    twin = ProMP(policy, InnerLoop(0.1, estimator="lvc"), learning_rate=1e-2, adaptive_kl=True)
    twin.load_state_dict(state, new)
    a, _ = algorithm.step(new, batch)
    b, _ = twin.step(new, batch)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_sinusoid_maml_beats_pretrained_after_1_and_10_steps():
    torch.manual_seed(0)
    maml_model = regression_model()
    maml = meta_train(maml_model, 1000, np.random.default_rng(0))
    torch.manual_seed(0)
    pretrained_model = regression_model()
    pretrained = pretrain(pretrained_model, 1000, np.random.default_rng(1))
    tasks = SinusoidTasks.sample(100, np.random.default_rng(5))
    steps = [0, 1, 10]
    maml_mse = adaptation_losses(maml_model, maml, tasks, steps, 0.01, np.random.default_rng(6))
    pre_mse = adaptation_losses(
        pretrained_model, pretrained, tasks, steps, 0.01, np.random.default_rng(6)
    )
    # seen: MAML 1.52 / 0.81, pretrained 2.88 / 2.03 after 1 / 10 steps
    assert maml_mse[1] < 0.75 * pre_mse[1], (maml_mse, pre_mse)
    assert maml_mse[10] < 0.6 * pre_mse[10], (maml_mse, pre_mse)
    assert maml_mse[10] < maml_mse[1] < maml_mse[0]
