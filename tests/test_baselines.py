"""Baselines and the comparison evaluator: exact SB3 mapping, oracle view, held-out tasks,
determinism, and a tiny PPO baseline compared with a tiny meta-training run end to end."""

import csv
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from torch.func import functional_call

from envs import make_task_env
from metarl.baselines import (
    PPOSettings,
    TaskResampling,
    baseline_config,
    make_training_env,
    sb3_policy_kwargs,
    sb3_to_params,
    train_baseline,
)
from metarl.config import TrainConfig
from metarl.evaluation import (
    CurveSummary,
    OracleBatchedEnv,
    adaptation_curve,
    adaptation_trace,
    held_out_tasks,
    load_policy,
    mean_and_ci95,
    pool_by_label,
    pool_seeds,
    t_quantile_975,
)
from metarl.policies import GaussianMLPPolicy
from metarl.trainer import Trainer
from scripts import baselines as baselines_script
from scripts import evaluate as evaluate_script
from scripts import train as train_script

NAV = "metarl/Navigation2D-v0"
TINY_RUN = ["--meta-batch-size", "2", "--episodes-per-task", "2", "--hidden-sizes", "8", "8"]


@pytest.mark.parametrize(
    "kind, hidden, activation", [("pretrained", (8, 8), "relu"), ("oracle", (16, 5), "tanh")]
)
def test_sb3_actor_maps_exactly_onto_gaussian_mlp_policy(kind, hidden, activation):
    env = make_training_env(NAV, kind, seed=0)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        policy_kwargs=sb3_policy_kwargs(hidden, activation, init_std=0.5),
        seed=0,
        device="cpu",
    )
    model.learn(128)  # move the weights away from SB3's initialisation
    with torch.no_grad():
        for parameter in model.policy.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    obs_dim = env.observation_space.shape[0]
    assert obs_dim == (4 if kind == "oracle" else 2)
    policy = GaussianMLPPolicy(obs_dim, 2, hidden, activation)
    params = sb3_to_params(model.policy)
    assert set(params) == {name for name, _ in policy.named_parameters()}
    obs = torch.randn(256, obs_dim)
    with torch.no_grad():
        distribution = model.policy.get_distribution(obs).distribution
        mean, log_std = functional_call(policy, params, (obs,))
    torch.testing.assert_close(mean, distribution.mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        log_std.expand_as(mean), distribution.stddev.log(), atol=1e-6, rtol=0
    )


def test_training_env_resamples_the_task_every_episode_and_oracle_sees_it():
    env = make_training_env(NAV, "oracle", seed=3)
    goals = []
    for _ in range(3):
        obs, _ = env.reset()
        goal = env.unwrapped.task["goal"]
        np.testing.assert_allclose(obs, [0.0, 0.0, *goal], atol=1e-7)
        # policy units: 0.5 in [-1, 1] is a move of 0.05 (bounds +-0.1)
        obs, *_ = env.step(np.array([0.5, -0.5], dtype=np.float32))
        np.testing.assert_allclose(obs, [0.05, -0.05, *goal], atol=1e-7)
        goals.append(tuple(goal))
    assert len(set(goals)) == 3
    pretrained = make_training_env(NAV, "pretrained", seed=3)
    assert isinstance(pretrained, TaskResampling)
    assert pretrained.reset()[0].shape == (2,)
    assert tuple(pretrained.unwrapped.task["goal"]) == goals[0]  # same seed, same tasks
    with pytest.raises(ValueError, match="only 'pretrained' and 'oracle'"):
        make_training_env(NAV, "random", seed=0)


