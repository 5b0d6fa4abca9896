"""Ground truth for ranking (CLOSE §4): stand-alone accuracies keyed by canonical architecture string.

``load("mini-nb201", space)`` gives the mini NB201 ground truth shipped with the package (stand-alone accuracies
on the embedded default dataset; recipe, seeds and noise ceiling in its meta.yaml; see ``SHIPPED``);
``load("mini-nb301", space)`` the mini NB301 one (a prefix of its sample: meta.yaml says how many genotypes).

``load(spec, space)`` reads a CSV table (columns ``arch``, ``acc``; more columns are kept) and checks that
every architecture belongs to the space. A directory written by ``closekit truth build`` loads through
``minibench.load_truth``, which refuses a ground truth of another space (and, with ``dataset``, of another
dataset). Official files go to the loader the space names (``space.official_truth``; NB201: a ``.pth``, a
NATS-tss ``.pickle.pbz2`` or fast-mode directory, ``closekit.groundtruth.nb201.load_nb201``); its options come as
keyword arguments of ``load`` or as a query suffix of the spec string, e.g.
``NAS-Bench-201-v1_0-e61699.pth?dataset=cifar10-valid&metric=x-valid``.
"""
import inspect
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# name -> minibench directory inside the package: every assets/mini_<space> with a meta.yaml ships as mini-<space>
SHIPPED = {d.name.replace("_", "-"): d for d in sorted(ASSETS.glob("mini_*")) if (d / "meta.yaml").is_file()}


def _official(spec, space):
    """(loader, path, options) when the space recognises ``spec`` as one of its official files, else None."""
    text = str(spec)
    base, _, query = text.partition("?") if isinstance(spec, str) else (text, "", "")
    loader = space.official_truth(base)
    if loader is None:
        return None
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    known = [k for k, p in inspect.signature(loader).parameters.items()
             if p.kind == p.KEYWORD_ONLY and k != "space"]
    unknown = set(opts) - set(known)
    if unknown:
        raise ValueError(f"ground truth {spec!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"use {', '.join(known)}")
    return loader, Path(base), opts


def load(spec, space, for_dataset=None, **options):
    """Ground-truth DataFrame (arch, acc, ...) with ``attrs['version']``; arch strings are canonicalised.

    ``for_dataset``: the closekit.data dataset the one-shot scores come from; a ground truth recording another one
    is refused. ``options`` apply to the space's official files only.
    """
    name = spec
    if isinstance(spec, str) and spec in SHIPPED:
        spec = SHIPPED[spec]
    if not options and Path(str(spec)).is_dir() and (Path(spec) / "meta.yaml").is_file():
        from .minibench import load_truth            # a mini benchmark built by `closekit truth build`
        df = load_truth(spec, space, name)
        if for_dataset is not None and df.attrs["dataset"] != for_dataset:
            raise ValueError(f"ground truth {name} holds {df.attrs['dataset']} accuracies, but the scores come from "
                             f"dataset={for_dataset}; set truth to a ground truth of {for_dataset} (or null)")
        return df
    official = _official(spec, space)
    if official is not None:
        loader, path, opts = official
        return loader(path, space=space, **{**opts, **options})
    if options:
        raise ValueError(f"ground truth {spec!r}: option(s) {', '.join(sorted(options))} apply only to official "
                         f"{space.name} files")
    path = Path(spec)
    if path.suffix != ".csv" or not path.is_file():
        raise FileNotFoundError(f"ground truth {spec!r} not found; give a shipped name ({', '.join(SHIPPED)}), the "
                                "path of a CSV file with columns arch, acc, a `closekit truth build` directory, or "
                                f"an official {space.name} file")
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
