"""closekit batch --grid: values typed like the notebook's parameters, the Cartesian product over every params file,
job names saying what varies, bad grids refused before anything runs, a 3-value study as one command."""
import json
from pathlib import Path

import papermill
import pytest

from closekit import batch, cli, jobs as joblib
from closekit.config import parse_overrides, read_yaml
from closekit.grid import parse_grid

ROOT = Path(__file__).resolve().parents[1]
NB201 = ROOT / "notebooks/nb201.ipynb"
KNOWN = joblib.notebook_parameters(NB201)     # its parameters cell and, a run notebook, every RunConfig key
JOB_NB = Path(__file__).parent / "notebooks" / "job.ipynb"


def test_values_are_typed_like_the_notebook_parameters():
    grid = dict(parse_grid(["seed=0,1,2", "gate_lr_scale=1,10", "truth=null,mini-nb201",
                                  "cl_schedule=[1,2,3],[1,3,5]", "augment=true,false", "image_size=None,16",
                                  "archs=sample:20,truth", "dataset='synthetic'"], NB201, KNOWN))
    assert grid["seed"] == [0, 1, 2] and all(type(v) is int for v in grid["seed"])
    assert grid["gate_lr_scale"] == [1.0, 10.0] and all(type(v) is float for v in grid["gate_lr_scale"])
    assert grid["truth"] == [None, "mini-nb201"]                       # Optional[str]: null is None
    assert grid["cl_schedule"] == [[1, 2, 3], [1, 3, 5]]               # commas inside brackets do not split
    assert grid["augment"] == [True, False] and grid["image_size"] == [None, 16]
    assert grid["archs"] == ["sample:20", "truth"] and grid["dataset"] == ["synthetic"]
    assert dict(parse_grid(["space=123"], NB201, KNOWN))["space"] == ["123"]   # a str parameter keeps the text


@pytest.mark.parametrize("pair, message", [
    ("sed=0,1", r"--grid sed: unknown parameter 'sed' for nb201\.ipynb; known: space, "),
    ("seed=0,x", r"--grid seed: value 'x' is not an int \(the notebook declares seed: int\)"),
    ("seed=1.5", r"value '1.5' is not an int"),
    ("lr=true", r"--grid lr: value 'true' is not a float"),
    ("epochs=None", r"--grid epochs: None is not an int"),
    ("cl_schedule=5", r"value '5' is not a list"),
    ("seed", r"--grid expects key=v1,v2,\.\.\., got 'seed'"),
    ("seed=1,1", r"--grid seed: repeated value in '1,1'"),
    ("lr=[1", r"--grid lr: value '\[1' is not valid YAML"),
])
def test_bad_grid_is_one_line_naming_the_token(pair, message):
    with pytest.raises(ValueError, match=message):
        parse_grid([pair], NB201, KNOWN)
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["seed=0", "seed=1"], NB201, KNOWN)


def test_product_over_every_params_file_and_names(tmp_path):
    a, b = tmp_path / "mini-close.yaml", tmp_path / "mini-vanilla.yaml"
    a.write_text("supernet: close\nseed: 7\n")
    b.write_text("supernet: vanilla\n")
    grid = parse_grid(["seed=0,1,2", "gate_lr_scale=1,10"], NB201, KNOWN)
    jobs = joblib.make_jobs(NB201, [a, b], tmp_path / "out", grid)
    assert len(jobs) == 2 * 3 * 2
    names = [j["id"].rsplit("-", 1)[0] for j in jobs]
    assert names[:3] == ["mini-close_seed-0_gate_lr_scale-1.0", "mini-close_seed-0_gate_lr_scale-10.0",
                         "mini-close_seed-1_gate_lr_scale-1.0"]
    assert names[6] == "mini-vanilla_seed-0_gate_lr_scale-1.0"
    first = jobs[0]["params"]
    assert first == {"supernet": "close", "seed": 0, "gate_lr_scale": 1.0}      # the grid value over the file's
    assert jobs[0]["src"] == str(a) and len({j["hash"] for j in jobs}) == 12
    assert joblib.make_jobs(NB201, [a], tmp_path / "out") [0]["params"] == {"supernet": "close", "seed": 7}
    only = joblib.make_jobs(NB201, [], tmp_path / "out", parse_grid(["seed=0,1"], NB201, KNOWN))
    assert [j["id"].rsplit("-", 1)[0] for j in only] == ["nb201_seed-0", "nb201_seed-1"]   # defaults, grid only