def test_oracle_batched_env_matches_the_oracle_gymnasium_env():
    task_env = make_task_env(NAV)
    tasks = task_env.sample_tasks(3, np.random.default_rng(0))
    batched = OracleBatchedEnv(task_env.batched(3), task_env)
    assert batched.observation_dim == 4
    obs = batched.reset(tasks)
    singles = [gym.make(NAV) for _ in tasks]
    from envs import OracleObservation

    singles = [OracleObservation(env.unwrapped) for env in singles]
    first = [env.reset(options={"task": task})[0] for env, task in zip(singles, tasks, strict=True)]
    np.testing.assert_allclose(obs, np.stack(first))
    rng = np.random.default_rng(1)
    for _ in range(5):
        actions = rng.uniform(-0.2, 0.2, size=(3, 2))
        obs, rewards, _, _ = batched.step(actions)
        steps = [env.step(a) for env, a in zip(singles, actions, strict=True)]
        np.testing.assert_allclose(obs, np.stack([s[0] for s in steps]), atol=1e-6)
        np.testing.assert_allclose(rewards, [s[1] for s in steps], atol=1e-6)


def test_t_quantiles_and_confidence_interval():
    assert t_quantile_975(1) == pytest.approx(12.706)
    assert t_quantile_975(39) == pytest.approx(2.0227, abs=2e-4)
    assert t_quantile_975(100) == pytest.approx(1.9840, abs=2e-4)
    mean, half = mean_and_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert half == pytest.approx(3.182 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert mean_and_ci95([7.0]) == (7.0, 0.0)


def seed_curve(label: str, returns: list[list[float]], kind: str = "maml") -> CurveSummary:
    return CurveSummary(
        label=label,
        kind=kind,
        path=f"runs/{label}_{returns[0][0]}",
        step_size=0.5,
        returns=returns,
        mean=[float(np.mean(row)) for row in returns],
        ci95=[0.0 for _ in returns],
        success=[[1.0, 0.0] for _ in returns],
    )


def test_seeds_sharing_a_label_pool_into_a_ci_over_seeds():
    # three seeds, two tasks, steps 0 and 1: seed means -10/-4, -12/-5, -14/-9
    seeds = [
        seed_curve("MAML", [[-9.0, -11.0], [-3.0, -5.0]]),
        seed_curve("MAML", [[-12.0, -12.0], [-4.0, -6.0]]),
        seed_curve("MAML", [[-15.0, -13.0], [-8.0, -10.0]]),
    ]
    pooled = pool_seeds(seeds)
    assert pooled.mean == pytest.approx([-12.0, -6.0])
    # Student t with 2 dof over the seed means: sd 2 (step 0) and sqrt(7) (step 1)
    assert pooled.ci95 == pytest.approx([4.303 * 2 / math.sqrt(3), 4.303 * math.sqrt(7 / 3)])
    np.testing.assert_allclose(pooled.returns, [[-12.0, -12.0], [-5.0, -7.0]])  # per task
    assert pooled.success == [[1.0, 0.0], [1.0, 0.0]] and pooled.seeds == tuple(seeds)
    assert [entry["mean_return"]["1"] for entry in pooled.to_dict()["seeds"]] == [-4, -5, -9]
    other = seed_curve("pretrained", [[-20.0, -20.0], [-19.0, -19.0]], kind="pretrained")
    rows = pool_by_label([seeds[0], other, *seeds[1:]])
    assert [row.label for row in rows] == ["MAML", "pretrained"] and rows[1] is other
    assert rows[0].mean == pooled.mean
    with pytest.raises(ValueError, match="differ in kind"):
        pool_seeds([seeds[0], seed_curve("MAML", other.returns, kind="pretrained")])
    with pytest.raises(ValueError, match="different tasks"):
        pool_seeds([seeds[0], seed_curve("MAML", [[-1.0], [-2.0]])])


def test_held_out_tasks_are_not_among_the_training_tasks(tmp_path, monkeypatch):
    config = TrainConfig(
        meta_batch_size=10, episodes_per_task=2, hidden_sizes=(8,), iterations=2, threads=1
    )
    trainer = Trainer(config, tmp_path / "run")
    seen = []
    original = trainer.env.sample_tasks

    def recording(n, rng):
        tasks = original(n, rng)
        seen.extend(tuple(t["goal"]) for t in tasks)
        return tasks

    monkeypatch.setattr(trainer.env, "sample_tasks", recording)
    trainer.run(progress=False)
    assert len(seen) == 20
    held_out = {tuple(t["goal"]) for t in held_out_tasks(make_task_env(NAV), 40, seed=1234)}
    assert len(held_out) == 40 and not held_out & set(seen)
    # the same seed as training would reproduce training's first tasks: evaluate.py warns
    assert tuple(held_out_tasks(make_task_env(NAV), 1, seed=0)[0]["goal"]) == seen[0]


def test_adaptation_curve_is_deterministic_for_a_seed():
    torch.manual_seed(0)
    env = make_task_env(NAV)
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = {name: p.detach() for name, p in policy.named_parameters()}
    tasks = held_out_tasks(env, 3, seed=7)

    def curve(seed):
        return adaptation_curve(policy, params, env.batched(6), tasks, 2, 2, 0.1, seed=seed)

    first, again, other = curve(5), curve(5), curve(6)
    assert first.shape == (3, 3)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.fixture(scope="module")
def run_and_baselines(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    run = root / "maml"
    argv = [*TINY_RUN, "--iterations", "2", "--no-progress", "--threads", "1"]
    assert train_script.main([*argv, "--run-dir", str(run)]) == 0
    ppo = ["--timesteps", "1024", "--num-envs", "2", "--n-steps", "256", "--batch-size", "128"]
    for kind in ("pretrained", "oracle", "random"):
        argv = ["--kind", kind, "--out", str(root / kind), "--hidden-sizes", "8", "8"]
        argv += ppo if kind != "random" else []  # random is not trained: PPO flags refused
        assert baselines_script.main([*argv, "--inner-lr", "0.05"]) == 0
    return root


def test_baselines_are_saved_like_runs(run_and_baselines):
    root = run_and_baselines
    for kind in ("pretrained", "oracle", "random"):
        loaded = load_policy(root / kind / "checkpoints" / "latest.pt")
        assert loaded.kind == kind and loaded.oracle == (kind == "oracle")
        assert loaded.config.hidden_sizes == (8, 8) and loaded.config.inner_lr == 0.05
        assert loaded.policy.obs_dim == (4 if kind == "oracle" else 2)
        info = json.loads((root / kind / "baseline.json").read_text())
        assert info["kind"] == kind and info["env_steps"] == (0 if kind == "random" else 1024)
    assert load_policy(root / "maml" / "checkpoints" / "latest.pt").kind == "maml"
    assert baselines_script.main(["--kind", "random", "--out", str(root / "random")]) == 2


def test_random_baseline_refuses_ppo_flags(tmp_path, capsys):
    argv = ["--kind", "random", "--out", str(tmp_path / "r"), "--timesteps", "5000"]
    assert baselines_script.main([*argv, "--n-epochs", "3"]) == 2
    assert "--n-epochs, --timesteps: PPO settings, but the random baseline is not trained" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "r").exists()


def compare(root, out, seed="3"):
    return evaluate_script.main(
        [
            "--compare",
            *(str(root / name) for name in ("maml", "pretrained", "random", "oracle")),
            "--labels",
            "MAML",
            "pretrained",
            "random",
            "oracle",
            "--inner-lrs",
            "run",
            "0.02",
            "run",
            "run",
            "--num-tasks",
            "4",
            "--adapt-steps",
            "2",
            "--episodes",
            "3",
            "--seed",
            seed,
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )


def test_evaluate_compares_runs_and_baselines(run_and_baselines, tmp_path, capsys):
    root = run_and_baselines
    assert compare(root, tmp_path / "a") == 0
    printed = capsys.readouterr().out
    assert "MAML" in printed and "oracle" in printed and "2 steps" in printed
    result = json.loads((tmp_path / "a" / "comparison.json").read_text())
    assert result["num_tasks"] == 4 and result["adapt_steps"] == 2 and len(result["tasks"]) == 4
    methods = {m["label"]: m for m in result["methods"]}
    assert set(methods["MAML"]["mean_return"]) == {"0", "1", "2"}
    assert set(methods["oracle"]["mean_return"]) == {"0"}  # the oracle is not adapted
    assert methods["pretrained"]["inner_lr"] == 0.02 and methods["random"]["inner_lr"] == 0.05
    assert methods["MAML"]["inner_lr"] == 0.5 and methods["oracle"]["inner_lr"] is None
    for method in methods.values():
        for k, returns in method["returns"].items():
            assert len(returns) == 4
            assert method["mean_return"][k] == pytest.approx(np.mean(returns))
            assert method["ci95"][k] > 0
    with open(tmp_path / "a" / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 + 3 + 3 + 1
    assert (tmp_path / "a" / "comparison.png").stat().st_size > 1000
    assert (tmp_path / "a" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "a" / "tensorboard" / "MAML").glob("events.out.tfevents.*"))

    # same seed, same numbers; the single-run evaluation of MAML agrees with the comparison
    assert compare(root, tmp_path / "b") == 0
    again = json.loads((tmp_path / "b" / "comparison.json").read_text())
    assert again["methods"] == result["methods"]
    assert compare(root, tmp_path / "a") == 0  # again into the same folder: no stale events
    assert len(list((tmp_path / "a" / "tensorboard" / "MAML").glob("events.out.tfevents.*"))) == 1
    assert compare(root, tmp_path / "c", seed="4") == 0
    other = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert other["methods"][0]["returns"] != result["methods"][0]["returns"]
    argv = ["--run-dir", str(root / "maml"), "--num-tasks", "4", "--adapt-steps", "2"]
    assert evaluate_script.main([*argv, "--episodes", "3", "--seed", "3", "--threads", "1"]) == 0
    single = json.loads((root / "maml" / "evaluation.json").read_text())
    assert single["returns"] == methods["MAML"]["returns"]


def test_evaluate_pools_runs_sharing_a_label_as_seeds(run_and_baselines, tmp_path, capsys):
    root = run_and_baselines
    argv = [*TINY_RUN, "--iterations", "2", "--no-progress", "--threads", "1", "--seed", "1"]
    assert train_script.main([*argv, "--run-dir", str(tmp_path / "maml_seed1")]) == 0
    common = ["--num-tasks", "3", "--adapt-steps", "1", "--episodes", "2", "--threads", "1"]
    entries = [str(root / "maml"), str(tmp_path / "maml_seed1"), str(root / "random")]
    labels = ["--labels", "MAML", "MAML", "random"]
    out = tmp_path / "seeds"
    assert evaluate_script.main(["--compare", *entries, *labels, *common, "--out", str(out)]) == 0
    assert "over training seeds" in capsys.readouterr().out
    methods = json.loads((out / "comparison.json").read_text())["methods"]
    assert [m["label"] for m in methods] == ["MAML", "random"] and "seeds" not in methods[1]
    seeds = methods[0]["seeds"]
    assert [seed["checkpoint"] for seed in seeds] == [
        str(root / "maml" / "checkpoints" / "latest.pt"),
        str(tmp_path / "maml_seed1" / "checkpoints" / "latest.pt"),
    ]
    for k in ("0", "1"):
        seed_means = [seed["mean_return"][k] for seed in seeds]
        assert seed_means[0] != seed_means[1]
        expected = mean_and_ci95(seed_means)
        assert methods[0]["mean_return"][k] == pytest.approx(expected[0])
        assert methods[0]["ci95"][k] == pytest.approx(expected[1])
    with open(out / "comparison.csv") as handle:
        assert {row["label"]: row["num_seeds"] for row in csv.DictReader(handle)} == {
            "MAML": "2",
            "random": "1",
        }
    # a label shared by entries of different kinds is refused, naming the label
    entries = [str(root / "maml"), str(root / "oracle")]
    argv = ["--compare", *entries, "--labels", "x", "x", *common, "--out", str(tmp_path / "bad")]
    assert evaluate_script.main(argv) == 2
    assert "cannot pool 'x'" in capsys.readouterr().err


def test_single_run_evaluation_of_an_oracle_baseline(run_and_baselines):
    oracle = run_and_baselines / "oracle"
    argv = ["--run-dir", str(oracle), "--num-tasks", "3", "--episodes", "2", "--threads", "1"]
    assert evaluate_script.main(argv) == 0
    evaluation = json.loads((oracle / "evaluation.json").read_text())
    assert evaluation["adapt_steps"] == 0 and set(evaluation["returns"]) == {"0"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--compare", "x"], "--compare needs --out"),
        (["--compare", "x", "y", "--labels", "a", "--out", "o"], "--labels has 1 entries"),
        (["--run-dir", "x", "--compare", "y", "--out", "o"], "either --run-dir"),
        ([], "either --run-dir"),
    ],
)
def test_evaluate_refuses_bad_comparisons(argv, message, capsys):
    assert evaluate_script.main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_baseline_refuses_unknown_kind_and_existing_folder(tmp_path):
    config = baseline_config(NAV, (4,), "relu", 0.1)
    with pytest.raises(ValueError, match="unknown baseline kind"):
        train_baseline("expert", tmp_path, config)
    train_baseline("random", tmp_path / "r", config, PPOSettings())
    with pytest.raises(FileExistsError):
        train_baseline("random", tmp_path / "r", config)


def test_meta_sgd_anil_run_is_evaluated_with_its_learned_step_sizes(tmp_path, capsys):
    run = tmp_path / "metasgd"
    argv = [*TINY_RUN, "--iterations", "1", "--no-progress", "--threads", "1", "--meta-sgd"]
    assert train_script.main([*argv, "--anil", "--run-dir", str(run)]) == 0
    loaded = load_policy(run / "checkpoints" / "latest.pt")
    head = ["mean.4.weight", "mean.4.bias"]
    assert loaded.adapted_names == head and sorted(loaded.learned_step_sizes) == sorted(head)
    assert loaded.schedule(2) == [loaded.learned_step_sizes] * 2
    assert loaded.schedule(2, 0.2) == [0.2, 0.1]
    tasks = held_out_tasks(loaded.env, 2, seed=9)
    stages = list(
        adaptation_trace(
            loaded.policy,
            loaded.params,
            loaded.batched_env(4),
            tasks,
            2,
            loaded.schedule(1),
            adapted_names=loaded.adapted_names,
        )
    )
    adapted = stages[-1].params
    for name, value in loaded.params.items():
        changed = not torch.equal(adapted[name][0], value)
        assert changed == (name in head), name
    out = tmp_path / "cmp"
    argv = ["--compare", str(run), "--num-tasks", "2", "--episodes", "2", "--adapt-steps", "1"]
    assert evaluate_script.main([*argv, "--threads", "1", "--out", str(out)]) == 0
    assert "learned" in capsys.readouterr().out
    assert json.loads((out / "comparison.json").read_text())["methods"][0]["inner_lr"] == "learned"


def test_later_step_ratio_changes_only_the_later_steps(run_and_baselines, tmp_path):
    run = run_and_baselines / "maml"
    argv = ["--run-dir", str(run), "--num-tasks", "3", "--adapt-steps", "2", "--episodes", "2"]
    assert evaluate_script.main([*argv, "--threads", "1"]) == 0
    paper = json.loads((run / "evaluation.json").read_text())
    assert paper["step_sizes"] == [0.5, 0.25]  # the paper's 2D-navigation schedule
    assert evaluate_script.main([*argv, "--threads", "1", "--later-step-ratio", "0.25"]) == 0
    smaller = json.loads((run / "evaluation.json").read_text())
    assert smaller["step_sizes"] == [0.5, 0.125]
    assert smaller["returns"]["1"] == paper["returns"]["1"]  # same first step, same rollouts
    assert smaller["returns"]["2"] != paper["returns"]["2"]
    with pytest.raises(SystemExit) as refused:  # argparse's usage error, naming the flag
        evaluate_script.main([*argv, "--later-step-ratio", "0"])
    assert refused.value.code == 2
