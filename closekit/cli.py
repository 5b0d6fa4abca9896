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


def add_batch_arguments(p):
    """The ``closekit batch`` arguments."""
    p.add_argument("notebook", nargs="?", help="notebook with a cell tagged 'parameters'")
    p.add_argument("params", nargs="*", help="params YAML files, one job each (times every --grid point)")
    p.add_argument("--out", help="batch directory (rerun to resume: jobs finished with the same params and "
                   "notebook are skipped)")
    p.add_argument("--status", metavar="DIR", help="show every job's state in batch directory DIR and exit")
    p.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="Cartesian product over every params file, "
                   "e.g. --grid seed=0,1,2 gate_lr_scale=1,10 (values typed like the notebook's parameters)")
    p.add_argument("--rerun", action="store_true", help="run finished jobs again (e.g. the ground truth changed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--gpus", help="comma-separated GPU ids, one job per GPU at a time (e.g. 0,1)")
    g.add_argument("--cpu-slots", type=int, default=1, help="parallel jobs without GPU (default 1)")
    p.add_argument("--timeout", type=float, help="wall-clock seconds per job attempt (default: none)")
    p.add_argument("--retries", type=int, default=1, help="retries of a job whose kernel died (default 1)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel spec (default python3)")
    p.add_argument("--no-html", action="store_true", help="skip the HTML reports")
    p.add_argument("--progress-every", type=float, default=30.0, metavar="S", help="seconds between two progress "
                   "lines of a job's phase; a new phase is shown at once (default 30; 0: every change)")
    s = p.add_argument_group("SLURM engine (pip install closekit[slurm])")
    s.add_argument("--engine", default="local", choices=("local", "slurm"), help="local (default) or slurm: one job "
                   "array, each task runs one job on the cluster; --out must be on the shared filesystem")
    s.add_argument("--partition", help="SLURM partition (required with --engine slurm)")
    s.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per array task (default 1; 0: CPU only)")
    s.add_argument("--max-parallel", type=int, help="array tasks running at once (default: no limit)")
    s.add_argument("--slurm", nargs="+", metavar="KEY=VALUE", default=[], help="more submitit SlurmExecutor "
                   "options, e.g. cpus_per_task=8 mem=32G account=lab (unknown keys go to sbatch as --key=value)")


def batch_cli(args):
    """Run ``closekit batch`` from parsed arguments; exit code 0 when every job is ok or skipped."""
    try:
        if args.status:
            table = batchlib.batch_status(args.status)
            print(table.to_string(index=False) if len(table) else f"no jobs in {args.status}")
            return 0
        if not args.notebook or not args.out or not (args.params or args.grid):
            raise ValueError("give NOTEBOOK, PARAMS.yaml files and/or --grid, and --out DIR (or --status DIR)")
        slurm = None
        if args.engine == "slurm":
            if args.gpus:
                raise ValueError("--gpus picks this machine's GPUs; with --engine slurm use --gpus-per-job N")
            if not args.partition:
                raise ValueError("--engine slurm needs --partition NAME (sinfo lists them)")
            from .slurm import parse_options
            slurm = dict(partition=args.partition, gpus_per_job=args.gpus_per_job, max_parallel=args.max_parallel,
                         options=parse_options(args.slurm))
        summary = batchlib.run_batch(args.notebook, args.params, args.out, gpus=args.gpus, cpu_slots=args.cpu_slots,
                            timeout=args.timeout, retries=args.retries, kernel=args.kernel, html=not args.no_html,
                            rerun=args.rerun, progress_every=args.progress_every, grid=args.grid,
                            engine=args.engine, slurm=slurm)
    except (ValueError, FileNotFoundError) as e:
        print(f"closekit batch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("closekit batch: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0 if summary["state"].isin(["ok", "skipped"]).all() else 1


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
    add_batch_arguments(bt)
    se = sub.add_parser("search", help="random search / regularized evolution on a trained run's one-shot scores")
    searchlib.add_arguments(se)
    args = p.parse_args(argv)
    if args.cmd == "batch":
        return batch_cli(args)
    try:
        if args.cmd == "truth":
            from .groundtruth import minibench, pool
            from .groundtruth.recipe import Recipe
            space = {"space": args.space} if args.space else {}
            recipe = Recipe.from_yaml(args.recipe, **_overrides(args.set), **space)
            with pool.stop_on_sigterm():
                truth = minibench.build(args.archs, args.seeds, recipe, args.out, workers=args.workers,
                                        sample_seed=args.sample_seed, progress=not args.no_progress)
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