def test_batch_inspects_the_notebook_once_and_takes_any_run_config_key(tmp_path, monkeypatch):
    """papermill reads the notebook once per batch; a run notebook takes RunConfig keys its cell does not declare."""
    calls = []
    real = papermill.inspect_notebook
    monkeypatch.setattr(papermill, "inspect_notebook", lambda nb: calls.append(nb) or real(nb))
    p = tmp_path / "p.yaml"
    p.write_text("gate_lr_scale: 10\nmlp_parent: wit\nwrong_key: 1\n")      # the first two: not in nb201's cell
    assert "gate_lr_scale" not in real(str(NB201)) and "gate_lr_scale" in KNOWN
    with pytest.raises(ValueError, match=r"p\.yaml: unknown parameter\(s\) 'wrong_key' for nb201\.ipynb"):
        batch.run_batch(NB201, [p], tmp_path / "out", grid=["seed=0,1"], log=lambda *_: None)
    assert len(calls) == 1 and not (tmp_path / "out").exists()


def test_a_bad_grid_runs_nothing(tmp_path, capsys):
    p = tmp_path / "ok.yaml"
    p.write_text("mode: ok\n")
    out = tmp_path / "out"
    assert cli.main(["batch", str(JOB_NB), str(p), "--out", str(out), "--grid", "valu=1,2"]) == 2
    assert "--grid valu: unknown parameter 'valu' for job.ipynb; known: mode, value" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["batch", str(JOB_NB), "--grid", "value=1"]) == 2          # no --out
    assert "--out DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_three_value_study_is_one_command(tmp_path, capsys):
    p = tmp_path / "ok.yaml"
    p.write_text("mode: ok\n")
    out = tmp_path / "out"
    args = ["batch", str(JOB_NB), str(p), "--out", str(out), "--grid", "value=1,2,3", "--cpu-slots", "3",
            "--no-html", "--kernel", batch.ensure_kernel()]
    assert cli.main(args) == 0
    dirs = sorted(d for d in out.iterdir() if d.is_dir())
    assert [d.name.rsplit("-", 1)[0] for d in dirs] == ["ok_value-1", "ok_value-2", "ok_value-3"]
    assert [json.loads((d / "results.json").read_text())["doubled"] for d in dirs] == [2, 4, 6]
    capsys.readouterr()
    assert cli.main(args) == 0 and capsys.readouterr().out.count("skipped") == 3     # the rerun skips all three
    assert cli.main(["batch", "--status", str(out)]) == 0
    status = capsys.readouterr().out
    assert all(d.name in status for d in dirs) and status.count(" ok ") == 3


def test_overrides_and_yaml_files_read_1e8_as_a_float(tmp_path):
    """YAML 1.1 reads 1.0e8 as a string (it wants 1.0e+8); --set, --slurm and params files read YAML 1.2 floats."""
    assert parse_overrides(["lr=1.0e8", "wd=1e-3", "x=1.0e+8", "archs=sample:20", "n=1_000"]) == \
        {"lr": 1e8, "wd": 1e-3, "x": 1e8, "archs": "sample:20", "n": 1000}
    (tmp_path / "p.yaml").write_text("lr: 1.0e8\nname: 1e3x\n")
    assert read_yaml(tmp_path / "p.yaml") == {"lr": 1e8, "name": "1e3x"}
    with pytest.raises(ValueError, match=r"^--set expects KEY=VALUE, got 'lr' \(e\.g\. --set lr=0\.1\)$"):
        parse_overrides(["lr"])
