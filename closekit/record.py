"""Record run results: ``record(to, **values)`` shows them in the executing notebook as one custom-mimetype output
and merges them into ``to``/results.json (a destination passed, never read from the environment); ``read_results``
gathers many runs into a DataFrame. Scrapbook's ``glue`` without the dependency; non-finite floats become null.
"""
import json
import math
import os
import sys
from pathlib import Path

from .checkpoint import atomic_json
from .jobs import read_status

MIME = "application/vnd.closekit.record+json"
RESULTS = "results.json"


def _jsonable(v, key):
    """``v`` as plain JSON types (numpy, pandas converted; NaN/inf -> None); TypeError naming ``key`` otherwise."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x, key) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, key) for x in v]
    lib = type(v).__module__.split(".")[0]
    if lib == "numpy" and hasattr(v, "tolist"):  # scalars -> numbers, arrays -> nested lists
        return _jsonable(v.tolist(), key)
    if lib == "pandas" and hasattr(v, "to_dict"):  # Series -> {index: value}, DataFrame -> list of row dicts
        return _jsonable(v.to_dict(orient="records") if hasattr(v, "columns") else v.to_dict(), key)
    if lib == "pandas" and hasattr(v, "isoformat"):
        return v.isoformat()
    raise TypeError(f"record: value of {key!r} is a {type(v).__name__}, not JSON-serialisable")


def record(to, /, **values):
    """Show ``values`` in the notebook (one output that ``read_notebook_records`` reads back) and merge them into
    ``to``/results.json (``to`` None: the executed notebook alone keeps them); returns the JSON-ready dict."""
    values = {k: _jsonable(v, k) for k, v in values.items()}
    path = None if to is None else Path(to) / RESULTS
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_json(path, {**(json.loads(path.read_text()) if path.exists() else {}), **values})
    ipython = sys.modules.get("IPython")           # a kernel has imported it; a plain script has not
    if ipython is not None and ipython.get_ipython() is not None:
        ipython.display.display({MIME: values, "text/plain": f"results recorded in {path or 'this notebook'}"},
                                raw=True)
    return values


def _read_nb(path):
    """(papermill parameters, merged records) of a notebook; the parameters are None if papermill did not run it."""
    nb, out = json.loads(Path(path).read_text(encoding="utf-8")), {}                  # nbformat: always UTF-8
    for o in (o for cell in nb.get("cells", []) for o in cell.get("outputs", [])):
        data = o.get("data", {}).get(MIME)
        if data is not None:
            out.update(json.loads(data) if isinstance(data, str) else data)
    papermill = nb.get("metadata", {}).get("papermill")
    return (None if papermill is None else dict(papermill.get("parameters") or {})), out


def read_notebook_records(path):
    """Every record output of an executed notebook merged (later wins)."""
    return _read_nb(path)[1]


def _run_row(run):
    """(params, records, state) of one run: an executed notebook or a run directory."""
    import yaml
    run = Path(run)
    if run.is_file():
        params, records = _read_nb(run)
        return params or {}, records, read_status(run.parent).get("state")
    params, records = {}, {}
    for p, r in map(_read_nb, sorted(run.glob("*.ipynb"))):
        if p is not None:                       # a notebook papermill executed, not a copy lying there
            params.update(p)
            records.update(r)
    if (run / "params.yaml").exists():
        params.update(yaml.safe_load((run / "params.yaml").read_text()) or {})
    if (run / RESULTS).exists():
        records.update(json.loads((run / RESULTS).read_text()))
    return params, records, read_status(run).get("state")


def _find_runs(item):
    """Run paths under ``item``: itself if a notebook or run directory, else a recursive search for both."""
    item, marks = Path(item), ("status.json", RESULTS, "params.yaml")
    if item.is_file() or any((item / m).exists() for m in marks):
        return [item]
    runs = sorted({p.parent for m in marks for p in item.rglob(m)})
    return runs + [p for p in sorted(item.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
                   and not any(r in p.parents for r in runs) and _read_nb(p)[0] is not None]


def read_results(paths_or_dir):
    """One row per run (parameters, recorded values, ``run``, ``status``) from notebooks and/or run dirs."""
    import pandas as pd
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    rows, pcols, rcols = [], {}, {}
    for run in (r for item in items for r in _find_runs(item)):
        params, records, status = _run_row(run)
        pcols.update(dict.fromkeys(params))
        rcols.update(dict.fromkeys(k for k in records if k not in pcols))
        rows.append({**params, **records, "run": str(run), "status": status})
    cols = list(pcols) + [k for k in rcols if k not in pcols] + ["run", "status"]
    return pd.DataFrame(rows, columns=cols)
