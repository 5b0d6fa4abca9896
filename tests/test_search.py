"""closekit.search: random search and regularized evolution on constructed score functions (determinism, cache,
budget, evolution beats its initial population, finite domains), the truth report's expectations derived by hand,
and search on a tiny trained run through the CLI and notebooks/search.ipynb (papermill)."""
import json
import math
import shutil
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest

import closekit
from closekit import batch, cli, search
from closekit.record import read_notebook_records
from conftest import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
SEARCH_NB = ROOT / "notebooks/search.ipynb"


def conv3(arch):
    """A constructed score: the number of 3x3 convolutions in the canonical string (max 6: all edges conv3x3)."""
    return float(arch.count("nor_conv_3x3"))


class Counting:
    """A score_fn that counts its calls per arch string."""

    def __init__(self, f=conv3):
        self.f, self.calls = f, []

    def __call__(self, archs):
        self.calls += list(archs)
        return [self.f(a) for a in archs]


@pytest.mark.parametrize("strategy", search.STRATEGIES)
def test_deterministic_cached_and_within_budget(space, strategy):
    fn = Counting()
    a = search.search(space, fn, strategy, budget=60, seed=3)
    b = search.search(space, Counting(), strategy, budget=60, seed=3)
    c = search.search(space, Counting(), strategy, budget=60, seed=4)
    assert a.history.equals(b.history) and a.chosen == b.chosen
    assert not a.history["arch"].equals(c.history["arch"])
    assert len(a.history) == 60 and a.history["order"].tolist() == list(range(60))
    assert len(fn.calls) == 60 and len(set(fn.calls)) == 60              # each arch scored once: the budget
    assert a.history["arch"].tolist() == fn.calls
    assert all(space.canonical_str(x) == x for x in a.history["arch"])   # keyed by canonical string
    best = a.history.loc[a.history["score"].idxmax()]
    assert a.chosen == best["arch"] and conv3(a.chosen) == a.history["score"].max()


def test_evolution_improves_on_its_initial_population(space):
    gains, rand = [], []
    for seed in range(3):
        r = search.evolution(space, Counting(), budget=150, seed=seed, population=20, sample=5)
        init, final = r.history["score"][:20].max(), r.history["score"].max()
        assert final > init, (seed, init, final)
        gains.append(final)
        rand.append(search.random_search(space, Counting(), budget=150, seed=seed).history["score"].max())
    assert min(gains) == 6.0 and np.mean(gains) > np.mean(rand)     # all-conv3x3 found; random stays below


def test_evolution_parent_is_the_tournament_best_and_the_oldest_dies(space):
    """P=2, S=2: the population is always the last two scored; every child mutates the better of them."""
    r = search.evolution(space, Counting(), budget=40, seed=0, population=2, sample=2)
    h = r.history
    for i in range(2, len(h)):
        pa, pb = h.iloc[i - 2], h.iloc[i - 1]
        parent = pa if pa["score"] >= pb["score"] else pb
        child = h.iloc[i]["arch"]
        # one mutated decision: the child's canonical ops differ from the parent's in at most one slot (up to
        # isomorphism: NB201's mutate returns a canonical representative)
        assert parent["arch"] != child
        assert abs(conv3(child) - parent["score"]) <= 1


def test_finite_domain_and_budget_over_its_size(space):
    domain = space.sample_list(12, seed=5)
    keys = {space.canonical_str(a) for a in domain}
    for strategy in search.STRATEGIES:
        fn = Counting()
        r = search.search(space, fn, strategy, budget=50, seed=0, domain=domain, population=4, sample=2)
        assert set(r.history["arch"]) <= keys
        assert len(r.history) == 12 == len(set(fn.calls))               # the whole domain, each once, no more
    r = search.evolution(space, Counting(), budget=8, seed=1, domain=domain, population=3, sample=2)
    assert len(r.history) == 8 and set(r.history["arch"]) <= keys


def test_domain_projection_goes_to_the_nearest_arch(space):
    near = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    far = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|avg_pool_3x3~2|"
    parent = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    dom = search.Domain(space, [parent, near, far])
    import torch
    for s in range(10):   # a mutation of the all-conv3x3 cell is >= 1 op from near and >= 4 ops from far
        child = dom.mutate(parent, torch.Generator().manual_seed(s))
        assert child == space.canonical_str(near)


