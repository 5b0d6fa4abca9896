"""Mini ground truth of any space (CLOSE §4 ranking): stand-alone training of architectures with one recipe,
several seeds each; the space builds the networks (``space.standalone(arch, recipe, ...)``).

``build(archs, seeds, recipe, out_dir)`` trains every (arch, seed) pair not finished yet and writes into out_dir:
  * results.csv: one row per finished pair (arch, seed, acc, loss, params, seconds), appended atomically;
  * truth.csv:   one row per arch (arch, acc = mean over seeds, acc_seed<s>..., n_seeds, params);
  * meta.yaml:   recipe, seeds, archs spec (e.g. sample:300) and sample seed, closekit version, space, number of
                 archs, wall time summed over resumed runs, and the noise ceiling (seed-to-seed Kendall tau, its
                 bootstrap spread, every seed pair, the seed mean vs each seed and the seed mean's reliability),
                 and ``machines``: which machine appended which rows (``built_on``).
Reruns skip finished pairs; a rerun with another recipe in the same directory is refused, ``threads`` and
``device`` included (on CPU the thread count changes the float rounding, and so, after 8 epochs, the accuracies).
``load_truth(out_dir)`` gives the kit's ground-truth table. A run is bitwise reproducible on the machine that built
it; another CPU (or torch build) rounds differently, which after a few epochs acts like another seed, so meta.yaml
records the machine (``machine()``) of every stretch of rows a build appended.

Atomic append: the parent process alone writes rows, under an exclusive flock of out_dir/.lock. Each row is one
complete line handed to a single write(2) on an O_APPEND descriptor, then fsync'ed. A kill can at worst leave the
last line without its newline; reading ignores such a fragment (build also truncates it away), so every row is
either present once and whole, or absent and trained again. Rows are never rewritten, so none can be duplicated.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from scipy.stats import kendalltau
from tqdm.auto import tqdm

from .. import data as datalib
from ..checkpoint import atomic_text
from ..config import YamlConfig
from ..spaces import get as get_space

COLS = ("arch", "seed", "acc", "loss", "params", "seconds")
ADDED = ("drop_path",)                   # Recipe fields newer than the first shipped ground truth


@dataclass(frozen=True)
class Recipe(YamlConfig):
    """Stand-alone training: SGD (Nesterov), cosine learning rate per step down to 0, the space's net scaled down."""
    kind = file_kind = "recipe"
    space: str = "nb201"               # closekit.spaces registry
    dataset: str = "embedded"          # closekit.data registry
    data_dir: str | None = None
    image_size: int | None = 16        # None: native resolution
    channels: int | None = None
    C: int = 8                         # channels of the first stage
    N: int = 1                         # cells per stage
    epochs: int = 8
    train_limit: int | None = None     # first n training images (None: all)
    train_portion: float = 1.0         # stand-alone nets train on the whole training set
    eval_split: str = "test"           # test (official test set) | valid (needs train_portion < 1)
    eval_limit: int | None = None      # first n images of the eval split (None: all)
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool = True               # random crop + flip
    drop_path: float = 0.0             # drop-path probability of the stand-alone cells (spaces that have it: NB301)
    device: str = "cpu"                # cuda with workers > 1: one worker per GPU
    threads: int = 1                   # torch threads per worker

    def __post_init__(self):
        self._check_types()
        if self.eval_split not in ("test", "valid"):
            raise ValueError(f"recipe eval_split={self.eval_split!r} is not one of test, valid")
        for name in ("C", "N", "epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe {name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"recipe drop_path={self.drop_path} must be in [0, 1)")
        if not 0 < self.train_portion <= 1:
            raise ValueError(f"recipe train_portion={self.train_portion} must be in (0, 1]")

    def version(self, n_seeds):
        """e.g. mini-nb201-embedded16-c8n1-e8-s2; a hash of the recipe is appended when its other fields (but
        device and threads) differ from the defaults."""
        v = f"mini-{self.space}-{self.dataset}{self.image_size or ''}-c{self.C}n{self.N}-e{self.epochs}-s{n_seeds}"
        skip = ("space", "dataset", "image_size", "C", "N", "epochs", "device", "threads")
        rest, base = self.to_dict(), Recipe().to_dict()
        rest.pop("space")                          # named in the prefix; kept out of the hash (older tags hold)
        for k in ADDED:                            # fields added later: in the hash only when set (older tags hold)
            if rest[k] == base[k]:
                rest.pop(k)
        if any(rest[k] != base[k] for k in rest if k not in skip):
            v += "-" + hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6]
        return v


