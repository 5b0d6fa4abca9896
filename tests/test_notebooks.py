"""The notebooks, checked once for every space: each run notebook's parameters are its space's keys with the mini
CLOSE defaults, every notebook is committed stripped and in sync with its py:percent twin, no code is repeated
across them; and (slow) each space's smoke run goes through closekit batch and by hand through papermill, its
report leads with the result and holds its sections in order, its figures and an exported HTML, and compare.ipynb
reads the batch."""
import dataclasses
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

import closekit
from closekit import batch, report
from closekit.metrics import training_warning
from closekit.record import read_notebook_records, read_results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIELDS = {f.name for f in dataclasses.fields(closekit.RunConfig)}
OWN = {"record_dir"}                                        # run-notebook parameters that are not RunConfig keys
RUN_NOTEBOOKS = {"nb201": ["nb201"], "nb301": ["nb301"], "nds": ["nds-resnet", "nds-resnexta"]}   # notebook: spaces
SMOKE = {"nb201": "nb201", "nb301": "nb301", "nds": "nds-resnet"}      # the space each notebook's smoke run uses
CASES = [(nb, sp) for nb, sps in RUN_NOTEBOOKS.items() for sp in sps]
NUM_CLASSES = 10                                            # the embedded data set of every smoke run
WINDOW = 6                                                  # lines of code that may not repeat across notebooks


def params_files(space):
    """The shipped params files of ``space`` (all of its kinds)."""
    return sorted((ROOT / "params").glob(closekit.spaces.get(space).params_file("*")))


def parameters(nb):
    """The parameters cell of notebooks/<nb>.ipynb, evaluated (literals only)."""
    cells = nbformat.read(NOTEBOOKS / f"{nb}.ipynb", 4).cells
    cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    ns = {}
    exec(cell.source, ns)
    return {k: v for k, v in ns.items() if k in set(papermill.inspect_notebook(str(NOTEBOOKS / f"{nb}.ipynb")))}


def test_every_space_has_a_run_notebook():
    assert sorted(sp for sps in RUN_NOTEBOOKS.values() for sp in sps) == sorted(closekit.spaces.SPACES)


@pytest.mark.parametrize("nb, space", CASES)
def test_run_notebook_parameters_are_exactly_its_spaces_params_keys(nb, space):
    """Thin parameters cell: the keys its spaces' params files set (so batch passes every file without an unknown
    parameter) and no other RunConfig key; each params file means in the notebook what it means in the CLI."""
    declared = set(papermill.inspect_notebook(str(NOTEBOOKS / f"{nb}.ipynb")))
    keys = {k for sp in RUN_NOTEBOOKS[nb] for p in params_files(sp) for k in yaml.safe_load(p.read_text())}
    assert declared - OWN == keys and declared - OWN < FIELDS
    files = params_files(space)
    assert {p.stem.rsplit("-", 1)[-1] for p in files} >= {"smoke", "close", "vanilla"}
    defaults = {k: v for k, v in parameters(nb).items() if k in FIELDS}
    for p in files:
        cfg = closekit.RunConfig.from_yaml(p)
        assert cfg.space == space, p.name
        assert closekit.RunConfig.from_dict({**defaults, **yaml.safe_load(p.read_text())}) == cfg, p.name


@pytest.mark.parametrize("nb", RUN_NOTEBOOKS)
def test_run_notebook_defaults_are_mini_close_where_no_params_file_relies_on_them(nb):
    """A key every params file sets defaults to the mini CLOSE value; a key some file leaves out, to RunConfig's."""
    files = [yaml.safe_load(p.read_text()) for sp in RUN_NOTEBOOKS[nb] for p in params_files(sp)]
    mini = closekit.RunConfig.from_yaml(ROOT / "params" / closekit.spaces.get(SMOKE[nb]).params_file("mini-close"))
    defaults, base = parameters(nb), closekit.RunConfig().to_dict()
    assert defaults.pop("record_dir") is None                # results.json: batch's job dir, else the run dir
    cfg = closekit.RunConfig.from_dict(defaults).to_dict()
    for k in defaults:
        assert cfg[k] == (mini.to_dict()[k] if all(k in f for f in files) else base[k]), k


