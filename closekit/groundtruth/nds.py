"""Official NDS ground truth (CLOSE §4.3: ResNet and ResNeXt-A ranked against the NDS stand-alone accuracies).

Formats (``official`` dispatches by name): an NDS sweep JSON (facebookresearch/nds ``ResNet.json`` ...: records
with a ``net`` config; acc = 100 - ``min_test_top1``, the reference's, or - the last ``test_ep_top1``), a glob of
seed files averaged per configuration; the reference's aw_nas pair, a pickle ``[genotypes, params, flops, accs]``
read with every class refused and its YAML arch list (``*_archs_*.yaml`` loads through its ``*_gt_*.pkl``).
The files' ``flops`` are the authors' count: ours (``space.complexity``, multiply-adds) plus 5 per output
activation of every conv; ``authors_flops`` gives it for any configuration.
"""
import glob
import json
from pathlib import Path

import pandas as pd

from . import files
from .files import canonical_archs, one_line

METRICS = ("min_test_top1", "last")
AUTHORS_PER_ACT = 5                      # the authors' FLOPs minus ours, per output activation of a conv
REFERENCE = dict(in_channels=3, num_classes=10, image_size=32)       # the NDS CIFAR-10 nets


def _records(path):
    """The records of one sweep file (a list, or the lists of a dict)."""
    try:
        data = json.loads(files.read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"ground truth {path} is not valid JSON (line {e.lineno}): {e.msg}") from None
    if isinstance(data, dict):
        data = [r for v in data.values() if isinstance(v, list) for r in v]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"ground truth {path} must hold a JSON list of NDS records (or a dict of such lists)")
    return data


def _error(rec, metric, where):
    if metric == "min_test_top1":
        v = rec.get("min_test_top1")
    else:
        ep = rec.get("test_ep_top1")
        v = ep[-1] if isinstance(ep, list) and ep else None
    if not isinstance(v, (int, float)):
        key = "min_test_top1" if metric == "min_test_top1" else "test_ep_top1 (a non-empty list)"
        raise ValueError(f"ground truth {where} lacks {key}; NDS records carry it (use metric=min_test_top1|last)")
    return float(v)


def _one_file(path, space, metric):
    """DataFrame arch, acc, params, flops of one sweep file, repeated configurations averaged."""
    rows = []
    for i, rec in enumerate(_records(path)):
        if not isinstance(rec.get("net"), dict):
            raise ValueError(f"ground truth {path} record {i} has no 'net' dict; is it an NDS sweep file?")
        try:                                # an NDS net dict, not any arch the space's coerce would take
            arch = space.to_str(space.design.from_net(rec["net"]))
        except ValueError as e:
            raise ValueError(f"ground truth {path} record {i} does not belong to space {space.name}: {e}") from None
        rows.append({"arch": arch, "acc": (100.0 - _error(rec, metric, f"{path} record {i}")) / 100.0,
                     "params": rec.get("params"), "flops": rec.get("flops")})
    if not rows:
        raise ValueError(f"ground truth {path} holds no records")
    df = pd.DataFrame(rows)
    return df.groupby("arch", sort=False).agg(acc=("acc", "mean"), params=("params", "first"),
                                              flops=("flops", "first")).reset_index()


def load_nds_json(path, *, space, metric="min_test_top1"):
    """NDS sweep file(s) -> ground truth; a glob pattern averages the seed files per configuration."""
    if metric not in METRICS:
        raise ValueError(f"NDS metric={metric!r} is not one of {', '.join(METRICS)}")
    paths = sorted(glob.glob(str(path))) if glob.has_magic(str(path)) else [str(path)]
    if not paths or not all(Path(f).is_file() for f in paths):
        raise FileNotFoundError(f"ground truth {path} not found; give an NDS sweep JSON (or a glob of seed files)")
    tables = [_one_file(f, space, metric).set_index("arch") for f in paths]
    first = tables[0].index
    for f, t in zip(paths[1:], tables[1:]):
        bad = first.symmetric_difference(t.index)
        if len(bad):
            raise ValueError(f"ground truth seed files differ: {bad[0]} is missing from "
                             f"{f if bad[0] in first else paths[0]}; average files of the same configurations")
    accs = pd.concat([t["acc"] for t in tables], axis=1).loc[first]
    out = tables[0].assign(acc=accs.mean(axis=1), n_seeds=len(paths)).reset_index()
    out.attrs["version"] = f"nds-{space.name.removeprefix('nds-')}-{metric}-{len(paths)}seed"
    return out


