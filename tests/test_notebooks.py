"""The notebooks: parameters match RunConfig and the params files, committed stripped and in sync with their
py:percent twins; nb201.ipynb runs the smoke config through the batch runner, compare.ipynb reads the batch."""
import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import jupytext
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

import closekit
from closekit import batch, plots, routing
from closekit.evaluate import block_usage, probe, probe_archs
from closekit.record import read_notebook_records, read_results
from conftest import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
NB201, COMPARE = ROOT / "notebooks/nb201.ipynb", ROOT / "notebooks/compare.ipynb"
GATE_EXPLORER = ROOT / "notebooks/gate_explorer.ipynb"
FIELDS = {f.name for f in dataclasses.fields(closekit.RunConfig)}
PARAMS = sorted((ROOT / "params/nb201").glob("*.yaml"))


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.stem)
def test_params_files_are_notebook_parameters(params):
    assert set(yaml.safe_load(params.read_text())) <= set(papermill.inspect_notebook(str(NB201)))


def notebook_defaults():
    """The values of nb201.ipynb's parameters cell (literals only: safe to run here)."""
    cell = next(c for c in nbformat.read(NB201, 4).cells if "parameters" in c.metadata.get("tags", []))
    ns = {}
    exec(cell.source, ns)
    return {k: ns[k] for k in FIELDS}


def test_notebook_parameters_are_runconfig_fields_with_its_defaults():
    assert set(papermill.inspect_notebook(str(NB201))) == FIELDS
    assert set(papermill.inspect_notebook(str(COMPARE))) == {"batch_dir"}
    assert set(papermill.inspect_notebook(str(GATE_EXPLORER))) == {"run_dir", "archs", "arch_seed", "truth",
                                                                  "demo_epochs", "demo_train_limit", "demo_dir"}
    assert closekit.RunConfig.from_dict(notebook_defaults()) == closekit.RunConfig()   # params mean the same as in the CLI


@pytest.mark.parametrize("ipynb", [NB201, COMPARE, GATE_EXPLORER], ids=lambda p: p.stem)
def test_notebooks_stripped_and_in_sync(ipynb):
    nb = nbformat.read(ipynb, 4)
    assert set(nb.metadata) == {"kernelspec", "jupytext"} and nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.jupytext == {"formats": "ipynb,py:percent"}
    for c in nb.cells:
        assert set(c.metadata) <= {"tags"}, c.metadata
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    twin = jupytext.read(ipynb.with_suffix(".py"))
    assert [(c.cell_type, c.source, c.metadata.get("tags")) for c in twin.cells] == \
        [(c.cell_type, c.source, c.metadata.get("tags")) for c in nb.cells], \
        f"{ipynb.name} and its .py differ: run jupytext --sync {ipynb.with_suffix('.py')}"


def test_probe_records_block_usage_at_the_end_of_each_level():
    cfg = tiny_cfg(epochs=4, cl_schedule=(1, 2, 4), eval_every_archs=5)    # levels per epoch: 1, 2, 2, 3
    space, data, net = closekit.build(cfg)
    hook, trainer = probe(space, space.sample_list(8, 0), data, cfg), SimpleNamespace(net=net)
    for epoch in range(1, cfg.epochs + 1):
        net.epoch_start(epoch)                                               # the curriculum grows the bank
        assert int(net.level) == net.curriculum.level(epoch)
        assert hook(trainer, epoch) == {}                                    # eval_every 0: no probe scores
    assert len(hook.archs) == 5 and [int(u["level"].iloc[0]) for u in hook.usages] == [1, 2, 3]
    assert hook.usage.groupby("level")["count"].sum().to_dict() == {1: 30, 2: 30, 3: 30}   # 6 slots x 5 archs
    a, b = (block_usage(net, space, hook.archs, routing="gumbel", seed=3) for _ in range(2))
    assert a.equals(b) and net.training and list(a.columns) == ["slot", "position", "block", "count", "level"]


def test_probe_archs_are_a_seeded_sample_not_the_first_n(space):
    archs = sorted(closekit.groundtruth.load("mini-nb201", space)["arch"])
    first_edge = lambda a: a.split("|")[1]                                   # noqa: E731  op on edge 0->1
    assert {first_edge(a) for a in archs[:50]} == {"avg_pool_3x3~0"}         # a prefix would be one op on 0->1
    got = probe_archs(archs, 50, seed=0)
    assert got == probe_archs(archs, 50, seed=0) != probe_archs(archs, 50, seed=1)
    assert got != archs[:50] and len(set(got)) == 50 and got == [a for a in archs if a in set(got)]  # list order
    assert len({first_edge(a) for a in got}) >= 4                 # the ops on edge 0->1 (none is 3 of the 300)
    assert probe(space, archs, None, tiny_cfg(eval_every_archs=50, arch_seed=0)).archs == got
    assert probe_archs(archs[:7], 50, seed=0) == archs[:7]