@pytest.mark.parametrize("ipynb", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
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


def code_lines(ipynb):
    """The non-blank code lines of a notebook's cells, parameters cell excepted (declarations, not logic)."""
    cells = nbformat.read(ipynb, 4).cells
    return [ln.strip() for c in cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
            for ln in c.source.splitlines() if ln.strip()]


def test_no_code_repeated_across_notebooks():
    seen = Counter()
    for ipynb in sorted(NOTEBOOKS.glob("*.ipynb")):
        lines = code_lines(ipynb)
        seen.update({tuple(lines[i:i + WINDOW]) for i in range(len(lines) - WINDOW + 1)})
    repeated = [w for w, n in seen.items() if n > 1]
    assert not repeated, repeated[:1]


# ---- the run notebooks executed (slow) ----
def outputs(path):
    """Every output of an executed notebook in order, as (kind, text): kind image, error, stream or text (the
    markdown, html or plain text of a display / result)."""
    out = []
    for o in (o for c in nbformat.read(path, 4).cells for o in c.get("outputs", [])):
        data = o.get("data", {})
        out.append(("image", "") if "image/png" in data else ("error", o.get("evalue", "")) if o.output_type == "error"
                   else ("stream", o.text) if o.output_type == "stream" else
                   ("text", data.get("text/markdown") or data.get("text/html") or data.get("text/plain", "")))
    return out


def sections(outs):
    """{section name: (index of its heading output, images up to the next heading)} of a report."""
    heads = [(i, m.group(1)) for i, (_, t) in enumerate(outs) for m in re.finditer(r"^## (.+)$", t, re.M)]
    ends = [i for i, _ in heads[1:]] + [len(outs)]
    return {name: (i, sum(kind == "image" for kind, _ in outs[i:end])) for (i, name), end in zip(heads, ends)}


def planted_truth(scores, path):
    """A ground-truth CSV that is the one-shot scores themselves: the ranking against it must be perfect."""
    pd.DataFrame({"arch": scores["arch"], "acc": scores["acc"]}).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module", params=list(RUN_NOTEBOOKS))
def smoke(request, tmp_path_factory):
    """One run notebook on its space's smoke params: through closekit batch without a ground truth, then by hand
    (papermill from another directory) on the same run with a planted truth (re-scored, not retrained)."""
    nb, space = request.param, SMOKE[request.param]
    tmp, kernel = tmp_path_factory.mktemp(nb), batch.ensure_kernel()
    params = yaml.safe_load((ROOT / "params" / closekit.spaces.get(space).params_file("smoke")).read_text())
    params.update(out_dir=str(tmp / "run"), truth=None)
    summary = batch.run_batch(NOTEBOOKS / f"{nb}.ipynb", [("smoke", params)], tmp / "batch", cpu_slots=1,
                              timeout=600, kernel=kernel, log=lambda *_: None)
    job = next(d for d in (tmp / "batch").iterdir() if d.is_dir())
    assert summary["state"].tolist() == ["ok"], (job / "stderr.log").read_text()[-2000:]
    scores = pd.DataFrame(json.loads((job / "results.json").read_text())["scores"])
    cwd, hand = tmp / "cwd", tmp / "hand" / f"{nb}.ipynb"
    cwd.mkdir()
    hand.parent.mkdir()
    papermill.execute_notebook(str(NOTEBOOKS / f"{nb}.ipynb"), str(hand), kernel_name=kernel, cwd=str(cwd),
                               progress_bar=False,
                               parameters={**params, "truth": planted_truth(scores, tmp / "truth.csv")})
    return dict(nb=nb, space=space, tmp=tmp, job=job, params=params, hand=hand, cwd=cwd, kernel=kernel)


@pytest.mark.slow
def test_batch_run_records_in_its_job_and_means_what_the_cli_means(smoke):
    job, params = smoke["job"], smoke["params"]
    r = json.loads((job / "results.json").read_text())
    assert r == read_notebook_records(job / f"{smoke['nb']}.ipynb")
    assert r["config"] == closekit.RunConfig.from_dict(params).to_dict()    # left-out keys: RunConfig's defaults
    assert r["n_scored"] == len(r["scores"]) and "kendall" not in r
    assert len(r["history"]) == params["epochs"] and (Path(params["out_dir"]) / "checkpoint.pt").exists()


@pytest.mark.slow
def test_report_leads_with_the_result_then_its_sections_in_order(smoke):
    nb, space, job, params = smoke["nb"], smoke["space"], smoke["job"], smoke["params"]
    outs = outputs(job / f"{nb}.ipynb")
    assert not [t for kind, t in outs if kind == "error"]
    assert outs[0][1].startswith(f"# CLOSE supernet on {space}\n## Result\n")     # nothing before the result
    found = sections(outs)
    has_size = getattr(closekit.spaces.get(space), "complexity", None) is not None
    expected = [s for s in report.SECTIONS if s != "Size" or has_size]
    assert list(found) == expected
    images = {name: n for name, (_, n) in found.items()}
    assert images["Scores against the truth"] == 0                         # no truth: a note, no figure
    assert images["Training"] == 1 and images["Block usage per curriculum level"] >= 1
    assert images["Architectures"] == min(3, len(read_notebook_records(job / f"{nb}.ipynb")["scores"]))
    assert images.get("Size", 1) == 1
    r = json.loads((job / "results.json").read_text())
    shown = {u["level"] for u in r["block_usage"]}
    note = " ".join(t for _, t in outs[found["Block usage per curriculum level"][0]:found["Architectures"][0]])
    named = {int(k) for ls in re.findall(r"levels? ([\d, ]+):", note) for k in ls.split(", ")}
    assert set(range(1, params["num_blocks"] + 1)) == shown | named and not shown & named
    warn = training_warning(pd.DataFrame(r["history"]), NUM_CLASSES)
    html = (job / f"{nb}.html").read_text()
    if warn:                                                                # before the first figure, escaped
        assert outs[0][1].find("Warning:") > 0 and html.index("Warning:") < html.index("<img")
    assert "import closekit" not in html and "closekit.record:" not in html and "{'space'" not in html
    assert html.index("Training log") < html.rindex("<details>")           # the log last, folded


@pytest.mark.slow
def test_hand_run_ranks_against_a_planted_truth_and_records_next_to_its_run(smoke):
    run = Path(smoke["params"]["out_dir"])
    r = json.loads((run / "results.json").read_text())
    assert r["kendall"] == pytest.approx(1.0) and r["spearman"] == pytest.approx(1.0)
    assert r == read_notebook_records(smoke["hand"])
    assert list(smoke["cwd"].iterdir()) == []                                # nothing in the current directory
    outs = outputs(smoke["hand"])
    assert "kendall 1.000" in outs[0][1] and "Ranked against `truth`" in outs[0][1]
    assert sections(outs)["Scores against the truth"][1] == 1


@pytest.mark.slow
def test_gate_explorer_opens_the_run(smoke):
    out = smoke["tmp"] / "explorer.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "gate_explorer.ipynb"), str(out), kernel_name=smoke["kernel"],
                               parameters=dict(run_dir=str(smoke["job"]), archs="sample:6"), cwd=str(smoke["tmp"]),
                               progress_bar=False)
    outs = outputs(out)
    assert not [t for kind, t in outs if kind == "error"] and any(kind == "image" for kind, _ in outs)


