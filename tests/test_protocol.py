"""The paper's protocol: actions in policy units, its initialisation, presets and schedules."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the metarl/ ids)
from envs import PolicyActions, make_task_env, to_env_actions
from metarl.config import config_from_dict, evaluation_protocol, preset_for
from metarl.evaluation import test_time_step_sizes as step_schedule
from metarl.policies import GaussianMLPPolicy

NAV = "metarl/Navigation2D-v0"


@pytest.mark.parametrize(("action", "move"), [(1.0, 0.1), (5.0, 0.1), (-0.5, -0.05), (-7.0, -0.1)])
def test_policy_action_moves_the_point_by_a_tenth_clipped(action, move):
    """rllab's normalize on 2D navigation: env step = 0.1 * clip(a, -1, 1)."""
    single = PolicyActions(gym.make(NAV))
    single.reset(seed=0, options={"task": {"goal": [0.4, 0.4]}})
    obs, *_ = single.step(np.array([action, 0.0], dtype=np.float32))
    np.testing.assert_allclose(obs, [move, 0.0], atol=1e-7)
    batched = make_task_env(NAV).batched(2)
    batched.reset([{"goal": [0.4, 0.4]}] * 2)
    policy_actions = np.array([[action, 0.0], [0.0, action]])
    obs, *_ = batched.step(to_env_actions(policy_actions, batched.action_low, batched.action_high))
    np.testing.assert_allclose(obs, [[move, 0.0], [0.0, move]], atol=1e-7)


def test_to_env_actions_is_affine_onto_the_bounds_then_clipped():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    np.testing.assert_allclose(to_env_actions(np.array([-1.0, -1.0]), low, high), [-2.0, 0.0])
    np.testing.assert_allclose(to_env_actions(np.array([0.0, 0.0]), low, high), [0.0, 5.0])
    np.testing.assert_allclose(to_env_actions(np.array([0.5, 3.0]), low, high), [1.0, 10.0])
    wrapped = PolicyActions(gym.make("metarl/HalfCheetahDir-v0"))
    assert wrapped.action_space.low.min() == -1.0 and wrapped.action_space.high.max() == 1.0


def test_sampler_records_policy_units_and_the_env_sees_clipped_actions():
    from metarl.sampler import rollouts

    policy = GaussianMLPPolicy(2, 2, (8,), init_std=5.0)  # wide: many actions out of [-1, 1]
    params = {k: v.detach() for k, v in policy.named_parameters()}
    env = make_task_env(NAV).batched(4)
    episodes = rollouts(
        policy, params, env, [{"goal": [0.5, 0.5]}], 4, torch.Generator().manual_seed(0), 0
    )
    assert episodes.actions.abs().max() > 1.0  # recorded as the policy drew them
    moves = torch.diff(episodes.observations[:, 0], dim=0)
    valid = episodes.mask[1:, 0].bool()
    expected = 0.1 * episodes.actions[:-1, 0].clamp(-1, 1)
    torch.testing.assert_close(moves[valid], expected[valid], atol=1e-6, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_glorot_initialisation_zero_biases_and_glorot_variance_on_every_layer(activation):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(30, 20, (400, 300), activation)
    linears = [m for m in policy.mean if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3  # the output layer included
    for layer in linears:
        assert torch.count_nonzero(layer.bias) == 0
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound
        expected_variance = 2.0 / (fan_in + fan_out)  # uniform on [-bound, bound]
        assert layer.weight.var().item() == pytest.approx(expected_variance, rel=0.05)
    torch.testing.assert_close(policy.log_std, torch.zeros(20))  # init std 1.0
    # the mean action is exactly 0 at 2D navigation's start state
    nav = GaussianMLPPolicy(2, 2)
    assert torch.count_nonzero(nav(torch.zeros(2))[0]) == 0
    torch_init = GaussianMLPPolicy(2, 2, init="torch")
    assert torch.count_nonzero(torch_init.mean[0].bias) > 0
    with pytest.raises(ValueError, match="unknown init"):
        GaussianMLPPolicy(2, 2, init="he")


def test_presets_are_the_papers_snapshot_settings():
    rows = {
        NAV: (20, 20, 0.5, 0.01),
        "metarl/HalfCheetahVel-v0": (40, 10, 0.1, 0.01),
        "metarl/HalfCheetahDir-v0": (40, 20, 0.1, 0.02),
        "metarl/AntVel-v0": (40, 20, 0.1, 0.01),
        "metarl/AntDir-v0": (40, 40, 0.1, 0.01),
    }
    for env_id, (tasks, episodes, inner_lr, max_kl) in rows.items():
        config = config_from_dict({"env": env_id, **preset_for(env_id)})
        got = (config.meta_batch_size, config.episodes_per_task, config.inner_lr, config.max_kl)
        assert got == (tasks, episodes, inner_lr, max_kl), env_id
        assert config.init == "glorot" and config.init_std == 1.0 and config.fisher_subsample == 1.0
    assert evaluation_protocol(NAV).episodes == 40
    assert step_schedule(0.5, 3, evaluation_protocol(NAV).later_step_ratio) == [
        0.5,
        0.25,
        0.25,
    ]
    ant_dir = evaluation_protocol("metarl/AntDir-v0")
    assert ant_dir.episodes == 40
    assert step_schedule(0.1, 2, ant_dir.later_step_ratio) == pytest.approx([0.1, 0.001])
    assert evaluation_protocol("metarl/HalfCheetahVel-v0").episodes == 20
