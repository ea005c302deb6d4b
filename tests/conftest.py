"""Shared test setup: one torch thread per test process keeps 2 cores free for CI."""

import torch

torch.set_num_threads(1)