@pytest.mark.slow
def test_compare_notebook_speaks_of_the_batch_it_reads(smoke, tmp_path):
    # two runs of one config: the hand run (planted truth) and a copy of it posing as seed 21 with another kendall;
    # both recorded the same ground-truth ceilings
    nb, src = smoke["nb"], json.loads((Path(smoke["params"]["out_dir"]) / "results.json").read_text())
    runs = tmp_path / "runs"
    for name, seed, dk in (("a", 20, 0), ("b", 21, -0.2)):
        (runs / name).mkdir(parents=True)
        shutil.copy(smoke["hand"], runs / name / f"{nb}.ipynb")
        r = {**src, "config": {**src["config"], "seed": seed}, "kendall": src["kendall"] + dk,
             "truth_best_kendall": 0.8, "truth_seed_kendall": 0.7}
        (runs / name / "results.json").write_text(json.dumps(r))
        (runs / name / "status.json").write_text(json.dumps({"state": "ok"}))
    assert len(read_results(runs)) == 2
    out = tmp_path / "cmp" / "compare.ipynb"
    out.parent.mkdir()
    papermill.execute_notebook(str(NOTEBOOKS / "compare.ipynb"), str(out), parameters={"batch_dir": str(runs)},
                               kernel_name=smoke["kernel"], cwd=str(out.parent), progress_bar=False)
    records = read_notebook_records(out)
    (row,) = records["compare_table"]
    assert row["runs"] == 2 and row["seeds"] == [20, 21]
    assert row["kendall_mean"] == pytest.approx(0.9) and row["kendall_std"] == pytest.approx(0.2 / np.sqrt(2))
    assert row["truth_best_kendall_mean"] == 0.8
    assert records["truth_ceilings"] == {"truth_best_kendall": 0.8, "truth_seed_kendall": 0.7}
    assert list(out.parent.iterdir()) == [out]                                # kept in the notebook, no file
    outs = outputs(out)
    lead = next(t for kind, t in outs if kind == "text" and "Runs of" in t)
    assert f"Runs of `{nb}.ipynb` on {smoke['space']}: **1 configuration**, 2 runs" in lead
    assert "best reachable τ = 0.800" in lead
    images = [i for i, (kind, _) in enumerate(outs) if kind == "image"]
    assert len(images) == 2
    table = next(i for i, (_, t) in enumerate(outs) if "± 0.14" in t)     # kendall: mean ± std over the 2 seeds
    assert table < images[0] and next(i for i, (_, t) in enumerate(outs) if "train_seconds" in t) > images[-1]


# ---- Probe (closekit.evaluate): kept here until it moves to tests/test_evaluate.py ----
def test_probe_records_block_usage_at_the_end_of_each_level():
    from types import SimpleNamespace

    from closekit.evaluate import block_usage, probe
    from conftest import tiny_cfg
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
    from closekit.evaluate import probe, probe_archs
    from conftest import tiny_cfg
    archs = sorted(closekit.groundtruth.load("mini-nb201", space)["arch"])
    first_edge = lambda a: a.split("|")[1]                                   # noqa: E731  op on edge 0->1
    assert {first_edge(a) for a in archs[:50]} == {"avg_pool_3x3~0"}         # a prefix would be one op on 0->1
    got = probe_archs(archs, 50, seed=0)
    assert got == probe_archs(archs, 50, seed=0) != probe_archs(archs, 50, seed=1)
    assert got != archs[:50] and len(set(got)) == 50 and got == [a for a in archs if a in set(got)]  # list order
    assert len({first_edge(a) for a in got}) >= 4                 # the ops on edge 0->1 (none is 3 of the 300)
    assert probe(space, archs, None, tiny_cfg(eval_every_archs=50, arch_seed=0)).archs == got
    assert probe_archs(archs[:7], 50, seed=0) == archs[:7]