def _load_pickle(path):
    """The aw_nas 4-list, read with every class refused (a pickle asking for one runs nothing)."""
    if path.stat().st_size == 0:
        raise ValueError(f"ground truth pickle {path} is empty (0 bytes); give the aw_nas *_gt_*.pkl as dumped")
    try:
        with open(path, "rb") as f:
            data = files.load(f)
    except files.Refused as e:
        raise ValueError(f"ground truth pickle {path} refused: it {e}; only lists, strings, ints and floats "
                         "are allowed (the aw_nas [genotypes, params, flops, accs] 4-list)") from None
    except Exception as e:
        raise ValueError(f"ground truth pickle {path} is truncated or not a pickle ({type(e).__name__}: "
                         f"{one_line(e, 120)}); give the aw_nas *_gt_*.pkl as dumped") from None
    ok = isinstance(data, list) and len(data) == 4 and all(isinstance(x, list) for x in data) \
        and len({len(x) for x in data}) == 1
    if not ok or not all(isinstance(g, str) for g in data[0]) or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for x in data[1:] for v in x):
        raise ValueError(f"ground truth pickle {path} is not the aw_nas 4-list [genotypes (str), params, flops, "
                         "accs (%)] of equal lengths")
    return data


def load_awnas_pickle(path, *, space, archs=None):
    """The aw_nas GT pickle (``*_gt_*.pkl``); ``archs``: its YAML arch list, checked to match in order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth {path} not found; give the aw_nas *_gt_*.pkl")
    genos, params, flops, accs = _load_pickle(path)
    listed = genos if archs is None else files.read_yaml(archs, "arch list")
    if listed != genos:
        listed = listed if isinstance(listed, list) else []
        n = next((i for i, (a, b) in enumerate(zip(listed, genos)) if a != b), min(len(listed), len(genos)))
        raise ValueError(f"arch list {archs} and pickle {path} differ at entry {n}; use the pair dumped together")
    df = pd.DataFrame({"arch": canonical_archs(space, genos, f"{path} entry"),
                       "acc": [float(a) / 100.0 for a in accs], "params": params, "flops": flops})
    if df["arch"].duplicated().any():
        raise ValueError(f"ground truth {path} lists {df.loc[df['arch'].duplicated(), 'arch'].iloc[0]} twice")
    df.attrs["version"] = f"nds-{space.name.removeprefix('nds-')}-awnas-{path.stem}"
    return df


def load_awnas_yaml(path, *, space):
    """The aw_nas YAML arch list: loads its sibling pickle (``_archs_`` -> ``_gt_``, .yaml -> .pkl)."""
    path = Path(path)
    pkl = path.with_name(path.stem.replace("_archs_", "_gt_") + ".pkl")
    if "_archs_" not in path.stem or not pkl.is_file():
        raise FileNotFoundError(f"ground truth {path}: no pickle {pkl.name} next to it; an aw_nas arch list loads "
                                "with its *_gt_*.pkl (or give the pickle)")
    return load_awnas_pickle(pkl, archs=path, space=space)


def official(path):
    """The loader of an NDS file (by suffix; a YAML only as an aw_nas ``*_archs_*`` list), or None."""
    p = Path(path)
    if p.suffix == ".json" and not p.name.startswith("results"):      # results_*.json: NB301 records
        return load_nds_json
    if p.suffix == ".pkl":
        return load_awnas_pickle
    if p.suffix in (".yaml", ".yml") and "_archs_" in p.stem and not p.is_dir():
        return load_awnas_yaml
    return None


def conv_activations(space, arch, in_channels=3, num_classes=10, image_size=32):
    """Output activations of every conv of the reference-scale stand-alone net of ``arch`` (one image)."""
    import torch
    from types import SimpleNamespace
    net, acts = space.standalone(arch, SimpleNamespace(C=16), in_channels, num_classes), []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda m, i, o: acts.append(o[0].numel()))
    with torch.no_grad():
        net.eval()(torch.zeros(1, in_channels, image_size, image_size))
    return sum(acts)


def authors_flops(space, arch, **reference):
    """FLOPs of ``arch`` as the NDS authors' records count them: ours plus 5 per output activation of every conv."""
    ref = {**REFERENCE, **reference}
    return space.complexity(arch, **ref)[1] + AUTHORS_PER_ACT * conv_activations(space, arch, **ref)
