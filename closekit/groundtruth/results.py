"""The rows of a mini ground truth: results.csv, one line per finished arch x seed, and the per-arch table.

Only the building process writes rows (under the flock of out_dir/.lock), each one whole line by a single
O_APPEND write(2), then fsync: a kill leaves at worst a last line without its newline, which reading ignores (and
``read_results(repair=True)`` cuts away), so every row is present once and whole, or absent and trained again.
"""
import csv
import io
import os
from pathlib import Path

import pandas as pd

COLS = ("arch", "seed", "acc", "loss", "params", "seconds")
FILE_MODE = 0o644


def read_results(path, repair=False):
    """Finished rows of results.csv (empty if missing); a last line without newline is ignored (cut when ``repair``)."""
    path = Path(path)
    raw = path.read_bytes() if path.exists() else b""
    keep = raw[:raw.rfind(b"\n") + 1]
    if repair and len(keep) < len(raw):
        os.truncate(path, len(keep))
    df = pd.read_csv(io.BytesIO(keep or ",".join(COLS).encode()), dtype={"arch": str, "seed": int})
    if tuple(df.columns) != COLS:
        raise ValueError(f"{path} has columns {', '.join(df.columns)}, expected {', '.join(COLS)}")
    return df.drop_duplicates(["arch", "seed"]).reset_index(drop=True)


def append(path, fields):
    """One CSV row (fields with commas or quotes quoted: DARTS genotypes) by a single O_APPEND write, then fsync."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(fields)
    fd, buf = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE), memoryview(line.getvalue().encode())
    try:
        while buf:                       # a short write leaves a line without newline: ignored on read
            buf = buf[os.write(fd, buf):]
        os.fsync(fd)
    finally:
        os.close(fd)


def truth_table(results):
    """One row per arch (sorted by arch string): arch, acc (mean over seeds), acc_seed<s>, n_seeds, params."""
    wide = results.pivot(index="arch", columns="seed", values="acc").sort_index()
    out = wide.rename(columns=lambda s: f"acc_seed{s}")
    out.insert(0, "acc", wide.mean(axis=1))
    out["n_seeds"] = wide.notna().sum(axis=1)
    out["params"] = results.groupby("arch")["params"].first()
    return out.rename_axis(None, axis=1).reset_index()
