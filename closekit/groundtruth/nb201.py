"""Official NAS-Bench-201 / NATS-Bench topology ground truth, as the CLOSE reference ranks against it (§4.1).

The reference (aw_nas ``evaluation.py --type deiso``) ranks the 6,466 isomorphism-class representatives by the
CIFAR-10 test accuracy after 200 epochs, averaged over the seeds and then over each class's members. ``load_nb201``
computes that table (or another dataset / metric) from an NB201 ``.pth``, a NATS-tss ``.pickle.pbz2`` or its
fast-mode directory as the official APIs' ``get_more_info(i, dataset, hp="200")`` does, without the APIs: each file
is read once by the restricted C unpickler (``files``), streamed, so a 2-3 GB file never sits whole in memory.
"""
import bz2
import pickle
import re
from pathlib import Path

import pandas as pd

from . import files
from .files import one_line

METRICS = {   # dataset -> the benchmark's eval-set names (cifar10 trains on train+valid: ori-test only)
    "cifar10": ("ori-test",),
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
PROTOCOLS = ("deiso", "all")
PBZ2 = ".pickle.pbz2"
HP = {"pth": "full", "pbz2": "200"}          # the 200-epoch results' key in an arch's dict, per file kind
KEYS = ("meta_archs", "arch2infos", "evaluated_indexes")
ALLOW = (("builtins", "set"), ("collections", "OrderedDict"), ("numpy", "dtype"), ("_codecs", "encode"),
         ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"))
_SSS_ARCH = re.compile(r"\d+(:\d+)+")  # NATS size-space archs look like '64:32:16:48:64'
_EXPECTED = ("expected NAS-Bench-201-v1_*.pth, NATS-tss-*.pickle.pbz2 or a NATS-tss-*-simple directory "
             "(NB201 topology benchmark)")


def official(path):
    """The loader of an NB201 / NATS-tss file (a .pth, a .pickle.pbz2 or a fast-mode directory), else None."""
    p = Path(path)
    return load_nb201 if str(p).endswith((".pth", PBZ2)) or (p.is_dir() and not (p / "meta.yaml").is_file()) \
        else None


def file_version(path) -> str:
    """Benchmark version from the file name: 'nb201-v1_0', 'nb201-v1_1', 'nats-tss-v1_0', else the bare stem."""
    name = Path(path).name
    m = re.match(r"NAS-Bench-201-(v\d+_\d+)|NATS-(tss|sss)-(v\d+_\d+)", name)
    if m:
        return f"nb201-{m[1]}" if m[1] else f"nats-{m[2]}-{m[3]}"
    return name.removesuffix(PBZ2) if name.endswith(PBZ2) else Path(name).stem


def _unpickle(path, kind, stream=None):
    """The object of one official file (kind: pth | pbz2), streamed when it can be (``stream``), else read whole."""
    try:
        try:
            if kind == "pth":
                return files.torch_file(path, ALLOW, stream)
            with bz2.open(path, "rb") as f:
                return files.load(f, ALLOW, stream)
        except pickle.UnpicklingError:
            if stream is None:
                raise
            return _unpickle(path, kind)                  # a reference across the drained entries: read it whole
    except files.Refused as e:
        raise ValueError(f"{path} refused: it {e}; an official benchmark holds only dicts, lists, numbers and "
                         f"strings ({_EXPECTED})") from None
    except (ValueError, MemoryError):
        raise
    except Exception as e:
        what = "bz2-compressed pickle" if kind == "pbz2" else "torch.save file"
        raise ValueError(f"{path} is not a {what} ({one_line(f'{type(e).__name__}: {e}', 120)}); {_EXPECTED}") \
            from None


def _check_dict(data, path, keys=KEYS):
    """One-line ValueError unless data is a benchmark dict with the official top-level keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a benchmark dict; {_EXPECTED}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path} lacks key(s) {', '.join(missing)} (has {one_line(sorted(map(str, data)), 80)}); "
                         f"{_EXPECTED}")


def read(path, take):
    """meta_archs of an official file; each arch's results go to ``take(index, results, 200-epoch key)`` as read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ground truth {str(path)!r} not found; {_EXPECTED}")
    if file_version(path).startswith("nats-sss"):
        raise ValueError(f"{path} is a NATS-Bench size search space (sss) file; {_EXPECTED}")
    if path.is_dir():
        if not (path / f"meta{PBZ2}").is_file():
            raise ValueError(f"{path} is a directory without meta{PBZ2}; {_EXPECTED}")
        meta = _unpickle(path / f"meta{PBZ2}", "pbz2")
        _check_dict(meta, path / f"meta{PBZ2}", ("meta_archs",))
        for i in range(len(meta["meta_archs"])):
            f = path / f"{i:06d}{PBZ2}"
            if not f.is_file():
                raise ValueError(f"ground truth {path}: arch {i} has no file {f.name} (fast mode keeps one per arch)")
            take(i, _unpickle(f, "pbz2"), HP["pbz2"])
        return meta["meta_archs"]
    if not path.name.endswith((PBZ2, ".pth")):
        raise ValueError(f"{path} is not an official benchmark file by its name; {_EXPECTED}")
    kind = "pth" if path.suffix == ".pth" else "pbz2"
    data = _unpickle(path, kind, ("arch2infos", lambda i, info: take(i, info, HP[kind])))
    _check_dict(data, path)
    for i in sorted(data["arch2infos"]):
        take(i, data["arch2infos"].pop(i), HP[kind])
    return data["meta_archs"]


def _accuracy(info, hp, i, dataset, metric, path):
    """(200-epoch seed-mean accuracy in %, number of seeds) of arch i, as get_more_info computes it."""
    info = info if isinstance(info, dict) else {}
    states = [v for v in info.values() if isinstance(v, dict)]
    arch = states[0].get("arch_str", "") if states else ""
    where = f"ground truth {path}: arch {i} {arch}".rstrip()
    if hp not in info:
        if {"full": "200", "200": "full"}[hp] in info:
            fmt = "an NB201 .pth ('less'/'full')" if hp == "full" else "a NATS-tss file ('12'/'200')"
            raise ValueError(f"{where}: its results lack the {hp!r} key of {fmt}; NB201 files are .pth, NATS-tss "
                             f"files .pickle.pbz2; {_EXPECTED}")
        raise ValueError(f"{where} has no 200-epoch results (hp keys: {', '.join(map(str, info)) or 'none'})")
    res = info[hp]
    try:
        seeds = res["dataset_seed"].get(dataset)
        if not seeds:
            raise ValueError(f"{where} has no 200-epoch results on {dataset} (datasets: "
                             f"{', '.join(res['dataset_seed'])})")
        accs = []
        for s in seeds:
            rc = res["all_results"][dataset, s]
            accs.append(float(rc["eval_acc1es"][f"{metric}@{rc['epochs'] - 1}"]))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: cannot read {dataset} {metric} at 200 epochs "
                         f"({one_line(f'{type(e).__name__}: {e}', 120)})") from None
    return sum(accs) / len(accs), len(accs)


def _canonicalise(meta_archs, path, space):
    """Official string -> canonical class string for every arch in the file; one-line error if any is not NB201."""
    canon, bad = {}, []
    for i, s in enumerate(meta_archs):
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
                         f"{len(meta_archs)} architecture strings are not NB201 cells, e.g. index {i} "
                         f"{one_line(repr(s), 100)} ({one_line(e, 120)})")
    return canon


