"""Official NAS-Bench-201 / NATS-Bench topology ground truth, as the CLOSE reference code ranks against it.

The CLOSE reference (aw_nas ``evaluation.py --type deiso``) ranks the 6,466 isomorphism-class representatives
of NB201 against the CIFAR-10 test accuracy after 200 epochs of training on train+valid, averaged over the
available seeds and then over the members of each isomorphism class (NAS-Bench-201 v1_0 file).
``load_nb201`` reproduces that table from the official files, read through the official APIs:

* NAS-Bench-201 ``.pth`` (``NAS-Bench-201-v1_0-e61699.pth``, ``NAS-Bench-201-v1_1-096897.pth``) through
  ``nas_201_api.NASBench201API``;
* NATS-Bench topology (``NATS-tss-v1_0-3ffb9.pickle.pbz2``, or the fast-mode directory
  ``NATS-tss-v1_0-3ffb9-simple/``) through ``nats_bench.create(path, "tss", ...)``.

Results are always the 200-epoch ones (``hp="200"``; the APIs default to 12 epochs) and seed means
(``is_random=False``; the APIs default to one random seed). Accuracies are returned as fractions in [0, 1].
Needs the optional extra: ``pip install "closekit[benchmarks]"``.
"""
import re
import warnings
from pathlib import Path

import pandas as pd

EXTRA = 'pip install "closekit[benchmarks]"'
# dataset -> {metric (the benchmark's eval-set name) -> key of get_more_info's dict}
METRICS = {
    "cifar10": {"ori-test": "test-accuracy"},
    "cifar10-valid": {"x-valid": "valid-accuracy", "ori-test": "test-accuracy"},
    "cifar100": {"x-valid": "valid-accuracy", "x-test": "test-accuracy", "ori-test": "valtest-accuracy"},
    "ImageNet16-120": {"x-valid": "valid-accuracy", "x-test": "test-accuracy", "ori-test": "valtest-accuracy"},
}
PROTOCOLS = ("deiso", "all")
PBZ2 = ".pickle.pbz2"
_SSS_ARCH = re.compile(r"\d+(:\d+)+")  # NATS size-space archs look like '64:32:16:48:64'
_EXPECTED = ("expected NAS-Bench-201-v1_*.pth, NATS-tss-*.pickle.pbz2 or a NATS-tss-*-simple directory "
             "(NB201 topology benchmark)")


