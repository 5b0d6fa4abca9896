"""Ground truth for ranking (CLOSE §4): stand-alone accuracies keyed by canonical architecture string.

``load(spec, space)`` reads a CSV table (columns ``arch``, ``acc``; more columns are kept) and checks that
every architecture belongs to the space; the official benchmark loaders and the mini-benchmark builder
extend this module.
"""
from pathlib import Path

import pandas as pd


def load(spec, space):
    """Ground-truth DataFrame (arch, acc, ...) with ``attrs['version']``; arch strings are canonicalised."""
    path = Path(spec)
    if path.suffix != ".csv" or not path.is_file():
        raise FileNotFoundError(f"ground truth {spec!r} not found; give the path of a CSV file with columns arch, acc")
    df = pd.read_csv(path, comment="#")
    missing = {"arch", "acc"} - set(df.columns)
    if missing:
        raise ValueError(f"ground truth {path} lacks column(s) {', '.join(sorted(missing))}; need arch and acc")
    canon = []
    for i, s in enumerate(df["arch"], 2):
        try:
            canon.append(space.canonical_str(s))
        except ValueError as e:
            raise ValueError(f"ground truth {path} line {i} does not belong to space {space.name}: {e}") from None
    df["arch"] = canon
    if df["arch"].duplicated().any():
        dup = df.loc[df["arch"].duplicated(), "arch"].iloc[0]
        raise ValueError(f"ground truth {path} lists isomorphic architectures twice (e.g. {dup}); keep one per class")
    df.attrs["version"] = path.stem
    return df
