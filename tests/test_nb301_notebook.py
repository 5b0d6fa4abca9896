"""nb301.ipynb: parameters are RunConfig's fields with mini-close.yaml's values, stripped and in sync with its twin;
the smoke params run through the batch runner (ranked against a CSV of their genotypes, both cells drawn); the GATE
explorer opens the NB301 run (both cell types)."""
import dataclasses
import json
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

import closekit
from closekit import batch

ROOT = Path(__file__).resolve().parents[1]
NB, EXPLORER = ROOT / "notebooks/nb301.ipynb", ROOT / "notebooks/gate_explorer.ipynb"
FIELDS = {f.name for f in dataclasses.fields(closekit.RunConfig)}
PARAMS = sorted((ROOT / "params/nb301").glob("*.yaml"))


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.stem)
def test_params_files_are_notebook_parameters(params):
    assert set(yaml.safe_load(params.read_text())) <= set(papermill.inspect_notebook(str(NB)))
    assert closekit.RunConfig.from_yaml(params).space == "nb301"


def test_notebook_defaults_are_mini_close():
    assert set(papermill.inspect_notebook(str(NB))) == FIELDS
    cell = next(c for c in nbformat.read(NB, 4).cells if "parameters" in c.metadata.get("tags", []))
    ns = {}
    exec(cell.source, ns)
    assert closekit.RunConfig.from_dict({k: ns[k] for k in FIELDS}) == \
        closekit.RunConfig.from_yaml(ROOT / "params/nb301/mini-close.yaml")


def test_stripped_and_in_sync():
    nb = nbformat.read(NB, 4)
    assert set(nb.metadata) == {"kernelspec", "jupytext"} and nb.metadata.jupytext == {"formats": "ipynb,py:percent"}
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    twin = jupytext.read(NB.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in twin.cells] == [(c.cell_type, c.source) for c in nb.cells]


def images(path):
    return sum("image/png" in o.get("data", {}) for c in nbformat.read(path, 4).cells for o in c.get("outputs", []))


def test_smoke_run_and_explorer(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    kernel = batch.ensure_kernel()
    params = yaml.safe_load((ROOT / "params/nb301/smoke.yaml").read_text())
    space = closekit.spaces.get("nb301")
    archs = closekit.arch_list(space, params["archs"], 0)
    pd.DataFrame({"arch": [space.canonical_str(a) for a in archs], "acc": np.linspace(.5, .9, len(archs))}) \
        .to_csv(tmp_path / "truth.csv", index=False)
    params.update(out_dir=str(tmp_path / "run"), truth=str(tmp_path / "truth.csv"))
    summary = batch.run_batch(NB, [("smoke", params)], tmp_path / "batch", cpu_slots=1, timeout=300, kernel=kernel,
                              log=lambda *_: None)
    job = next(d for d in (tmp_path / "batch").iterdir() if d.is_dir())
    assert summary["state"].tolist() == ["ok"], (job / "stderr.log").read_text()[-2000:]
    r = json.loads((job / "results.json").read_text())
    assert r["n_scored"] == 8 and r["n"] == 8 and -1 <= r["kendall"] <= 1 and r["config"]["space"] == "nb301"
    usage = pd.DataFrame(r["block_usage"])
    assert usage.groupby("level")["count"].sum().to_dict() == {1: 16 * 8, 2: 16 * 8, 3: 16 * 8}  # 2 x 8 slots
    assert images(job / "nb301.ipynb") == 4             # score vs truth, trajectory, block usage, both cells
    # the GATE explorer opens the NB301 run: snapshots per level, both cell types in its views
    out = tmp_path / "explorer.ipynb"
    papermill.execute_notebook(str(EXPLORER), str(out), parameters=dict(run_dir=params["out_dir"], archs="sample:6"),
                               kernel_name=kernel, cwd=str(tmp_path), progress_bar=False)
    outs = [o for c in nbformat.read(out, 4).cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/html", "")
                   for o in outs)
    assert "close supernet" in text and "3 checkpoints, 6 archs" in text
    # the explorer's own view (stored widget state): both cells drawn, the slot table of both cell types
    state = nbformat.read(out, 4).metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    (view,) = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    shown = "".join(json.dumps(o.get("data", {}).get("text/html", "")) + o.get("text", "") for o in view)
    assert sum("image/png" in o.get("data", {}) for o in view) == 2 and "epoch 3, level 3" in shown
    assert "n2.in0" in shown and "r5.in1" in shown             # slot labels of both cell types