def _line(x, limit=240) -> str:
    """str(x) squeezed onto one line and shortened, for error messages."""
    s = " ".join(str(x).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _need(module):
    """Import an optional benchmark API, or fail with one line saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"reading official NB201/NATS ground truth needs {module}: {EXTRA}") from None


def file_version(path) -> str:
    """Benchmark version from the file name: 'nb201-v1_0', 'nb201-v1_1', 'nats-tss-v1_0', else the bare stem."""
    name = Path(path).name
    m = re.match(r"NAS-Bench-201-(v\d+_\d+)", name)
    if m:
        return f"nb201-{m.group(1)}"
    m = re.match(r"NATS-(tss|sss)-(v\d+_\d+)", name)
    if m:
        return f"nats-{m.group(1)}-{m.group(2)}"
    for suffix in (PBZ2, ".pth"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _torch_load(path):
    """Load a .pth as plain data: weights_only=True (plus numpy scalars), else full unpickling with a warning."""
    import numpy as np
    import torch

    allow = [np.dtype, type(np.dtype("float64")), type(np.dtype("float32")), type(np.dtype("int64"))]
    try:
        allow.append(np._core.multiarray.scalar)
    except AttributeError:  # numpy < 2
        allow.append(np.core.multiarray.scalar)
    try:
        with torch.serialization.safe_globals(allow):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not plain data (or not a torch file at all): try the full unpickler below
        reason = str(e).partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0] or str(e)
        reason = _line(re.sub(r"\x1b\[[0-9;]*m|\. Please use .*", "", reason, flags=re.S), 160)
    warnings.warn(f"{path}: weights_only=True load failed ({reason}); loading with weights_only=False, which can run "
                  "code stored in the file: use only official benchmark files from a trusted source", stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path} is not a torch.save file ({_line(e, 120)}); {_EXPECTED}") from None


def _check_dict(data, path):
    """One-line ValueError unless data is a benchmark dict with the official top-level keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a benchmark dict; {_EXPECTED}")
    missing = [k for k in ("meta_archs", "arch2infos", "evaluated_indexes") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks key(s) {', '.join(missing)} (has {_line(sorted(map(str, data)), 80)}); "
                         f"{_EXPECTED}")


def _open_pth(path):
    """NASBench201API on a .pth: by path first (torch's default weights_only=True load), then via our loader."""
    api_mod = _need("nas_201_api")
    try:  # by path the API unpickles the file itself, without the deep copy it makes of a dict
        return api_mod.NASBench201API(str(path), verbose=False)
    except (AssertionError, KeyError) as e:  # raised after a successful load: the dict is not an NB201 benchmark
        raise _not_pth(path, e) from None
    except Exception:  # torch.load failed: weights-only refusal (e.g. numpy scalars), or not a torch file at all
        pass
    data = _torch_load(path)
    _check_dict(data, path)
    try:
        return api_mod.NASBench201API(data, verbose=False)
    except Exception as e:
        raise _not_pth(path, e) from None


def _not_pth(path, e):
    """One-line ValueError for a loaded .pth whose dict the NB201 API rejects."""
    if isinstance(e, KeyError) and e.args and e.args[0] in ("less", "full"):
        why = "its arch2infos entries lack the 'less'/'full' results of an NB201 .pth; NATS-tss files are .pickle.pbz2"
    else:
        why = _line(f"{type(e).__name__}: {e}", 120)
    return ValueError(f"{path} is not a NAS-Bench-201 .pth benchmark ({why}); {_EXPECTED}")


def _open_nats(path, fast_mode):
    """NATS-Bench topology API on a .pickle.pbz2 file or a fast-mode directory."""
    nats_bench = _need("nats_bench")
    try:
        return nats_bench.create(str(path), "tss", fast_mode=fast_mode, verbose=False)
    except Exception as e:
        what = "fast-mode directory (meta.pickle.pbz2 + one NNNNNN.pickle.pbz2 per arch)" if fast_mode else \
            "bz2-compressed pickle of the benchmark dict"
        raise ValueError(f"{path} is not a NATS-Bench topology {what} ({_line(f'{type(e).__name__}: {e}', 120)}); "
                         f"{_EXPECTED}") from None


def open_api(path):
    """(official API object, fast_mode) for an NB201 .pth, a NATS-tss .pickle.pbz2 or a NATS-tss-*-simple dir."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ground truth {str(path)!r} not found; {_EXPECTED}")
    if file_version(path).startswith("nats-sss"):
        raise ValueError(f"{path} is a NATS-Bench size search space (sss) file; {_EXPECTED}")
    if path.is_dir():
        if not (path / f"meta{PBZ2}").is_file():
            raise ValueError(f"{path} is a directory without meta{PBZ2}; {_EXPECTED}")
        return _open_nats(path, fast_mode=True), True
    if path.name.endswith(PBZ2):
        return _open_nats(path, fast_mode=False), False
    if path.suffix == ".pth":
        return _open_pth(path), False
    raise ValueError(f"{path} is not an official benchmark file by its name; {_EXPECTED}")


def _canonicalise(api, path, space):
    """Official string -> canonical class string for every arch in the file; one-line error if any is not NB201."""
    canon, bad = {}, []
    for i, s in enumerate(api.meta_archs):
        try:
            canon[i] = space.canonical_str(s)
        except ValueError as e:
            bad.append((i, s, e))
    if bad:
        i, s, e = bad[0]
        if all(isinstance(b[1], str) and _SSS_ARCH.fullmatch(b[1]) for b in bad):
            raise ValueError(f"{path} is a NATS-Bench size search space (sss) benchmark (arch {i} is {s!r}); "
                             f"{_EXPECTED}")
        raise ValueError(f"ground truth {path} does not match the {space.name} space: {len(bad)} of "
                         f"{len(api.meta_archs)} architecture strings are not NB201 cells, e.g. index {i} "
                         f"{_line(repr(s), 100)} ({_line(e, 120)})")
    return canon


def _accuracy(api, i, dataset, metric, path):
    """(200-epoch seed-mean accuracy in %, number of seeds) of arch i, through get_more_info."""
    key = METRICS[dataset][metric]
    where = f"ground truth {path}: arch {i} {api.meta_archs[i]}"
    try:
        info = api.get_more_info(i, dataset, hp="200", is_random=False)
    except Exception as e:
        if i not in api.arch2infos_dict:  # fast mode: its per-arch file is missing or unreadable
            raise ValueError(f"{where}: cannot read its results ({_line(f'{type(e).__name__}: {e}', 160)})") from None
        hps = list(api.arch2infos_dict[i])
        if "200" not in hps:
            raise ValueError(f"{where} has no 200-epoch results (hp keys: {', '.join(map(str, hps)) or 'none'})") \
                from None
        names = api.arch2infos_dict[i]["200"].get_dataset_names()
        if dataset not in names:
            raise ValueError(f"{where} has no 200-epoch results on {dataset} (datasets: {', '.join(names)})") from None
        raise ValueError(f"{where}: cannot read {dataset} {metric} at 200 epochs "
                         f"({_line(f'{type(e).__name__}: {e}', 120)})") from None
    if info.get(key) is None:
        raise ValueError(f"{where} has no {metric} accuracy on {dataset} at 200 epochs")
    return float(info[key]), len(api.arch2infos_dict[i]["200"].get_dataset_seeds(dataset))


def load_nb201(path, *, dataset="cifar10", metric="ori-test", protocol="deiso", space=None) -> pd.DataFrame:
    """Official NB201 / NATS-tss ground truth as a DataFrame with ``attrs['version']``.

    dataset / metric: ``cifar10`` / ``ori-test`` (default; CLOSE's GT), ``cifar10-valid`` / ``x-valid`` or
    ``ori-test``, ``cifar100`` or ``ImageNet16-120`` / ``x-valid``, ``x-test`` or ``ori-test``; always the 200-epoch
    seed mean, as a fraction in [0, 1].

    protocol ``deiso`` (the reference's): one row per isomorphism class present in the file; ``arch`` = the class
    representative's canonical string, ``acc`` = mean over the class members present (each member's seed mean),
    ``n_members`` = members present, ``n_seeds`` = runs behind the member means in total. Protocol ``all``: one row
    per architecture of the file, keyed by its own official string (not canonicalised), with its file ``index``
    and ``n_seeds``. Version tag e.g. ``nb201-v1_0-cifar10-ori-test-deiso``.
    """
    if dataset not in METRICS:
        raise ValueError(f"unknown NB201 dataset {dataset!r}; choose one of {', '.join(METRICS)}")
    if metric not in METRICS[dataset]:
        raise ValueError(f"metric {metric!r} is not reported for {dataset}; choose one of "
                         f"{', '.join(METRICS[dataset])}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown ground-truth protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if space is None:
        from ..spaces import get
        space = get("nb201")
    if getattr(space, "name", None) != "nb201":
        raise ValueError(f"NB201/NATS-tss ground truth belongs to space nb201, not {getattr(space, 'name', space)!r}")
    path = Path(path)
    api, fast_mode = open_api(path)
    canon = _canonicalise(api, path, space)
    indexes = range(len(api.meta_archs)) if fast_mode else sorted(api.arch2infos_dict)
    rows = []
    for i in indexes:
        acc, n_seeds = _accuracy(api, i, dataset, metric, path)
        if fast_mode:  # loaded lazily one arch at a time; drop it again to keep memory flat
            api.arch2infos_dict.pop(i, None)
        rows.append({"index": int(i), "arch": api.meta_archs[i], "acc": acc / 100.0, "n_seeds": n_seeds})
    df = pd.DataFrame(rows, columns=["index", "arch", "acc", "n_seeds"])
    if protocol == "deiso":
        df["arch"] = [canon[i] for i in df["index"]]
        df = df.groupby("arch", sort=False).agg(acc=("acc", "mean"), n_members=("acc", "size"),
                                                n_seeds=("n_seeds", "sum")).reset_index()
        order = sorted(range(len(df)), key=lambda r: space.canonical(df["arch"].iat[r]))
        df = df.iloc[order].reset_index(drop=True)
    df.attrs["version"] = f"{file_version(path)}-{dataset}-{metric}-{protocol}"
    return df
