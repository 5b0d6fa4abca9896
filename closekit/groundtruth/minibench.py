"""Mini ground truth of any space (CLOSE §4 ranking): stand-alone training of architectures with one recipe and
several seeds, resumable. ``build`` writes out_dir/results.csv (a row per finished arch x seed, ``results``),
truth.csv (a row per arch) and meta.yaml (recipe, seeds, archs, wall time, noise ceiling, which machine appended
which rows); a rerun skips finished pairs and refuses another recipe (``threads`` and ``device`` included: they
change the float rounding). ``load_truth`` gives the kit's ground-truth table.
"""
import fcntl
import os
import time
from pathlib import Path

import yaml

from ..checkpoint import atomic_text
from ..spaces import get as get_space
from .ceiling import noise_ceiling
from .files import read_yaml
from .machine import machine
from .pool import run
from .recipe import Recipe
from .results import COLS, append, read_results, truth_table


def resolve_archs(archs, sample_seed=0, space="nb201"):
    """Canonical strings, isomorphic duplicates dropped: 'sample:N', an enumeration, a file of arch strings, a list."""
    from ..evaluate import arch_list
    space = get_space(space)
    found = arch_list(space, str(archs), sample_seed) if isinstance(archs, (str, os.PathLike)) else archs
    return list(dict.fromkeys(space.canonical_str(a) for a in found))


def _meta(out):
    """meta.yaml of a minibench directory and its Recipe; one line naming the file when it is unreadable."""
    meta = read_yaml(out / "meta.yaml", "minibench meta")
    if not isinstance(meta, dict) or "recipe" not in meta:
        raise ValueError(f"minibench meta {out}/meta.yaml holds no recipe; rebuild it with `closekit truth build`")
    return meta, Recipe.from_dict(meta["recipe"], f"{out}/meta.yaml")


def load_truth(out_dir, space=None, name=None, for_dataset=None):
    """Ground truth of a minibench dir (attrs version, space, dataset, noise_ceiling); refuses a wrong space/dataset."""
    out = Path(out_dir)
    if not (out / "meta.yaml").is_file():
        raise FileNotFoundError(f"{out} is not a minibench directory (no meta.yaml); "
                                "build one with `closekit truth build`")
    meta, recipe = _meta(out)
    held = meta.get("space", recipe.space)
    if space is not None and held != space.name:
        raise ValueError(f"ground truth {name or out} holds {held} architectures, not {space.name}; set truth to a "
                         f"ground truth of {space.name} (or null)")
    if for_dataset is not None and recipe.dataset != for_dataset:
        raise ValueError(f"ground truth {name or out} holds {recipe.dataset} accuracies, but the scores come from "
                         f"dataset={for_dataset}; set truth to a ground truth of {for_dataset} (or null)")
    results = read_results(out / "results.csv")
    if results.empty:
        raise ValueError(f"ground truth {name or out} has no finished rows in results.csv; run `closekit truth "
                         f"build` on it until some are")
    df = truth_table(results)
    df.attrs.update(version=recipe.version(results["seed"].nunique()), space=recipe.space, dataset=recipe.dataset,
                    noise_ceiling=noise_ceiling(results))
    return df


def _prior_meta(out, recipe):
    """meta.yaml of an earlier run ({} if none); one-line error if it used another recipe."""
    if not (out / "meta.yaml").is_file():
        if (out / "results.csv").is_file() and (out / "results.csv").stat().st_size:
            raise ValueError(f"{out}/results.csv has no meta.yaml, so its recipe is unknown; use another out dir")
        return {}
    meta, built = _meta(out)
    old, new = built.to_dict(), recipe.to_dict()
    diff = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k]]
    if diff:
        raise ValueError(f"{out} was built with another recipe ({'; '.join(diff)}); "
                         "use the same recipe or another out dir")
    return meta


def _check(out, seeds, workers):
    """Output and counts refused in one line before any work."""
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(f"truth build out={out}: {p} is a file, not a directory; give a directory path")
    if workers < 1:
        raise ValueError(f"truth build workers={workers} must be >= 1 (training processes)")
    if not seeds:
        raise ValueError("truth build seeds is empty; give at least one training seed")


def build(archs, seeds, recipe=None, out_dir="minibench", workers=1, sample_seed=0, progress=True):
    """Train every missing (arch, seed) pair of ``archs`` x ``seeds`` into ``out_dir``; returns load_truth(out_dir)."""
    from tqdm.auto import tqdm
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(dict(recipe or {}))
    out, seeds = Path(out_dir), list(dict.fromkeys(int(s) for s in seeds))
    _check(out, seeds, workers)
    spec = str(archs) if isinstance(archs, (str, os.PathLike)) else "list"
    archs = resolve_archs(archs, sample_seed, recipe.space)
    if not archs:
        raise ValueError(f"truth build archs={spec} gives no architectures; ask for at least one (e.g. sample:10)")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out} is being built by another process; wait for it or use another out dir") from None
        t0, meta, path = time.time(), _prior_meta(out, recipe), out / "results.csv"
        done = read_results(path, repair=True)
        if not path.exists() or not path.stat().st_size:
            append(path, COLS)
        finished = set(zip(done["arch"], done["seed"]))
        jobs = [(a, s) for a in archs for s in seeds if (a, s) not in finished]
        machines, here = list(meta.get("machines") or []), machine(recipe.device)
        if len(done) and not machines:
            machines.append({"machine": "unrecorded", "first_row": 0})      # rows of a build before this record
        if jobs and (not machines or machines[-1]["machine"] != here):
            machines.append({"machine": here, "first_row": len(done)})
        all_seeds, n_archs = sorted(set(meta.get("seeds", [])) | set(seeds)), len(set(done["arch"]) | set(archs))

        def save_meta(results=None):
            from .. import __version__
            m = {"space": recipe.space, "closekit_version": __version__, "recipe": recipe.to_dict(),
                 "seeds": all_seeds, "archs": spec, "sample_seed": sample_seed, "n_archs": n_archs,
                 "wall_seconds": round(meta.get("wall_seconds", 0.0) + time.time() - t0, 1), "machines": machines}
            if results is not None:
                m.update(n_results=len(results), version=recipe.version(results["seed"].nunique()),
                         noise_ceiling=noise_ceiling(results))
            atomic_text(out / "meta.yaml", yaml.safe_dump(m, sort_keys=False))

        save_meta()                      # before any row: results.csv never exists without its recipe
        with tqdm(total=len(jobs), desc="truth build", disable=not progress) as bar:
            for row in run(jobs, recipe, workers):
                append(path, [row[c] for c in COLS])
                save_meta()
                bar.set_postfix_str(f"{row['arch'][:24]}.. s{row['seed']} acc {row['acc']:.4f}", refresh=False)
                bar.update()
        results = read_results(path)
        atomic_text(out / "truth.csv", truth_table(results).to_csv(index=False))
        save_meta(results)
    return load_truth(out)
