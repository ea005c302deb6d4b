"""Reliability: kill and resume, numerical guards, safe loading, clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from metarl.config import TrainConfig, config_from_dict, load_config
from metarl.guards import update_problem
from metarl.trainer import Trainer, TrainingDiverged
from scripts import train as train_script
from tests.helpers import ROOT
from tests.helpers import TINY_TRAIN_ARGS as TINY


def tiny_config(**overrides):
    values = {"meta_batch_size": 3, "episodes_per_task": 2, "hidden_sizes": (8, 8), "threads": 1}
    return TrainConfig(**{**values, **overrides})


def params_of(run_dir):
    return load_checkpoint(Path(run_dir) / "checkpoints" / "latest.pt")["params"]


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    command = [
        sys.executable,
        "scripts/train.py",
        *TINY,
        "--iterations",
        "8",
        "--checkpoint-every",
        "1",
        "--threads",
        "1",
    ]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, "--run-dir", str(killed)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not (killed / "checkpoints" / "iter_000003.pt").exists():
            assert process.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # during iteration 4
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    interrupted_at = load_checkpoint(killed / "checkpoints" / "latest.pt")["iteration"]
    assert 3 <= interrupted_at < 8
    assert not list((killed / "checkpoints").glob(".*.tmp"))  # nothing half-written survives
    resumed = subprocess.run(
        [*command, "--run-dir", str(killed), "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        [*command, "--run-dir", str(tmp_path / "straight")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr
    a, b = params_of(killed), params_of(tmp_path / "straight")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_rewards_are_caught_and_policy_stays_finite(tmp_path):
    trainer = Trainer(tiny_config(iterations=3), tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.state.params.items()}
    env_step = trainer.batched_env.step

    def poisoned_step(actions):
        obs, rewards, terminated, truncated = env_step(actions)
        rewards = rewards.copy()
        rewards[0] = np.nan
        return obs, rewards, terminated, truncated

    trainer.batched_env.step = poisoned_step
    with pytest.warns(UserWarning, match="non-finite rewards"):
        metrics = trainer.iterate()
    assert metrics["charts/rejected_update"] == 1.0
    assert all(torch.equal(before[k], trainer.state.params[k]) for k in before)
    trainer.batched_env.step = env_step
    metrics = trainer.iterate()
    assert metrics["charts/rejected_update"] == 0.0
    assert all(torch.isfinite(v).all() for v in trainer.state.params.values())
    assert any(not torch.equal(before[k], trainer.state.params[k]) for k in before)


def test_repeated_nan_gradients_stop_the_run_naming_the_cause(tmp_path):
    trainer = Trainer(
        tiny_config(iterations=20, max_consecutive_failures=3, checkpoint_every=1), tmp_path / "run"
    )
    real_step = trainer.algorithm.step
    calls = {"n": 0}

    def nan_gradient_step(params, batch):
        calls["n"] += 1
        if calls["n"] <= 2:  # two good iterations, then the gradient turns NaN
            return real_step(params, batch)
        new, metrics = real_step(params, batch)
        metrics["losses/grad_norm"] = float("nan")
        return {k: v * float("nan") for k, v in new.items()}, metrics

    trainer.algorithm.step = nan_gradient_step
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            TrainingDiverged,
            match="3 consecutive rejected updates; last cause: non-finite grad_norm",
        ),
    ):
        trainer.run(progress=False)
    payload = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert all(torch.isfinite(v).all() for v in payload["params"].values())


def test_collapsed_log_std_is_named():
    params = {"log_std": torch.tensor([-25.0, 0.0])}
    assert "collapsed log-std" in update_problem({}, params)
    assert update_problem({"losses/kl": float("inf")}, {}) == "non-finite kl (inf)"
    assert update_problem({"losses/kl": 0.01}, {"log_std": torch.zeros(2)}) is None


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "metarl-checkpoint-v1", "params": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="not plain data and was refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_checkpoints_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_script.main([*TINY, "--iterations", "1", "--run-dir", str(run)]) == 0
    latest = run / "checkpoints" / "latest.pt"
    good = latest.read_bytes()
    latest.write_bytes(good[: len(good) // 2])
    assert train_script.main([*TINY, "--iterations", "2", "--run-dir", str(run), "--resume"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err

    payload = torch.load(io_bytes(good), weights_only=True)
    payload["config"]["env"] = "metarl/HalfCheetahVel-v0"
    save_checkpoint(latest, {k: v for k, v in payload.items() if k != "format"})
    assert train_script.main([*TINY, "--iterations", "2", "--run-dir", str(run), "--resume"]) == 2
    assert "made with env='metarl/HalfCheetahVel-v0'" in capsys.readouterr().err

    payload = torch.load(io_bytes(good), weights_only=True)
    payload["params"]["mean.0.weight"] = torch.zeros(16, 2)
    save_checkpoint(latest, {k: v for k, v in payload.items() if k != "format"})
    assert train_script.main([*TINY, "--iterations", "2", "--run-dir", str(run), "--resume"]) == 2
    assert "do not fit the configured policy" in capsys.readouterr().err


def io_bytes(data):
    import io

    return io.BytesIO(data)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"inner_lr": 0.1, "learning_rate": 3}', r"unknown config key\(s\) \['learning_rate'\]"),
        ('{"meta_batch_size": "20"}', "'meta_batch_size' must be an integer"),
        ('{"first_order": "yes"}', "'first_order' must be true or false"),
        ('{"gamma": 2.0}', r"'gamma' must be in \[0.0, 1.0\]"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_config_names_the_key(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_config(str(path))


def test_resume_with_malformed_config_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_script.main([*TINY, "--iterations", "1", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    config["inner_lr"] = -1
    (run / "config.json").write_text(json.dumps(config))
    assert train_script.main(["--run-dir", str(run), "--resume", "--no-progress"]) == 2
    assert "'inner_lr' must be positive" in capsys.readouterr().err


def test_config_round_trips_through_json():
    config = tiny_config(iterations=7)
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
