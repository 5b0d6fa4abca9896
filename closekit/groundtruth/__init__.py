"""Ground truth for ranking (CLOSE §4): stand-alone accuracies keyed by canonical architecture string.

``load("mini-nb201", space)`` gives the mini NB201 ground truth shipped with the package (stand-alone accuracies
on the embedded default dataset; recipe, seeds and noise ceiling in its meta.yaml; see ``SHIPPED``).

``load(spec, space)`` reads a CSV table (columns ``arch``, ``acc``; more columns are kept) and checks that
every architecture belongs to the space. A directory written by ``closekit truth build`` loads through
``minibench.load_truth``. Official NB201 files (a ``.pth``, a NATS-tss ``.pickle.pbz2``, or a NATS-tss fast-mode
directory) go to ``closekit.groundtruth.nb201.load_nb201``; options come as keyword arguments of ``load`` or as a
query suffix of the spec string, e.g. ``NAS-Bench-201-v1_0-e61699.pth?dataset=cifar10-valid&metric=x-valid``
(keys ``dataset``, ``metric``, ``protocol``; defaults cifar10, ori-test, deiso).
"""
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = {"mini-nb201": ASSETS / "mini_nb201"}     # name -> minibench directory inside the package
SHIPPED_DATASET = {"mini-nb201": "embedded"}          # name -> the closekit.data dataset it was trained on


def _official(spec):
    """(path, options) when spec names an official NB201/NATS-tss file or directory, else None."""
    text = str(spec)
    base, _, query = text.partition("?") if isinstance(spec, str) else (text, "", "")
    if not (base.endswith((".pth", ".pickle.pbz2")) or Path(base).is_dir()):
        return None
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    unknown = set(opts) - {"dataset", "metric", "protocol"}
    if unknown:
        raise ValueError(f"ground truth {spec!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                         "use dataset, metric, protocol")
    return Path(base), opts


def load(spec, space, **options):
    """Ground-truth DataFrame (arch, acc, ...) with ``attrs['version']``; arch strings are canonicalised.

    ``options`` (dataset, metric, protocol) apply to official NB201/NATS-tss files only; see ``nb201.load_nb201``.
    """
    if isinstance(spec, str) and spec in SHIPPED:
        spec = SHIPPED[spec]
    if not options and Path(str(spec)).is_dir() and (Path(spec) / "meta.yaml").is_file():
        from .minibench import load_truth            # a mini benchmark built by `closekit truth build`
        return load_truth(spec)
    official = _official(spec)
    if official is not None:
        from .nb201 import load_nb201
        path, opts = official
        return load_nb201(path, space=space, **{**opts, **options})
    if options:
        raise ValueError(f"ground truth {spec!r}: option(s) {', '.join(sorted(options))} apply only to official "
                         "NB201/NATS-tss files")
    path = Path(spec)
    if path.suffix != ".csv" or not path.is_file():
        raise FileNotFoundError(f"ground truth {spec!r} not found; give a shipped name ({', '.join(SHIPPED)}), the "
                                "path of a CSV file with columns arch, acc, or an official NB201 .pth / NATS-tss "
                                ".pickle.pbz2 file or -simple directory")
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