def load_data(recipe):
    """The recipe's dataset, in memory."""
    return datalib.load(recipe.dataset, root=recipe.data_dir, image_size=recipe.image_size, channels=recipe.channels,
                        train_portion=recipe.train_portion, train_limit=recipe.train_limit, augment=recipe.augment)


def train_one(arch, seed, recipe, data, device=None):
    """Train one architecture from scratch (seeded, deterministic on CPU); dict(arch, seed, acc, loss, params,
    seconds) with acc and loss on the first eval_limit images of the eval split."""
    t0, device, space = time.time(), device or recipe.device, get_space(recipe.space)
    arch, held = space.canonical_str(arch), getattr(data, recipe.eval_split)
    held = datalib.Split(held.x[:recipe.eval_limit], held.y[:recipe.eval_limit])
    if not len(held):
        raise ValueError(f"recipe eval_split={recipe.eval_split} is empty (valid needs train_portion < 1)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = space.standalone(arch, recipe, data.in_channels, data.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(data.train) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.0)
    net.train()
    for _ in range(recipe.epochs):
        for x, y in datalib.batches(data.train, recipe.batch_size, shuffle=True, generator=gen,
                                    augment=recipe.augment, device=device):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
            sched.step()
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in datalib.batches(held, 500, shuffle=False, device=device):
            out = net(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += int((out.argmax(1) == y).sum())
    return dict(arch=arch, seed=int(seed), acc=correct / len(held), loss=loss / len(held),
                params=sum(p.numel() for p in net.parameters()), seconds=round(time.time() - t0, 3))


def machine(device="cpu"):
    """What decides the float rounding of a run: the CPU (model, feature flags) or GPU, and torch's build."""
    info = {}
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = hashlib.sha1(info.get("flags", "").encode()).hexdigest()[:8]
    cpu = (f"{info.get('model name') or platform.processor() or platform.machine()} (family "
           f"{info.get('cpu family', '?')} model {info.get('model', '?')}, flags {flags})")
    if str(device).startswith("cuda"):
        cpu = torch.cuda.get_device_name(torch.device(device))
    return f"{cpu}; torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"


def built_on(meta, row):
    """The machine that appended results.csv row ``row`` (0-based) as meta.yaml records it; None if unrecorded."""
    found = [m["machine"] for m in meta.get("machines") or [] if m["first_row"] <= row]
    return found[-1] if found and found[-1] != "unrecorded" else None


def resolve_archs(archs, sample_seed=0, space="nb201"):
    """Canonical strings, isomorphic duplicates dropped: 'sample:N', an enumeration, a file of arch strings, a list."""
    from ..evaluate import arch_list
    space = get_space(space)
    found = arch_list(space, str(archs), sample_seed) if isinstance(archs, (str, os.PathLike)) else archs
    return list(dict.fromkeys(space.canonical_str(a) for a in found))


def read_results(path, repair=False):
    """Finished rows of results.csv (empty if missing); a trailing line without its newline (a killed write) is
    ignored, and cut off the file when ``repair``."""
    path = Path(path)
    raw = path.read_bytes() if path.exists() else b""
    keep = raw[:raw.rfind(b"\n") + 1]
    if repair and len(keep) < len(raw):
        os.truncate(path, len(keep))
    df = pd.read_csv(io.BytesIO(keep or ",".join(COLS).encode()), dtype={"arch": str, "seed": int})
    if tuple(df.columns) != COLS:
        raise ValueError(f"{path} has columns {', '.join(df.columns)}, expected {', '.join(COLS)}")
    return df.drop_duplicates(["arch", "seed"]).reset_index(drop=True)


def csv_line(fields):
    """One CSV line; fields holding commas or quotes (e.g. DARTS genotype strings) are quoted, others written as
    they are (so NB201 rows are byte-identical to the plain comma join)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(list(fields))
    return buf.getvalue()


def _append(path, line):
    """One whole line by a single O_APPEND write, then fsync (see the module docstring)."""
    fd, buf = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), memoryview(line.encode())
    try:
        while buf:                       # a short write leaves a line without newline: ignored on read
            buf = buf[os.write(fd, buf):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _tau(a, b):
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def seed_mean_reliability(wide):
    """Variance split of an (arch x seed) accuracy table: arch and per-run noise variance, the reliability rho of
    the k-seed mean, and the Kendall tau it implies (normal model, tau = 2/pi asin(rho)) between two independent
    k-seed means and between the k-seed mean and the noise-free ranking (the best any predictor can score)."""
    acc, k = wide.to_numpy(), wide.shape[1]
    noise = float(acc.var(axis=1, ddof=1).mean())                 # within-arch (seed) variance
    arch = max(float(acc.mean(axis=1).var(ddof=1)) - noise / k, 0.0)
    rho = arch / (arch + noise / k) if arch + noise > 0 else float("nan")
    tau = lambda r: float(2 / np.pi * np.arcsin(r))
    return {"n_seeds": k, "arch_sd": arch ** 0.5, "noise_sd": noise ** 0.5, "rho": rho,
            "tau_two_means": tau(rho), "tau_vs_noise_free": tau(rho ** 0.5)}


def noise_ceiling(results, n_boot=1000, boot_seed=0):
    """Kendall tau between the first two seeds' accuracies over the archs having both, its bootstrap mean and
    std over resampled archs; with more than 2 seeds also tau for every seed pair and of the seed mean against
    each seed; and the seed mean's reliability (``seed_mean_reliability``). None if < 2 seeds."""
    wide = results.pivot(index="arch", columns="seed", values="acc")
    seeds = sorted(wide.columns)
    if len(seeds) < 2:
        return None
    pair = wide[seeds[:2]].dropna().to_numpy()
    a, b = pair[:, 0], pair[:, 1]
    idx = np.random.default_rng(boot_seed).integers(0, len(pair), (n_boot, len(pair)))
    boots = np.array([_tau(a[i], b[i]) for i in idx]) if len(pair) > 2 else np.array([np.nan])
    ok = boots[~np.isnan(boots)]
    out = {"seeds": [int(s) for s in seeds[:2]], "n_archs": len(pair), "kendall": _tau(a, b),
           "bootstrap_mean": float(ok.mean()) if len(ok) else None,
           "bootstrap_std": float(ok.std()) if len(ok) else None, "bootstrap_n": n_boot}
    full = wide[seeds].dropna()
    if len(seeds) > 2:
        mean = full.mean(axis=1).to_numpy()
        out["pairs"] = {f"{s}-{t}": _tau(full[s].to_numpy(), full[t].to_numpy())
                        for i, s in enumerate(seeds) for t in seeds[i + 1:]}
        out["mean_vs_seed"] = {int(s): _tau(mean, full[s].to_numpy()) for s in seeds}
    if len(full) > 2:
        out["seed_mean"] = seed_mean_reliability(full)
    return out


def truth_table(results):
    """One row per arch (sorted by arch string): arch, acc (mean over seeds), acc_seed<s>, n_seeds, params."""
    wide = results.pivot(index="arch", columns="seed", values="acc").sort_index()
    out = wide.rename(columns=lambda s: f"acc_seed{s}")
    out.insert(0, "acc", wide.mean(axis=1))
    out["n_seeds"] = wide.notna().sum(axis=1)
    out["params"] = results.groupby("arch")["params"].first()
    return out.rename_axis(None, axis=1).reset_index()


def load_truth(out_dir, space=None, name=None):
    """Ground-truth DataFrame of a minibench directory, with attrs version, space, dataset and noise_ceiling (from
    results.csv); ``space`` given: a directory of another space is refused."""
    out = Path(out_dir)
    if not (out / "meta.yaml").is_file():
        raise FileNotFoundError(f"{out} is not a minibench directory (no meta.yaml); "
                                "build one with `closekit truth build`")
    meta, results = yaml.safe_load((out / "meta.yaml").read_text()), read_results(out / "results.csv")
    recipe = Recipe.from_dict(meta["recipe"], f"{out}/meta.yaml")
    if space is not None and meta.get("space", recipe.space) != space.name:
        raise ValueError(f"ground truth {name or out} holds {meta.get('space', recipe.space)} architectures, not "
                         f"{space.name}; set truth to a ground truth of {space.name} (or null)")
    df = truth_table(results)
    df.attrs.update(version=recipe.version(results["seed"].nunique()), space=recipe.space, dataset=recipe.dataset)
    df.attrs["noise_ceiling"] = noise_ceiling(results)
    return df


def _prior_meta(out, recipe):
    """meta.yaml of an earlier run ({} if none); one-line error if it used another recipe."""
    if not (out / "meta.yaml").is_file():
        if (out / "results.csv").is_file() and (out / "results.csv").stat().st_size:
            raise ValueError(f"{out}/results.csv has no meta.yaml, so its recipe is unknown; use another out dir")
        return {}
    meta = yaml.safe_load((out / "meta.yaml").read_text())
    old, new = Recipe.from_dict(meta["recipe"], f"{out}/meta.yaml").to_dict(), recipe.to_dict()
    diff = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k]]
    if diff:
        raise ValueError(f"{out} was built with another recipe ({'; '.join(diff)}); "
                         "use the same recipe or another out dir")
    return meta


