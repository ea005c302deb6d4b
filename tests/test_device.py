"""``--device``: the outer step on a GPU when there is one, a clear refusal when there is not."""

import subprocess
import sys

import pytest
import torch

import metarl
from envs import make_task_env
from metarl.checkpoint import load_checkpoint
from metarl.config import TrainConfig
from metarl.trainer import initial_meta_params, make_policy
from tests.helpers import ROOT, TINY_TRAIN_ARGS

CUDA = torch.cuda.is_available()


def test_config_refuses_a_device_it_does_not_know():
    with pytest.raises(ValueError, match="'device' must be cpu, cuda or cuda:N, got 'gpu'"):
        TrainConfig(device="gpu")
    assert TrainConfig(device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "scripts/train.py",
            *TINY_TRAIN_ARGS,
            "--device",
            "cuda",
            "--iterations",
            "1",
            "--run-dir",
            str(run),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no usable CUDA device" in result.stderr and "Traceback" not in result.stderr
    assert not run.exists()


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("algo", ["maml-trpo", "promp"])
def test_cuda_outer_step_equals_cpu(tmp_path, algo):
    """Two iterations in float64 land on the same parameters on the GPU as on the CPU."""
    values = {"meta_batch_size": 3, "episodes_per_task": 2, "hidden_sizes": (8, 8)}
    values |= {"threads": 1, "iterations": 2, "precision": "float64", "algo": algo}
    results = {}
    for device in ("cpu", "cuda"):
        metarl.train(TrainConfig(**values, device=device), tmp_path / device, progress=False)
        results[device] = load_checkpoint(tmp_path / device / "checkpoints" / "latest.pt")
    config = TrainConfig(**values)
    torch.manual_seed(config.seed)  # as the trainer builds its policy
    initial = initial_meta_params(config, make_policy(config, make_task_env(config.env)))
    moved = 0.0
    for name, value in results["cpu"]["params"].items():
        on_gpu = results["cuda"]["params"][name]
        assert on_gpu.device.type == "cpu"  # checkpoints stay loadable without a GPU
        torch.testing.assert_close(on_gpu, value, rtol=1e-6, atol=1e-9)
        moved += float((value - initial[name]).abs().max())
    assert moved > 1e-4
