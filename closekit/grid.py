"""Sweeps for ``closekit batch --grid`` (CLOSE's studies: seeds x variants in one command): grid values typed like
the notebook's parameters (papermill's inferred types), the Cartesian product over every params set, and job names
that say what varies (``mini-close_seed-1_gate_lr_scale-10.0``).
"""
import itertools
import json
import re
from pathlib import Path

import yaml

from .config import TYPES, Yaml12Loader, described, fits


def _split_values(text):
    """``1,2`` -> ["1", "2"]; commas inside [], {} or quotes do not split (``[1,2],[3]`` -> two values)."""
    out, cur, depth, quote = [], "", 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    return out + [cur]


OPTIONAL = re.compile(r"Optional\[(.+)\]|(.+) \| None")  # papermill's and a dataclass's spelling of "or None"


def _typed(key, text, type_name):
    """A grid value as the notebook parameter ``key`` of type ``type_name`` takes it (any YAML without a type)."""
    t = (type_name or "None").strip()
    optional = OPTIONAL.fullmatch(t)
    base = (optional.group(1) or optional.group(2)) if optional else t
    if base == "str" and text.strip() not in ("None", "null", "~", ""):
        v = yaml.safe_load(text) if text.strip()[:1] in "'\"" else text.strip()
        return str(v)
    try:
        v = yaml.load(text, Loader=Yaml12Loader)
    except yaml.YAMLError as e:
        raise ValueError(f"--grid {key}: value {text!r} is not valid YAML ({getattr(e, 'problem', None) or e}); "
                         f"quote it") from None
    if v is None or text.strip() == "None":
        if optional or base not in TYPES:
            return None
        raise ValueError(f"--grid {key}: None is not {described(base)} (the notebook declares {key}: {t})")
    if base in TYPES and not fits(v, base):
        raise ValueError(f"--grid {key}: value {text!r} is not {described(base)} (the notebook declares {key}: {t})")
    return float(v) if base == "float" else v


def parse_grid(pairs, notebook, known):
    """``["seed=0,1,2", "lr=0.1,0.05"]`` -> [(key, [typed values])], keys and values checked against the notebook's
    parameters ``known`` (closekit.jobs.notebook_parameters: papermill's inferred types) before anything runs."""
    grid = []
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--grid expects key=v1,v2,..., got {pair!r}")
        key, text = (x.strip() for x in pair.split("=", 1))
        if key not in known:
            raise ValueError(f"--grid {key}: unknown parameter {key!r} for {Path(notebook).name}; "
                             f"known: {', '.join(known)}")
        if key in dict(grid):
            raise ValueError(f"--grid {key}: given twice; list all its values once, e.g. {key}=0,1,2")
        values = [_typed(key, v, known[key].get("inferred_type_name")) for v in _split_values(text)]
        if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            raise ValueError(f"--grid {key}: repeated value in {text!r}")
        grid.append((key, values))
    return grid


def _slug(v):
    """A value as a file-name-safe token: 0.001, true, 1-2-3 (a list), none."""
    text = json.dumps(v, sort_keys=True, separators=("-", "-")).strip('"').lower()
    return re.sub(r"[^a-z0-9.+_]+", "-", text).strip("-") or "empty"


def expand_grid(name, params, grid):
    """(name, params) per ``grid`` point: the Cartesian product, grid values over ``params``; names say what varies
    (``mini-close_seed-1_gate_lr_scale-10``). No grid: the one point (name, params)."""
    keys = [k for k, _ in grid or []]
    return [(name + "".join(f"_{k}-{_slug(v)}" for k, v in zip(keys, point)), {**params, **dict(zip(keys, point))})
            for point in itertools.product(*(vals for _, vals in grid or []))]