_W = {}                                  # worker state: recipe, device, data (or the error of loading them)


def _init_worker(recipe, devices):
    try:
        torch.set_num_threads(recipe.threads)
        _W.update(recipe=recipe, device=devices.get(), data=load_data(recipe))
    except Exception as e:              # a failing Pool initializer would be respawned forever: fail in _work
        _W["error"] = e


def _work(job):
    if "error" in _W:
        raise _W["error"]
    return train_one(*job, _W["recipe"], _W["data"], device=_W["device"])


def _run(jobs, recipe, workers):
    """Yield train_one results: in this process (workers=1) or from a spawn Pool, one GPU per worker on cuda."""
    if workers <= 1 or len(jobs) <= 1:
        data, threads = load_data(recipe), torch.get_num_threads()
        torch.set_num_threads(recipe.threads)
        try:
            for job in jobs:
                yield train_one(*job, recipe, data)
        finally:
            torch.set_num_threads(threads)
        return
    ctx = mp.get_context("spawn")
    devices, cuda = ctx.Queue(), recipe.device == "cuda"
    for i in range(workers):            # untested on GPUs
        devices.put(f"cuda:{i % max(torch.cuda.device_count(), 1)}" if cuda else recipe.device)
    with ctx.Pool(workers, _init_worker, (recipe, devices)) as pool:
        yield from pool.imap_unordered(_work, jobs)


