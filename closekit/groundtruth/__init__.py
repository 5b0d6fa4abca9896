"""Ground truth for ranking (CLOSE §4): stand-alone accuracies keyed by canonical architecture string.

``load(spec, space)`` reads a shipped mini benchmark (``SHIPPED``), a ``closekit truth build`` directory, a CSV
(arch, acc) or an official file of the space through its reader module in ``READERS`` (no space imports the ground
truth); reader options come as keywords or a query suffix, e.g. ``NAS-Bench-201-v1_0-e61699.pth?dataset=cifar100``.
"""
import functools
import inspect
import io
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from . import nb201, nb301, nds
from .files import canonical_archs, one_line, read_text

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# name -> minibench directory inside the package: every assets/mini_<space> with a meta.yaml ships as mini-<space>
SHIPPED = {d.name.replace("_", "-"): d for d in sorted(ASSETS.glob("mini_*")) if (d / "meta.yaml").is_file()}
# space name -> the module of its official readers: ``official(path)`` gives the loader of a file, or None
READERS = {"nb201": nb201, "nb301": nb301, "nds-resnet": nds, "nds-resnexta": nds}


def _official(spec, space):
    """The space's loader of ``spec`` with its path and query options bound, when ``spec`` is an official file."""
    base, _, query = spec.partition("?") if isinstance(spec, str) else (str(spec), "", "")
    reader = READERS.get(space.name)
    loader = reader and reader.official(base)
    if loader is None:
        return None
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    known = [k for k, p in inspect.signature(loader).parameters.items() if p.kind == p.KEYWORD_ONLY and k != "space"]
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ValueError(f"ground truth {spec!r}: unknown option(s) {', '.join(unknown)}; use {', '.join(known)}")
    return functools.partial(loader, Path(base), space=space, **opts)


def _not_ours(path, space):
    """One line for a file that exists but no reader of ``space`` takes: what it is, and what to give instead."""
    others = sorted(n for n, r in READERS.items() if n != space.name and r.official(path))
    if others:
        what = f"an official ground-truth file of space {', '.join(others)}"
    elif path.suffix in (".yaml", ".yml"):
        what = "a YAML file (an architecture list goes to archs=; a ground truth needs accuracies)"
    else:
        what = f"a {path.suffix or 'suffix-less'} {'directory' if path.is_dir() else 'file'}"
    return ValueError(f"ground truth {path} is {what}, not a ground truth of {space.name}; {_give(space)}")


def _give(space):
    return (f"give a shipped name ({', '.join(SHIPPED)}), a CSV with columns arch, acc, a `closekit truth build` "
            f"directory or an official {space.name} file")


def _csv(path, space):
    """A CSV ground truth, every row checked: arch of the space, acc a finite number, no isomorphic repeats."""
    if path.stat().st_size == 0:
        raise ValueError(f"ground truth {path} is empty (0 bytes); write a header arch,acc and one row per arch")
    try:
        df = pd.read_csv(io.StringIO(read_text(path)), comment="#", dtype={"arch": str, "acc": str},
                         keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"ground truth {path} is not a readable CSV ({one_line(e)})") from None
    missing = {"arch", "acc"} - set(df.columns)
    if missing:
        raise ValueError(f"ground truth {path} lacks column(s) {', '.join(sorted(missing))}; need arch and acc")
    if df.empty:
        raise ValueError(f"ground truth {path} has a header but no rows; add one row per architecture (arch,acc)")
    acc = pd.to_numeric(df["acc"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(acc).all():
        i = int(np.isfinite(acc).argmin())
        raw = "" if pd.isna(df["acc"].iat[i]) else df["acc"].iat[i]
        raise ValueError(f"ground truth {path} line {i + 2}: acc={raw!r} is not a finite number; give every "
                         "architecture its accuracy (a fraction in [0, 1])")
    df["acc"] = acc
    df["arch"] = canonical_archs(space, df["arch"], f"{path} line", start=2)
    if df["arch"].duplicated().any():
        dup = df.loc[df["arch"].duplicated(), "arch"].iloc[0]
        raise ValueError(f"ground truth {path} lists isomorphic architectures twice (e.g. {dup}); keep one per class")
    df.attrs["version"] = path.stem
    return df


def load(spec, space, for_dataset=None, **options):
    """Ground-truth DataFrame (arch, acc, ...) with ``attrs['version']``; ``for_dataset`` refuses another dataset's."""
    name = spec
    spec = SHIPPED.get(spec, spec)
    if not options and (Path(spec) / "meta.yaml").is_file():
        from .minibench import load_truth            # a mini benchmark built by `closekit truth build`
        return load_truth(spec, space, name, for_dataset)
    official = _official(spec, space)
    if official is not None:
        return official(**options)
    if options:
        raise ValueError(f"ground truth {spec!r}: option(s) {', '.join(sorted(options))} apply only to official "
                         f"{space.name} files")
    path = Path(spec)
    if path.suffix == ".csv" and path.is_file():
        return _csv(path, space)
    if path.exists():
        raise _not_ours(path, space)
    raise FileNotFoundError(f"ground truth {spec!r} not found; {_give(space)}")
