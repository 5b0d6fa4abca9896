"""Every mini ground truth shipped in the package: loads offline, is what its metadata says, reproduces."""
from pathlib import Path

import pytest
import torch
import yaml

from closekit import groundtruth, spaces
from closekit.groundtruth.machine import built_on, machine
from closekit.groundtruth.recipe import Recipe
from closekit.groundtruth.results import read_results
from closekit.groundtruth.standalone import load_data, train_one

ROOT = Path(__file__).resolve().parents[1]
MIN_ARCHS = {"mini-nb201": 300}          # complete builds; the others may ship partial (>= 40 archs, meta says how many)


@pytest.fixture(scope="module", params=sorted(groundtruth.SHIPPED))
def shipped(request):
    """(name, meta.yaml, space, truth DataFrame) of one shipped ground truth."""
    name = request.param
    meta = yaml.safe_load((groundtruth.SHIPPED[name] / "meta.yaml").read_text())
    space = spaces.get(meta["space"])
    return name, meta, space, groundtruth.load(name, space)


def test_size_seeds_and_archs(shipped):
    name, meta, space, truth = shipped
    seed_cols = [c for c in truth.columns if c.startswith("acc_seed")]
    assert len(truth) >= MIN_ARCHS.get(name, 40) and len(seed_cols) >= 2
    assert truth[seed_cols].notna().all().all() and (truth["n_seeds"] == len(seed_cols)).all()
    assert truth["arch"].is_unique
    assert all(space.canonical_str(a) == a for a in truth["arch"])
    # a seeded uniform sample: the first n of sample:N with the recorded seed (a partial build holds a prefix)
    n = len(truth)
    assert set(truth["arch"]) == {space.to_str(a) for a in space.sample_list(n, meta["sample_seed"])}
    if hasattr(space, "valid"):                  # spaces with degenerate cells (NB201) ship valid ones only
        assert set(truth["arch"]) <= {space.to_str(a) for a in space.valid}
    assert truth["acc"].between(0.1, 1).all()
    assert truth["acc"].to_numpy() == pytest.approx(truth[seed_cols].mean(axis=1).to_numpy())


def test_metadata_states_recipe_and_noise_ceiling(shipped):
    name, meta, space, truth = shipped
    recipe = Recipe.from_dict(meta["recipe"])
    assert recipe == Recipe.from_yaml(ROOT / f"params/truth/{name}.yaml")     # what `make truth TRUTH=name` builds
    assert recipe.space == space.name and recipe.dataset == truth.attrs["dataset"] == "embedded"
    assert meta["n_archs"] == len(truth) and meta["n_results"] == len(truth) * len(meta["seeds"])
    assert truth.attrs["version"] == recipe.version(len(meta["seeds"])) == meta["version"]
    assert truth.attrs["version"].startswith(f"{name}-embedded")
    stored, now = meta["noise_ceiling"], truth.attrs["noise_ceiling"]
    assert now["n_archs"] == len(truth) and now["kendall"] == pytest.approx(stored["kendall"])
    assert 0 < stored["kendall"] < 1 and stored["bootstrap_std"] > 0


def test_unknown_name_is_one_line_error(space):
    with pytest.raises(FileNotFoundError, match="mini-nb201") as e:
        groundtruth.load("mini-nb999", space)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_cheapest_arch_reproduces(shipped):
    """Retrain the cheapest shipped (arch, seed 0) with the recorded recipe: bitwise the same accuracy on the machine
    that trained that row, within 3 per-run noise sd elsewhere (another CPU's rounding acts like another seed)."""
    name, meta, space, truth = shipped
    recipe = Recipe.from_dict(meta["recipe"])
    row = truth.sort_values("params").iloc[0]
    results = read_results(groundtruth.SHIPPED[name] / "results.csv")
    index = results.index[(results["arch"] == row["arch"]) & (results["seed"] == 0)][0]
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        got = train_one(row["arch"], 0, recipe, load_data(recipe))
    finally:
        torch.set_num_threads(threads)
    assert got["params"] == row["params"]
    if built_on(meta, index) == machine(recipe.device):
        assert got["acc"] == row["acc_seed0"]
    else:
        assert got["acc"] == pytest.approx(row["acc_seed0"], abs=3 * meta["noise_ceiling"]["seed_mean"]["noise_sd"])
