"""One run end to end (CLOSE §4-5): build, train with resume, score, rank against the ground truth, record.

``run(cfg, out_dir)`` is the one pipeline the CLI, the notebooks and bench/ call. The run directory gets config.yaml,
provenance.json, checkpoint.pt, snapshots/, history.csv, scores.csv and metrics.json; a rerun resumes from the
checkpoint, a finished run with other scoring or ground-truth keys is re-scored without retraining.
"""
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from . import groundtruth, progress, spaces, tracking
from . import data as datalib
from .checkpoint import CKPT, atomic_json, atomic_text, check_training_keys, locked, read_checkpoint, writable_dir
from .evaluate import arch_list, evaluate, probe, score_summary
from .metrics import compare
from .provenance import code_version, config_hash, provenance  # noqa: F401  (bench/ imports them from here)
from .routing import block_usage
from .train import build, chain, snapshots, train


def ceiling(truth):
    """The truth's stated reliability: seed-to-seed Kendall and the best Kendall a supernet can reach (predicted)."""
    nc = truth.attrs.get("noise_ceiling") or {}
    out = {"truth_seed_kendall": nc.get("kendall")}
    if "seed_mean" in nc:
        out["truth_best_kendall"] = nc["seed_mean"]["tau_vs_noise_free"]
    return {k: v for k, v in out.items() if v is not None}


class Result(NamedTuple):
    """Everything one run produced (the files in ``out_dir`` hold the same)."""
    cfg: object
    space: object
    data: object
    net: object
    trainer: object
    history: pd.DataFrame
    scores: pd.DataFrame
    truth: object
    metrics: dict
    usage: pd.DataFrame
    out_dir: Path


def run(cfg, out_dir=None, *, resume=True, log=print, keep_snapshots=True, usage_every_level=True, name=None):
    """Train (or resume) the run of ``cfg`` in ``out_dir`` (default cfg.out_dir), score and rank it: a ``Result``.
    Bad config, truth, arch list or out_dir fail before training; out_dir is locked while the run writes there.
    ``name``: the run's name in a shared TensorBoard DIR (a path: its last part; default: the run directory's)."""
    out = writable_dir(out_dir or cfg.out_dir, "out_dir (--out)")
    progress.report("build")
    datalib.check_name(cfg.dataset)
    space = spaces.get(cfg.space)
    truth = groundtruth.load(cfg.truth, space, for_dataset=cfg.dataset) if cfg.truth else None
    archs = arch_list(space, cfg.archs, cfg.arch_seed, truth)
    with locked(out):                      # a second run on out is refused before it writes anything
        if resume and (out / CKPT).is_file():           # refuse other training keys before writing the run dir
            check_training_keys(read_checkpoint(out / CKPT)["config"], cfg, out / CKPT)
        atomic_text(out / "config.yaml", cfg.to_yaml())
        atomic_json(out / "provenance.json", provenance(cfg))
        space, data, net = build(cfg)
        hook = probe(space, archs, data, cfg, truth, usage_every_level=usage_every_level)
        callbacks = [hook, snapshots()] if keep_snapshots else [hook]
        callbacks += tracking.callbacks(cfg, out, hook, name)       # tensorboard: scalars as training goes
        t0 = time.time()
        trainer, history = train(net, data, cfg, out_dir=out, resume=resume, log=log,
                                 on_epoch_end=chain(*callbacks))
        history.to_csv(out / "history.csv", index=False)
        train_s = time.time() - t0
        t0 = time.time()
        scores = evaluate(net, space, archs, data, cfg, on_scored=lambda i, n: progress.report("score", i, n))
        scores.to_csv(out / "scores.csv", index=False)
        metrics = {"train_seconds": round(train_s, 1), "score_seconds": round(time.time() - t0, 1),
                   "final_train_loss": float(history["train_loss"].iloc[-1]), **score_summary(scores)}
        if truth is not None:
            progress.report("rank")
            metrics.update({"truth": truth.attrs.get("version", cfg.truth), **ceiling(truth),
                            **compare(scores, truth)})
        atomic_json(out / "metrics.json", metrics)
    progress.report("done")
    usage = hook.usage if hook.usages else block_usage(net, space, hook.archs, routing=cfg.eval_routing,
                                                       seed=cfg.eval_seed)     # resumed after the last epoch
    return Result(cfg, space, data, net, trainer, history, scores, truth, metrics, usage, out)
