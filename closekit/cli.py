"""Command line of closekit.

``closekit train PARAMS.yaml``: train the configured supernet, score the configured architectures, compare
them with the ground truth when one is configured; the run directory gets config.yaml, checkpoint.pt,
history.csv, scores.csv, metrics.json.  ``closekit truth build``: a resumable mini benchmark (stand-alone
training).  ``closekit batch``: papermill jobs over GPUs / CPU slots / a SLURM cluster.  ``closekit search RUN_DIR``:
random search or regularized evolution on a trained run's one-shot scores.
"""
import argparse
import json
import sys

import yaml

from . import batch as batchlib
from . import search as searchlib
from .config import RunConfig
from .run import run

ERRORS = (ValueError, FileNotFoundError, KeyError, RuntimeError)     # one line each, exit 2


def _overrides(pairs):
    """``--set KEY=VALUE`` pairs as a dict, each value read as YAML."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise ValueError(f"--set {pair}: the value is not valid YAML ({getattr(e, 'problem', None) or e}); "
                             f"quote it, e.g. --set '{k}=\"...\"'") from None
    return out


def _error(e):
    """Print one line for an expected error; exit status 2."""
    print(f"closekit: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
    return 2


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
    b.add_argument("--space", help="search space (default: the recipe's, nb201)")
    b.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="training seeds (default 0 1)")
    b.add_argument("--out", required=True, help="output directory (rerun to resume)")
    b.add_argument("--recipe", help="recipe YAML file (default: the built-in recipe)")
    b.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override recipe values")
    b.add_argument("--workers", type=int, default=1, help="parallel training processes")
    b.add_argument("--sample-seed", type=int, default=0, help="seed of sample:N")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    bt = sub.add_parser("batch", help="run a notebook once per params file with papermill (GPU / CPU job queue)")
    batchlib.add_arguments(bt)
    se = sub.add_parser("search", help="random search / regularized evolution on a trained run's one-shot scores")
    searchlib.add_arguments(se)
    args = p.parse_args(argv)
    if args.cmd == "batch":
        return batchlib.cli_run(args)
    try:
        if args.cmd == "truth":
            from .groundtruth import minibench
            truth = minibench.cli_build(args, _overrides)
            print(json.dumps({"out": str(args.out), "version": truth.attrs["version"], "n_archs": len(truth),
                              "noise_ceiling": truth.attrs["noise_ceiling"]}, indent=1))
            return 0
        if args.cmd == "search":
            return searchlib.cli_run(args)
        cfg = RunConfig.from_yaml(args.params, **_overrides(args.set))
        result = run(cfg, args.out, resume=not args.no_resume)
    except ERRORS as e:
        return _error(e)
    print(json.dumps(result.metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
