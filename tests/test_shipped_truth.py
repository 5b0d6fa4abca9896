"""The mini NB201 ground truth shipped in the package: loads offline, is what its metadata says, reproduces."""
from pathlib import Path

import pytest
import torch
import yaml

from closekit import groundtruth
from closekit.groundtruth import minibench as mb

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def truth(space):
    return groundtruth.load("mini-nb201", space)


@pytest.fixture(scope="module")
def meta():
    return yaml.safe_load((groundtruth.SHIPPED["mini-nb201"] / "meta.yaml").read_text())


def test_size_seeds_and_archs(space, truth, meta):
    seed_cols = [c for c in truth.columns if c.startswith("acc_seed")]
    assert len(truth) >= 300 and len(seed_cols) >= 2
    assert truth[seed_cols].notna().all().all() and (truth["n_seeds"] == len(seed_cols)).all()
    assert truth["arch"].is_unique
    valid = {space.to_str(a) for a in space.valid}   # canonical representatives of valid (non-degenerate) cells
    assert set(truth["arch"]) <= valid
    # a seeded uniform sample of the valid representatives: the first n of sample:N with the recorded seed
    n = len(truth)
    assert set(truth["arch"]) == {space.to_str(a) for a in space.sample_list(n, meta["sample_seed"])}
    assert truth["acc"].between(0.1, 1).all()
    assert truth["acc"].to_numpy() == pytest.approx(truth[seed_cols].mean(axis=1).to_numpy())


def test_metadata_states_recipe_and_noise_ceiling(truth, meta):
    recipe = mb.Recipe.from_dict(meta["recipe"])
    assert recipe == mb.Recipe.from_yaml(ROOT / "params/truth/mini-nb201.yaml")     # what `make truth` builds
    assert recipe.dataset == truth.attrs["dataset"] == "embedded" and meta["n_archs"] == len(truth)
    assert truth.attrs["version"] == recipe.version(len(meta["seeds"])) and truth.attrs["version"].startswith(
        "mini-nb201-embedded")
    stored, now = meta["noise_ceiling"], truth.attrs["noise_ceiling"]
    assert now["n_archs"] == len(truth) and now["kendall"] == pytest.approx(stored["kendall"])
    assert 0 < stored["kendall"] < 1 and stored["bootstrap_std"] > 0


def test_unknown_name_is_one_line_error(space):
    with pytest.raises(FileNotFoundError, match="mini-nb201") as e:
        groundtruth.load("mini-nb999", space)
    assert "\n" not in str(e.value)


def test_cheapest_arch_reproduces(truth, meta):
    """Retrain the cheapest shipped (arch, seed 0) with the recorded recipe: same accuracy up to CPU float noise."""
    recipe = mb.Recipe.from_dict(meta["recipe"])
    row = truth.sort_values("params").iloc[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        got = mb.train_one(row["arch"], 0, recipe, mb.load_data(recipe))
    finally:
        torch.set_num_threads(threads)
    assert got["params"] == row["params"]
    # bitwise equal on the machine that built it; other CPUs' kernels round differently (seed noise ~0.5 pt)
    assert got["acc"] == pytest.approx(row["acc_seed0"], abs=0.015)