def test_plots_without_optional_columns():
    figs = [plots.trajectory(pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "train_acc": [.1, .3]})),
            plots.block_usage(pd.DataFrame({"edge": [0, 1], "block": [0, 0], "count": [3, 3]})),
            plots.scores_by_config(pd.DataFrame({"acc": [.1, .2, .3], "config": ["a", "a", "b"]})),
            plots.by_config(pd.DataFrame({"config": ["a", "b"], "kendall": [.1, np.nan]}), ["kendall", "p@top5%"])]
    for fig in figs:
        assert fig.axes
        plt.close(fig)


def test_probe_curves_one_panel_per_budget_with_the_seed_spread():
    probes = pd.DataFrame({"epoch": [6, 12, 6, 12, 18, 36, 18, 36], "probe_kendall": [.1, .3, .2, .5, .0, .4, .2, .6],
                           "variant": ["close"] * 8, "seed": [0, 0, 1, 1, 0, 0, 1, 1],
                           "budget": ["x1"] * 4 + ["x3"] * 4})
    fig = plots.probe_curves(probes)
    assert [ax.get_title() for ax in fig.axes] == ["budget = x1", "budget = x3"]
    (line,) = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]   # (the other: a legend handle)
    assert list(line.get_xdata()) == [6, 12] and list(line.get_ydata()) == pytest.approx([.15, .4])   # seed means
    assert fig.axes[0].collections                                    # the ± sd band
    plt.close(fig)


def ref_lines(ax):
    """(y, label, linestyle) of the labelled horizontal lines of ``ax``."""
    return [(ln.get_ydata()[0], ln.get_label(), ln.get_linestyle()) for ln in ax.get_lines()
            if not ln.get_label().startswith("_") and ln.get_ydata()[0] == ln.get_ydata()[-1]]


def test_by_config_draws_labelled_reference_lines():
    table = pd.DataFrame({"config": ["a", "a", "b"], "kendall": [.3, .4, .5], "p@top5%": [.1, .2, .3]})
    fig = plots.by_config(table, ["kendall", "p@top5%"],
                          lines={"kendall": [(.8, "best reachable", "-"), (.6, "seed-to-seed", "--")]})
    kendall, top = fig.axes
    assert ref_lines(kendall) == [(.8, "best reachable", "-"), (.6, "seed-to-seed", "--")]
    assert [t.get_text() for t in kendall.get_legend().get_texts()] == ["best reachable", "seed-to-seed"]
    assert kendall.get_ylim()[1] >= .8                                       # the ceiling is in view
    assert ref_lines(top) == [] and top.get_legend() is None
    plt.close(fig)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """nb201.ipynb on the smoke params (plus a ground-truth CSV of its 20 archs, probes at epoch 2) through
    closekit.batch."""
    kernel, tmp = batch.ensure_kernel(), tmp_path_factory.mktemp("nb")
    params = yaml.safe_load((ROOT / "params/nb201/smoke.yaml").read_text())
    space = closekit.spaces.get("nb201")
    archs = closekit.arch_list(space, params["archs"], 0)
    pd.DataFrame({"arch": [space.canonical_str(a) for a in archs], "acc": np.linspace(.5, .9, len(archs))}) \
        .to_csv(tmp / "truth.csv", index=False)
    params.update(out_dir=str(tmp / "run"), truth=str(tmp / "truth.csv"), eval_every=2)
    summary = batch.run_batch(NB201, [("smoke", params)], tmp / "batch", cpu_slots=1, timeout=300, kernel=kernel,
                              log=lambda *_: None)
    job = next(d for d in (tmp / "batch").iterdir() if d.is_dir())
    return dict(tmp=tmp, kernel=kernel, params=params, summary=summary, job=job)


def test_nb201_smoke_records(smoke_run):
    job, params = smoke_run["job"], smoke_run["params"]
    assert smoke_run["summary"]["state"].tolist() == ["ok"], (job / "stderr.log").read_text()[-2000:]
    r = json.loads((job / "results.json").read_text())
    assert r == read_notebook_records(job / "nb201.ipynb")
    assert r["n_scored"] == 20 and 0 <= r["oneshot_acc_mean"] <= 1 and r["final_train_loss"] > 0
    assert r["n"] == 20 and -1 <= r["kendall"] <= 1 and 0 <= r["p@top5%"] <= 1 and r["truth"] == "truth"
    # keys a params file leaves out take RunConfig's defaults, as in `closekit train`
    assert r["config"] == closekit.RunConfig.from_dict(params).to_dict()
    hist = pd.DataFrame(r["history"])
    assert len(hist) == params["epochs"] and hist["level"].tolist() == [1, 2, 3]
    assert hist["probe_acc_mean"].notna().tolist() == [False, True, False] and -1 <= hist["probe_kendall"][1] <= 1
    usage = pd.DataFrame(r["block_usage"])
    assert usage.groupby("level")["count"].sum().to_dict() == {1: 6 * 20, 2: 6 * 20, 3: 6 * 20}
    assert (usage.groupby("level")["block"].nunique() == [1, 2, 3]).all()
    scores = pd.DataFrame(r["scores"])
    assert len(scores) == 20 and scores["truth_acc"].between(.5, .9).all()
    assert (Path(params["out_dir"]) / "checkpoint.pt").exists()
    ckpts = routing.checkpoints(job)             # the explorer finds the run from the job dir (results.json out_dir)
    assert ckpts["epoch"].tolist() == [1, 2, 3] and ckpts["level"].tolist() == [1, 2, 3]
    assert (ckpts["kind"] == "snapshot").all()   # a snapshot at the last epoch of each curriculum level
    html = (job / "nb201.html").read_text()
    assert html.count("<img") >= 3 and "import closekit" not in html        # 3 figures, no input cells
    assert "epoch    3  loss" in (job / "stdout.log").read_text()