def test_bad_arguments(space):
    with pytest.raises(ValueError, match="unknown search strategy 'anneal'"):
        search.search(space, Counting(), "anneal")
    with pytest.raises(ValueError, match="sample <= population"):
        search.evolution(space, Counting(), 10, population=3, sample=5)
    with pytest.raises(ValueError, match="search domain is empty"):
        search.Domain(space, [])


def test_truth_report_by_hand():
    """4 truth archs at .9 .8 .7 .6; K=2 picks of 4: the best of the two is the i-th best with probability
    C(3-i, 1) / C(4, 2) = 3/6, 2/6, 1/6, 0."""
    archs = list("abcd")
    truth = pd.DataFrame({"arch": archs, "acc": [.9, .8, .7, .6]})
    hist = pd.DataFrame({"order": [0, 1], "arch": ["c", "b"], "score": [.5, .4]})
    res = search.SearchResult("random", 0, hist, "c", {})
    scores = {"a": .1, "b": .4, "c": .5, "d": .3}           # by score: c, b, d, a
    r = search.truth_report(res, truth, scores)
    assert r["chosen_true_acc"] == .7 and r["chosen_rank_pct"] == 50.0 and r["chosen_regret"] == pytest.approx(.2)
    assert r["random_truebest_acc"] == pytest.approx((3 * .9 + 2 * .8 + .7) / 6)
    assert r["random_truebest_rank_pct"] == pytest.approx((3 * 0 + 2 * 25 + 50) / 6)
    assert r["random_oneshot_acc"] == pytest.approx((3 * .7 + 2 * .8 + .6) / 6)      # c, b, d, a in score order
    assert r["random_oneshot_regret"] == pytest.approx(.9 - (3 * .7 + 2 * .8 + .6) / 6)
    assert math.isclose(sum(search._pick_probs(4, 2)), 1.0)
    with pytest.raises(ValueError, match="domain_scores lack 1 truth"):
        search.truth_report(res, truth, {"a": 1, "b": 2, "c": 3})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch tiny supernet with a 30-arch CSV ground truth (accuracies made up, ranked by conv count)."""
    tmp = tmp_path_factory.mktemp("search")
    space = closekit.spaces.get("nb201")
    archs = [space.canonical_str(a) for a in space.sample_list(30, 0)]
    pd.DataFrame({"arch": archs, "acc": [conv3(a) / 10 + i / 1000 for i, a in enumerate(archs)]}) \
        .to_csv(tmp / "truth.csv", index=False)
    cfg = tiny_cfg(epochs=1, archs="sample:5", truth=str(tmp / "truth.csv"), eval_max_batches=1)
    closekit.run(cfg, tmp / "run", log=lambda *_: None, keep_snapshots=False)
    return dict(tmp=tmp, run=tmp / "run", archs=archs)


def test_search_run_cli_and_files(tiny_run, capsys):
    assert cli.main(["search", str(tiny_run["run"]), "--strategy", "evolution", "--budget", "12", "--seed", "1",
                     "--population", "4", "--sample", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["domain"] == "truth" and report["n_scored"] == 12 and report["n_truth"] == 30
    assert report["chosen"] in tiny_run["archs"] and 0 <= report["chosen_rank_pct"] < 100
    assert report["chosen_regret"] == pytest.approx(report["truth_best_acc"] - report["chosen_true_acc"])
    hist = pd.read_csv(tiny_run["run"] / "search" / "evolution-b12-s1.csv")
    assert len(hist) == 12 and hist["arch"].is_unique and set(hist["arch"]) <= set(tiny_run["archs"])
    assert json.loads((tiny_run["run"] / "search" / "evolution-b12-s1.json").read_text()) == report
    # the one-shot scores are the supernet's: the same as closekit.evaluate gives for the chosen arch
    space, net, data, cfg, _ = search.load_run(tiny_run["run"])
    again = closekit.evaluate(net, space, [report["chosen"]], data, cfg, progress=False)
    assert again["acc"].iloc[0] == report["chosen_score"] == hist["score"].max()
    saved = pd.read_csv(tiny_run["run"] / "scores.csv")                  # the run's own scores seed the cache
    assert search.run_context(tiny_run["run"])[1].memo == dict(zip(saved["arch"], saved["acc"]))
    assert cli.main(["search", str(tiny_run["run"]), "--budget", "0"]) == 2
    assert "budget must be >= 1" in capsys.readouterr().err


def test_search_under_score_loss_maximises_the_negated_loss(tiny_run, monkeypatch):
    load = search.load_run

    def as_loss(*a, **k):                           # the tiny run, scored by loss
        space, net, data, cfg, gt = load(*a, **k)
        return space, net, data, cfg.replace(score="loss"), gt
    monkeypatch.setattr(search, "load_run", as_loss)
    ctx = search.run_context(tiny_run["run"])
    space, fn, _, cfg = ctx
    saved = pd.read_csv(tiny_run["run"] / "scores.csv")                  # its saved scores seed the cache as -loss
    assert fn.memo == dict(zip(saved["arch"], -saved["loss"]))
    _, net, data, _, _ = load(tiny_run["run"])
    new = [a for a in tiny_run["archs"] if a not in fn.memo][:3]
    assert fn(new) == (-closekit.evaluate(net, space, new, data, cfg, progress=False)["loss"]).tolist()
    res, _ = search.search_run(tiny_run["run"], "random", budget=6, save=False, baseline=False, ctx=ctx)
    loss = closekit.evaluate(net, space, list(res.history["arch"]), data, cfg, progress=False)
    assert res.chosen == loss.set_index("arch")["loss"].idxmin()          # the lowest held-out loss is chosen


def test_search_notebook_stripped_and_in_sync():
    nb = nbformat.read(SEARCH_NB, 4)
    assert set(nb.metadata) == {"kernelspec", "jupytext"} and nb.metadata.jupytext == {"formats": "ipynb,py:percent"}
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    twin = jupytext.read(SEARCH_NB.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in twin.cells] == [(c.cell_type, c.source) for c in nb.cells]
    assert set(papermill.inspect_notebook(str(SEARCH_NB))) == {"run_dir", "strategy", "budget", "seed"}


@pytest.mark.slow
def test_search_notebook_runs_both_strategies(tiny_run):
    out = tiny_run["tmp"] / "nb" / "search.ipynb"
    out.parent.mkdir()
    papermill.execute_notebook(str(SEARCH_NB), str(out), kernel_name=batch.ensure_kernel(), cwd=str(out.parent),
                               parameters={"run_dir": str(tiny_run["run"]), "budget": 10, "seed": 2},
                               progress_bar=False)
    rec = read_notebook_records(out)
    assert set(rec["search"]) == {"evolution", "random"} and rec["strategy"] == "evolution"
    for s, r in rec["search"].items():
        assert r["n_scored"] == 10 and len(rec["history"][s]) == 10
        assert r["chosen_true_acc"] <= r["truth_best_acc"]
    images = [o for c in nbformat.read(out, 4).cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(out, 4).cells])
    assert "random picks, by one-shot score (expected)" in text and "regret" in text


def test_search_takes_a_batch_job_directory(tiny_run, tmp_path):
    # closekit batch puts the run in <job>/runs/<name>; the explorer accepted that, search said "not found"
    job = tmp_path / "job"
    shutil.copytree(tiny_run["run"], job / "runs" / "tiny", ignore=shutil.ignore_patterns("search"))
    assert search.find_run(job) == job / "runs" / "tiny"
    res, report = search.search_run(job, "random", 3, seed=0, save=False, baseline=False)
    assert report["n_scored"] == 3 and res.chosen in tiny_run["archs"]


def test_search_out_that_cannot_be_written_fails_before_any_work(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(search, "run_context", lambda *a, **k: pytest.fail("loaded the run before checking --out"))
    (tmp_path / "f").write_text("")
    assert cli.main(["search", str(tiny_run["run"]), "--out", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err.strip() == f"closekit: error: search --out {tmp_path / 'f'} is a file; pass a " \
                                               "directory path"


def test_cli_offers_the_search_strategies():
    # the CLI lists them without importing closekit.search (torch): the two lists must agree
    assert cli.STRATEGIES == search.STRATEGIES and not hasattr(search, "cli_run")
