"""notebooks/nds.ipynb: RunConfig parameters (the params files mean the same as in the CLI), stripped and in sync
with its py:percent twin, and the smoke params run through the batch runner (papermill) with a ground truth."""
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
from closekit.record import read_notebook_records

ROOT = Path(__file__).resolve().parents[1]
NDS = ROOT / "notebooks/nds.ipynb"
FIELDS = {f.name for f in dataclasses.fields(closekit.RunConfig)}
PARAMS = sorted((ROOT / "params/nds").glob("*.yaml"))
OWN = {"space", "channels_init", "truth", "out_dir"}           # the notebook's defaults that are not RunConfig's


def notebook_defaults():
    cell = next(c for c in nbformat.read(NDS, 4).cells if "parameters" in c.metadata.get("tags", []))
    ns = {}
    exec(cell.source, ns)
    return {k: ns[k] for k in FIELDS}


def test_parameters_are_runconfig_fields_and_params_files_mean_what_the_cli_reads():
    assert set(papermill.inspect_notebook(str(NDS))) == FIELDS
    nb, base = closekit.RunConfig.from_dict(notebook_defaults()).to_dict(), closekit.RunConfig().to_dict()
    assert {k for k in FIELDS if nb[k] != base[k]} == OWN
    assert len(PARAMS) == 10
    for p in PARAMS:
        d = yaml.safe_load(p.read_text())
        assert OWN <= set(d) <= FIELDS, p.name
        assert closekit.RunConfig.from_dict({**notebook_defaults(), **d}) == closekit.RunConfig.from_yaml(p), p.name


def test_stripped_and_in_sync():
    nb = nbformat.read(NDS, 4)
    assert set(nb.metadata) == {"kernelspec", "jupytext"} and nb.metadata.jupytext == {"formats": "ipynb,py:percent"}
    for c in nb.cells:
        assert set(c.metadata) <= {"tags"}
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    twin = jupytext.read(NDS.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in twin.cells] == [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("name", ["resnet"])           # resnexta's smoke params: tests/test_spaces.py
def test_smoke_params_run_through_papermill(name, tmp_path):
    params = yaml.safe_load((ROOT / f"params/nds/{name}-smoke.yaml").read_text())
    space = closekit.spaces.get(params["space"])
    archs = closekit.arch_list(space, params["archs"], 0)
    pd.DataFrame({"arch": [space.to_str(a) for a in archs], "acc": np.linspace(.5, .9, len(archs))}) \
        .to_csv(tmp_path / "truth.csv", index=False)
    params.update(out_dir=str(tmp_path / "run"), truth=str(tmp_path / "truth.csv"), eval_every_archs=8)
    summary = batch.run_batch(NDS, [("smoke", params)], tmp_path / "batch", cpu_slots=1, timeout=300,
                              kernel=batch.ensure_kernel(), log=lambda *_: None)
    job = next(d for d in (tmp_path / "batch").iterdir() if d.is_dir())
    assert summary["state"].tolist() == ["ok"], (job / "stderr.log").read_text()[-2000:]
    r = json.loads((job / "results.json").read_text())
    assert r == read_notebook_records(job / "nds.ipynb")
    assert r["n_scored"] == 8 and r["n"] == 8 and -1 <= r["kendall"] <= 1 and r["config"]["space"] == "nds-resnet"
    assert pd.DataFrame(r["history"])["level"].tolist() == [3, 4]
    usage = pd.DataFrame(r["block_usage"])
    assert sorted(usage["level"].unique()) == [3, 4] and usage.groupby("level")["count"].sum().tolist() == [8 * 69] * 2
    html = (job / "nds.html").read_text()
    assert html.count("<img") == 4 and "import closekit" not in html     # truth, trajectory, table, params/FLOPs
