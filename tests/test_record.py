"""closekit.record: the display output, the results.json sidecar, and reading runs back."""
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from closekit import batch
from closekit.record import MIME, read_notebook_records, read_results, record

JOB_NB = Path(__file__).parent / "notebooks" / "job.ipynb"


@pytest.fixture
def rundir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                    # nothing may land in the current directory
    monkeypatch.setenv("CLOSEKIT_RECORD_DIR", str(tmp_path / "env"))   # nor where an environment variable says
    return tmp_path / "dest"


def test_record_merges_results_where_it_is_told(rundir, tmp_path):
    record(rundir, a=1, b=np.float32(0.5), arr=np.arange(3), nan=float("nan"))
    out = record(rundir, b=2, s=pd.Series([1.5, 2.5], index=["x", "y"]), df=pd.DataFrame({"k": [1, 2]}),
                 nested={"t": (np.int64(3), "u")})
    assert out["s"] == {"x": 1.5, "y": 2.5}
    got = json.loads((rundir / "results.json").read_text())
    assert got == {"a": 1, "b": 2, "arr": [0, 1, 2], "nan": None, "s": {"x": 1.5, "y": 2.5},
                   "df": [{"k": 1}, {"k": 2}], "nested": {"t": [3, "u"]}}
    assert isinstance(got["a"], int) and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in rundir.iterdir()] == ["results.json"]


def test_record_to_none_writes_no_file(rundir, tmp_path):
    assert record(None, x=np.int64(1)) == {"x": 1}
    assert list(tmp_path.iterdir()) == []


def test_record_refuses_unserialisable(rundir):
    with pytest.raises(TypeError, match="'bad'"):
        record(rundir, ok=1, bad=object())
    assert not (rundir / "results.json").exists()


def test_record_write_is_atomic(rundir, monkeypatch):
    record(rundir, a=1)

    def broken(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        record(rundir, a=2)
    assert json.loads((rundir / "results.json").read_text()) == {"a": 1}
    assert [p.name for p in rundir.iterdir()] == ["results.json"]  # no temp file left behind


def _executed(path, params, *records):
    """A notebook that looks executed by papermill with ``params`` and one record output per dict."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": params}
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={MIME: r, "text/plain": repr(r)}) for r in records]
    cell.outputs.insert(0, nbformat.v4.new_output("stream", name="stdout", text="hi\n"))
    nb.cells = [cell]
    nbformat.write(nb, str(path))
    return path


def test_read_notebook_records_later_wins(tmp_path):
    p = _executed(tmp_path / "a.ipynb", {"seed": 1}, {"x": 1, "y": 2}, {"y": 3})
    assert read_notebook_records(p) == {"x": 1, "y": 3}



def test_a_notebook_is_read_as_utf_8_whatever_the_locale(tmp_path):
    """Review 2: notebooks are UTF-8 files (nbformat reads them so); an ASCII locale (LC_ALL=POSIX) changes nothing."""
    import subprocess
    import sys
    p = _executed(tmp_path / "a.ipynb", {"seed": 1}, {"note": "0.2 ± 0.1"})
    env = {**os.environ, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "POSIX", "LANG": ""}
    code = f"from closekit.record import read_notebook_records as r; print(ascii(r({str(p)!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ascii({"note": "0.2 ± 0.1"})

def test_read_results_joins_params_and_records(tmp_path):
    nb1 = _executed(tmp_path / "n1.ipynb", {"lr": 0.1, "seed": 0}, {"acc": 0.5})
    nb2 = _executed(tmp_path / "n2.ipynb", {"lr": 0.2, "seed": 1}, {"acc": 0.7, "tau": 0.3})
    run = tmp_path / "batch" / "job-1"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text("lr: 0.3\nseed: 2\n")
    (run / "results.json").write_text(json.dumps({"acc": 0.9}))
    (run / "status.json").write_text(json.dumps({"state": "ok"}))
    df = read_results([nb1, nb2, run])
    assert list(df.columns) == ["lr", "seed", "acc", "tau", "run", "status"]
    assert df["acc"].tolist() == [0.5, 0.7, 0.9] and df["lr"].tolist() == [0.1, 0.2, 0.3]
    assert df["status"].tolist()[2] == "ok" and pd.isna(df["tau"][0])
    loose = _executed(tmp_path / "batch" / "loose.ipynb", {"lr": 0.4}, {"acc": 1.0})
    (tmp_path / "batch" / "plain.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))  # not executed
    df = read_results(tmp_path / "batch")
    assert df["run"].tolist() == [str(run), str(loose)] and df["acc"].tolist() == [0.9, 1.0]


@pytest.mark.slow
def test_record_through_papermill(tmp_path, monkeypatch):
    import papermill as pm
    monkeypatch.delenv("CLOSEKIT_RECORD_DIR", raising=False)
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(JOB_NB), str(out), parameters={"value": 3.0}, kernel_name=batch.ensure_kernel(),
                        cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(str(out), as_version=4)
    shown = [o for c in nb.cells for o in c.get("outputs", []) if MIME in o.get("data", {})]
    assert len(shown) == 2 and "text/plain" in shown[0]["data"]
    expected = {"value": 3.0, "stage": "last", "doubled": 6.0, "cwd": str(tmp_path)}
    assert read_notebook_records(out) == expected
    assert json.loads((tmp_path / "results.json").read_text()) == expected
    df = read_results([out])
    assert df.loc[0, "value"] == 3.0 and df.loc[0, "doubled"] == 6.0 and list(df.columns)[0] == "value"
