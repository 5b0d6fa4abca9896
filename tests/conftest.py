"""Shared fixtures: tiny configs and data so supernet tests run in seconds on a CPU.

CLOSEKIT_TEST_DEVICE=cuda runs the tests that build through ``closekit.build`` on a GPU.
"""
import os

import pytest
import torch

from closekit import RunConfig, data as datalib
from closekit.spaces import get

TINY = dict(dataset="synthetic", image_size=8, channels_init=4, cells_per_stage=1, num_blocks=3,
            cl_schedule=(1, 2, 3), gates_gcn_dims=(16, 16), gates_op_dim=8, gates_node_dim=8, gates_hidden=16,
            mlp_hidden=(16,), batch_size=64, epochs=4, srt_epochs=(3,), save_every=1,
            device=os.environ.get("CLOSEKIT_TEST_DEVICE", "cpu"), deterministic="CLOSEKIT_TEST_DEVICE" in os.environ,
            archs="sample:8", truth=None, eval_batch_size=64, plateau_patience=1)


def tiny_cfg(**kw):
    """A RunConfig small enough for unit tests."""
    return RunConfig(**{**TINY, **kw})


@pytest.fixture(scope="session")
def space():
    return get("nb201")


@pytest.fixture(scope="session")
def tiny_data():
    return datalib.load("synthetic", image_size=8)


def batch(n=32, size=8, channels=3, seed=0):
    """A fixed random batch (x, y)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g), torch.randint(10, (n,), generator=g)