def outputs(path):
    """Every output of an executed notebook in order, as (kind, text): kind image, stream or text (the markdown,
    html or plain text of a display / result)."""
    out = []
    for o in (o for c in nbformat.read(path, 4).cells for o in c.get("outputs", [])):
        data = o.get("data", {})
        out.append(("image", "") if "image/png" in data else ("stream", o.text) if o.output_type == "stream" else
                   ("text", data.get("text/markdown") or data.get("text/html") or data.get("text/plain", "")))
    return out


def where(outs, text):
    """Index of the first output holding ``text``."""
    return next(i for i, (_, t) in enumerate(outs) if text in t)


def test_nb201_report_leads_with_the_headline(smoke_run):
    job = smoke_run["job"]
    outs = outputs(job / "nb201.ipynb")
    images = [i for i, (kind, _) in enumerate(outs) if kind == "image"]
    assert len(images) == 3
    head = where(outs, "kendall = ")
    assert all(f"{k} = " in outs[head][1] for k in ("kendall", "spearman", "p@top5%", "br@5%_rel"))
    assert head < images[0]
    assert where(outs, "kendall@top") > images[-1] and where(outs, "config (non-default keys)") > images[-1]
    lead = [line for _, t in outs[:images[0]] for line in t.splitlines()]   # what is read before the first figure
    assert len([line for line in lead if not line.startswith("epoch ")]) <= 8, lead      # besides the training log
    html = (job / "nb201.html").read_text()
    assert html.index("kendall = ") < html.index("<img") < html.rindex("<img") < html.index("config (non-default")


def test_compare_notebook(smoke_run, tmp_path):
    # two runs of one config: the smoke job and a copy of it posing as seed 21 with another kendall; both recorded
    # the same ground-truth ceilings
    src = smoke_run["job"]
    runs = tmp_path / "runs"
    for name, seed, dk in (("a", 20, 0), ("b", 21, 0.2)):
        shutil.copytree(src, runs / name)
        r = json.loads((runs / name / "results.json").read_text())
        r["config"]["seed"], r["kendall"] = seed, r["kendall"] + dk
        r.update(truth_best_kendall=0.8, truth_seed_kendall=0.7)
        (runs / name / "results.json").write_text(json.dumps(r))
    assert len(read_results(runs)) == 2
    out = tmp_path / "cmp" / "compare.ipynb"
    out.parent.mkdir()
    papermill.execute_notebook(str(COMPARE), str(out), parameters={"batch_dir": str(runs)},
                               kernel_name=smoke_run["kernel"], cwd=str(out.parent), progress_bar=False)
    records = read_notebook_records(out)
    (row,) = records["compare_table"]
    assert row["config_name"] == "close" and row["runs"] == 2 and row["seeds"] == [20, 21]
    assert row["kendall_mean"] == pytest.approx(r["kendall"] - 0.1)
    assert row["kendall_std"] == pytest.approx(0.2 / np.sqrt(2))
    assert row["oneshot_acc_mean_mean"] == pytest.approx(r["oneshot_acc_mean"]) and row["oneshot_acc_mean_std"] == 0
    assert row["truth_best_kendall_mean"] == 0.8 and row["br@5%_rel_std"] == 0
    assert records["truth_ceilings"] == {"truth_best_kendall": 0.8, "truth_seed_kendall": 0.7}   # the Kendall lines
    assert json.loads((out.parent / "results.json").read_text())["compare_table"] == [row]
    outs = outputs(out)
    images = [i for i, (kind, _) in enumerate(outs) if kind == "image"]
    assert len(images) == 2
    head = where(outs, "best reachable τ = 0.800")                          # the ceilings, once
    assert "seed-to-seed τ = 0.700" in outs[head][1]
    table = where(outs, "± 0.14")                                            # kendall: mean ± std over the 2 seeds
    assert all(k in outs[table][1] for k in ("kendall", "spearman", "p@top5%", "br@5%_rel"))
    assert not any(k in outs[table][1] for k in ("train_seconds", "truth_best_kendall")) and head < table < images[0]
    assert where(outs, "train_seconds") > images[-1] and where(outs, "status") > images[-1]   # full table last
