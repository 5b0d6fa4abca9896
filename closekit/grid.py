"""Sweeps for ``closekit batch --grid`` (CLOSE's studies: seeds x variants in one command): grid values typed like
the notebook's parameters (papermill's inferred types), the Cartesian product over every params set, and job names
that say what varies (``mini-close_seed-1_gate_lr_scale-10.0``).
"""
import itertools
import json
import re
from pathlib import Path

import yaml


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


TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "list": list, "dict": dict}


def _an(word):
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _typed(key, text, type_name):
    """A grid value as the notebook parameter ``key`` of papermill type ``type_name`` takes it (YAML otherwise)."""
    t = (type_name or "None").strip()
    optional = t.startswith("Optional[") and t.endswith("]")
    base = t[9:-1] if optional else t
    if base == "str" and text.strip() not in ("None", "null", "~", ""):
        v = yaml.safe_load(text) if text.strip()[:1] in "'\"" else text.strip()
        return str(v)
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"--grid {key}: value {text!r} is not valid YAML ({getattr(e, 'problem', None) or e}); "
                         f"quote it") from None
    if v is None or text.strip() == "None":
        if optional or base not in TYPES:
            return None
        raise ValueError(f"--grid {key}: None is not {_an(base)} (the notebook declares {key}: {t})")
    want = TYPES.get(base)
    if want is None:
        return v
    if isinstance(v, bool) and base != "bool" or not isinstance(v, want):
        raise ValueError(f"--grid {key}: value {text!r} is not {_an(base)} (the notebook declares {key}: {t})")
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


def expand_grid(items, grid, name="job"):
    """(name, params) per (name, params) item and grid point: the Cartesian product, grid values over the item's;
    names say what varies (``mini-close_seed-1_gate_lr_scale-10``). No items: one of defaults called ``name``."""
    items = [(str(n), dict(p)) for n, p in items] or [(name, {})]
    if not grid:
        return items
    keys = [k for k, _ in grid]
    return [(name + "".join(f"_{k}-{_slug(v)}" for k, v in zip(keys, point)), {**params, **dict(zip(keys, point))})
            for name, params in items for point in itertools.product(*(vals for _, vals in grid))]
