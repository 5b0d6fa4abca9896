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
from closekit.evaluate import block_usage, probe
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
        while int(net.level) < cfg.level(epoch):
            net.grow(int(net.level) + 1, int(net.level) - 1 if int(net.level) else None)
        assert hook(trainer, epoch) == {}                                    # eval_every 0: no probe scores
    assert len(hook.archs) == 5 and [int(u["level"].iloc[0]) for u in hook.usages] == [1, 2, 3]
    assert hook.usage.groupby("level")["count"].sum().to_dict() == {1: 30, 2: 30, 3: 30}
    a, b = (block_usage(net, space, hook.archs, routing="gumbel", seed=3) for _ in range(2))
    assert a.equals(b) and net.training and list(a.columns) == ["edge", "block", "count", "level"]


def test_plots_without_optional_columns():
    figs = [plots.trajectory(pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "train_acc": [.1, .3]})),
            plots.block_usage(pd.DataFrame({"edge": [0, 1], "block": [0, 0], "count": [3, 3]})),
            plots.scores_by_config(pd.DataFrame({"acc": [.1, .2, .3], "config": ["a", "a", "b"]})),
            plots.by_config(pd.DataFrame({"config": ["a", "b"], "kendall": [.1, np.nan]}), ["kendall", "p@top5%"])]
    for fig in figs:
        assert fig.axes
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


def test_compare_notebook(smoke_run, tmp_path):
    # two runs of one config: the smoke job and a copy of it posing as seed 21 with another kendall
    src = smoke_run["job"]
    runs = tmp_path / "runs"
    shutil.copytree(src, runs / "a")
    shutil.copytree(src, runs / "b")
    rb = json.loads((runs / "b/results.json").read_text())
    rb["config"]["seed"], rb["kendall"] = 21, rb["kendall"] + 0.2
    (runs / "b/results.json").write_text(json.dumps(rb))
    assert len(read_results(runs)) == 2
    out = tmp_path / "cmp" / "compare.ipynb"
    out.parent.mkdir()
    papermill.execute_notebook(str(COMPARE), str(out), parameters={"batch_dir": str(runs)},
                               kernel_name=smoke_run["kernel"], cwd=str(out.parent), progress_bar=False)
    (row,) = read_notebook_records(out)["compare_table"]
    assert row["config_name"] == "close" and row["runs"] == 2 and row["seeds"] == [20, 21]
    assert row["kendall_mean"] == pytest.approx(rb["kendall"] - 0.1)
    assert row["kendall_std"] == pytest.approx(0.2 / np.sqrt(2))
    assert row["oneshot_acc_mean_mean"] == pytest.approx(rb["oneshot_acc_mean"]) and row["oneshot_acc_mean_std"] == 0
    assert json.loads((out.parent / "results.json").read_text())["compare_table"] == [row]
    images = sum("image/png" in o.get("data", {}) for c in nbformat.read(out, 4).cells for o in c.get("outputs", []))
    assert images == 2
