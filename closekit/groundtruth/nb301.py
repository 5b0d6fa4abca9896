"""NAS-Bench-301 ground-truth files (CLOSE §4.2 ranking; reference/benchmarks-and-metrics.md §2.3-2.4).

The NB301 training-data records (``results_*.json``: a ConfigSpace dict under ``optimized_hyperparamater_config``
(sic), val and test accuracy in %). The reference's YAML arch list is read as ``archs`` (``evaluate.arch_list``); a
CSV (arch, acc), e.g. written by the surrogate (``nb301_surrogate``), loads through ``closekit.groundtruth.load``.
"""
import json
from pathlib import Path

import pandas as pd

KEY = "optimized_hyperparamater_config"


def official(path):
    """The loader of an NB301 results_*.json (or of a directory holding some, not a minibench), else None."""
    p = Path(path)
    if (p.suffix == ".json" and p.name.startswith("results")) or (
            p.is_dir() and not (p / "meta.yaml").is_file() and next(p.rglob("results*.json"), None) is not None):
        return load_records
    return None


def _record(path, space):
    """(canonical arch, val acc, test acc) of one results_*.json; one-line ValueError naming the file."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"NB301 record {path} is not readable JSON ({e})") from None
    if not isinstance(d, dict) or KEY not in d:
        raise ValueError(f"NB301 record {path} has no {KEY!r} (an NB301 training-data results_*.json has the "
                         "architecture there); is it a file of another benchmark?")
    try:
        arch = space.canonical_str(d[KEY])
        val, test = float(d["info"][0]["val_accuracy"]), d.get("test_accuracy")
    except ValueError as e:
        raise ValueError(f"NB301 record {path}: {e}") from None
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"NB301 record {path} lacks info[0]['val_accuracy']") from None
    return arch, val / 100, None if test is None else float(test) / 100


def load_records(path, *, space, metric="val"):
    """Records -> a row per canonical arch: acc (``metric`` val | test), val_acc, test_acc, n_records (averaged)."""
    if metric not in ("val", "test"):
        raise ValueError(f"NB301 records metric={metric!r} is not one of val, test")
    p = Path(path)
    files = sorted(p.rglob("results*.json")) if p.is_dir() else [p]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"NB301 records {path}: no results_*.json found")
    rows = [_record(f, space) for f in files]
    df = pd.DataFrame(rows, columns=["arch", "val_acc", "test_acc"])
    if metric == "test" and df["test_acc"].isna().any():
        bad = files[int(df["test_acc"].isna().to_numpy().argmax())]
        raise ValueError(f"NB301 record {bad} has no test_accuracy; use metric=val")
    df = df.groupby("arch", sort=True).agg(val_acc=("val_acc", "mean"), test_acc=("test_acc", "mean"),
                                           n_records=("val_acc", "size")).reset_index()
    df.insert(1, "acc", df[f"{metric}_acc"])
    df.attrs["version"] = f"nb301-data-{metric}"
    return df