def load_nb201(path, *, space, dataset="cifar10", metric="ori-test", protocol="deiso") -> pd.DataFrame:
    """200-epoch seed means (fractions) of ``METRICS``; protocol deiso: a row per iso class (member mean), all: per
    file entry (official string, index); version e.g. ``nb201-v1_0-cifar10-ori-test-deiso``."""
    if dataset not in METRICS:
        raise ValueError(f"unknown NB201 dataset {dataset!r}; choose one of {', '.join(METRICS)}")
    if metric not in METRICS[dataset]:
        raise ValueError(f"metric {metric!r} is not reported for {dataset}; choose one of "
                         f"{', '.join(METRICS[dataset])}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown ground-truth protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if getattr(space, "name", None) != "nb201":
        raise ValueError(f"NB201/NATS-tss ground truth belongs to space nb201, not {getattr(space, 'name', space)!r}")
    path, found = Path(path), {}

    def take(i, info, hp):
        found[int(i)] = _accuracy(info, hp, i, dataset, metric, path)

    meta_archs = read(path, take)
    canon = _canonicalise(meta_archs, path, space)
    rows = [{"index": i, "arch": meta_archs[i], "acc": found[i][0] / 100.0, "n_seeds": found[i][1]}
            for i in sorted(found)]
    df = pd.DataFrame(rows, columns=["index", "arch", "acc", "n_seeds"])
    if protocol == "deiso":
        df["arch"] = [canon[i] for i in df["index"]]
        df = df.groupby("arch", sort=False).agg(acc=("acc", "mean"), n_members=("acc", "size"),
                                                n_seeds=("n_seeds", "sum")).reset_index()
        order = sorted(range(len(df)), key=lambda r: space.canonical(df["arch"].iat[r]))
        df = df.iloc[order].reset_index(drop=True)
    df.attrs["version"] = f"{file_version(path)}-{dataset}-{metric}-{protocol}"
    return df