def build(archs, seeds, recipe=None, out_dir="minibench", workers=1, sample_seed=0, progress=True):
    """Train every missing (arch, seed) pair of ``archs`` x ``seeds`` into ``out_dir``; returns load_truth(out_dir)."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(dict(recipe or {}))
    spec = str(archs) if isinstance(archs, (str, os.PathLike)) else "list"
    archs, seeds = resolve_archs(archs, sample_seed, recipe.space), list(dict.fromkeys(int(s) for s in seeds))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out} is being built by another process; wait for it or use another out dir") from None
        t0, meta = time.time(), _prior_meta(out, recipe)
        path = out / "results.csv"
        done = read_results(path, repair=True)
        if not path.exists() or not path.stat().st_size:
            _append(path, ",".join(COLS) + "\n")
        finished = set(zip(done["arch"], done["seed"]))
        jobs = [(a, s) for a in archs for s in seeds if (a, s) not in finished]
        machines, here = list(meta.get("machines") or []), machine(recipe.device)
        if len(done) and not machines:
            machines.append({"machine": "unrecorded", "first_row": 0})      # rows of a build before this record
        if jobs and (not machines or machines[-1]["machine"] != here):
            machines.append({"machine": here, "first_row": len(done)})
        all_seeds, n_archs = sorted(set(meta.get("seeds", [])) | set(seeds)), len(set(done["arch"]) | set(archs))

        def save_meta(results=None):
            import closekit
            m = {"space": recipe.space, "closekit_version": closekit.__version__, "recipe": recipe.to_dict(),
                 "seeds": all_seeds, "archs": spec, "sample_seed": sample_seed, "n_archs": n_archs,
                 "wall_seconds": round(meta.get("wall_seconds", 0.0) + time.time() - t0, 1), "machines": machines}
            if results is not None:
                m.update(n_results=len(results), version=recipe.version(results["seed"].nunique()),
                         noise_ceiling=noise_ceiling(results))
            atomic_text(out / "meta.yaml", yaml.safe_dump(m, sort_keys=False))

        save_meta()                      # before any row: results.csv never exists without its recipe
        with tqdm(total=len(jobs), desc="truth build", disable=not progress) as bar:
            for row in _run(jobs, recipe, workers):
                _append(path, csv_line(str(row[c]) for c in COLS))
                save_meta()
                bar.set_postfix_str(f"{row['arch'][:24]}.. s{row['seed']} acc {row['acc']:.4f}", refresh=False)
                bar.update()
        results = read_results(path)
        atomic_text(out / "truth.csv", truth_table(results).to_csv(index=False))
        save_meta(results)
    return load_truth(out)


def cli_build(args, overrides):
    """`closekit truth build` from parsed arguments: the built ground truth (the CLI prints errors in one line)."""
    recipe = Recipe.from_yaml(args.recipe, **overrides(args.set), **({"space": args.space} if args.space else {}))
    return build(args.archs, args.seeds, recipe, args.out, workers=args.workers, sample_seed=args.sample_seed,
                 progress=not args.no_progress)
