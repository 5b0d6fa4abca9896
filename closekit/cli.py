"""Command line of closekit.

``closekit train PARAMS.yaml``: train the configured supernet, score the configured architectures, compare
them with the ground truth when one is configured; the run directory gets config.yaml, checkpoint.pt,
history.csv, scores.csv, metrics.json.  ``closekit truth build``: a resumable mini benchmark (stand-alone
training).  ``closekit batch``: papermill jobs over GPUs / CPU slots.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from . import batch as batchlib
from . import groundtruth
from .config import RunConfig
from .evaluate import arch_list, evaluate_cfg, probe, score_summary
from .metrics import compare
from .train import build, train


def run_train(cfg, out_dir=None, resume=True, log=print):
    """The whole run of one config; returns (metrics dict, scores DataFrame, history DataFrame)."""
    out = Path(out_dir or cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / "config.yaml")
    space, data, net = build(cfg)
    truth = groundtruth.load(cfg.truth, space) if cfg.truth else None
    archs = arch_list(space, cfg.archs, cfg.arch_seed, truth)
    t0 = time.time()
    _, history = train(net, data, cfg, out_dir=out, resume=resume, log=log,
                       on_epoch_end=probe(space, archs, data, cfg, truth, usage_every_level=False))
    history.to_csv(out / "history.csv", index=False)
    train_s = time.time() - t0
    t0 = time.time()
    scores = evaluate_cfg(net, space, archs, data, cfg)
    scores.to_csv(out / "scores.csv", index=False)
    metrics = {"train_seconds": round(train_s, 1), "score_seconds": round(time.time() - t0, 1),
               "final_train_loss": float(history["train_loss"].iloc[-1]), **score_summary(scores)}
    if truth is not None:
        metrics.update({"truth": truth.attrs.get("version", cfg.truth), **compare(scores, truth)})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics, scores, history


def _overrides(pairs):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="closekit", description="one-shot NAS with CLOSE: train, ground truth, batch")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a supernet, score architectures, rank against ground truth")
    t.add_argument("params", help="params YAML file (see params/)")
    t.add_argument("--out", help="run directory (default: out_dir of the params)")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config values")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    tr = sub.add_parser("truth", help="ground truth tools").add_subparsers(dest="truth_cmd", required=True)
    b = tr.add_parser("build", help="mini benchmark: train archs x seeds stand-alone into a resumable directory")
    b.add_argument("--archs", required=True, help="sample:N | all | valid | text file of arch strings")
    b.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="training seeds (default 0 1)")
    b.add_argument("--out", required=True, help="output directory (rerun to resume)")
    b.add_argument("--recipe", help="recipe YAML file (default: the built-in recipe)")
    b.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override recipe values")
    b.add_argument("--workers", type=int, default=1, help="parallel training processes")
    b.add_argument("--sample-seed", type=int, default=0, help="seed of sample:N")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    bt = sub.add_parser("batch", help="run a notebook once per params file with papermill (GPU / CPU job queue)")
    batchlib.add_arguments(bt)
    args = p.parse_args(argv)
    if args.cmd == "batch":
        return batchlib.cli_run(args)
    if args.cmd == "truth":
        from .groundtruth import minibench
        return minibench.cli_build(args, _overrides)
    try:
        cfg = RunConfig.from_yaml(args.params, **_overrides(args.set))
        metrics, _, _ = run_train(cfg, args.out, resume=not args.no_resume)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"closekit: error: {msg}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
