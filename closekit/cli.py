"""Command line of closekit: ``train`` (one run), ``truth build`` (a mini benchmark), ``batch`` (papermill jobs on
GPUs / CPU slots / SLURM), ``search`` (on a trained run's scores), ``params`` (the shipped files), ``init``.

Parsing arguments and checking a config import nothing heavy (torch, pandas, scipy): help and config errors come
at once; each command imports what it runs.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .config import RunConfig, parse_overrides, reference
from .jobs import JobOptions

ERRORS = (ValueError, OSError, KeyError, RuntimeError, FloatingPointError, EOFError)     # one line each, exit 2
PARAMS = Path(__file__).resolve().parent.parent / "params"      # the shipped params files (a source checkout)
STRATEGIES = ("random", "evolution")                            # = closekit.search.STRATEGIES (a test checks)
SET_EXAMPLE = "--set epochs=5 lr=0.1 truth=null out_dir=runs/try"


def config_help():
    """The config keys, grouped as RunConfig is: name, type, default and one line each (``train --help``)."""
    lines, group = [f"config keys (set them in PARAMS.yaml or override with --set KEY=VALUE ..., e.g. "
                    f"{SET_EXAMPLE}):"], None
    for g, key, typ, default, doc in reference():
        if g != group:
            lines.append(f"\n  {g}:")
            group = g
        value = "null" if default is None else json.dumps(list(default) if isinstance(default, tuple) else default)
        lines.append(f"    {key} = {value}  [{typ}]  {doc}")
    return "\n".join(lines)


def params_cli(args):
    """List the shipped params files with the first line of their header comment."""
    files = sorted(PARAMS.rglob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no params files under {PARAMS}: they ship with a source checkout of closekit")
    for f in files:
        first = next((t.lstrip("# ").strip() for t in f.read_text().splitlines() if t.startswith("#")), "")
        print(f"{f.relative_to(PARAMS.parent)}  {first}")
    return 0


def train_cli(args):
    """``closekit train``: a start line at once, the run (bars on a terminal), then its headline and directory."""
    cfg = RunConfig.from_yaml(args.params, **parse_overrides(args.set))
    out = args.out or cfg.out_dir
    print(f"closekit train: {cfg.space} {cfg.supernet}, {cfg.epochs} epochs on {cfg.dataset} -> {out}", flush=True)
    from .metrics import SCORE_NAMES, headline_text, training_warning
    from .run import run
    result = run(cfg, out, resume=not args.no_resume)
    print(headline_text(result.metrics) + ("" if cfg.score == "acc" else f"; ranked by the {SCORE_NAMES[cfg.score]}"))
    warning = training_warning(result.history, result.data.num_classes)
    if warning:
        print(f"warning: {warning}")
    print(f"run directory: {result.out_dir}")
    return 0


def truth_cli(args):
    """``closekit truth build``: a resumable mini benchmark; prints where it is and its noise ceiling."""
    from .groundtruth import minibench, pool
    from .groundtruth.recipe import Recipe
    recipe = Recipe.from_yaml(args.recipe, **parse_overrides(args.set), **({"space": args.space} if args.space else {}))
    with pool.stop_on_sigterm():
        truth = minibench.build(args.archs, args.seeds, recipe, args.out, workers=args.workers,
                                sample_seed=args.sample_seed, progress=not args.no_progress)
    print(json.dumps({"out": str(args.out), "version": truth.attrs["version"], "n_archs": len(truth),
                      "noise_ceiling": truth.attrs["noise_ceiling"]}, indent=1))
    return 0


def search_cli(args):
    """``closekit search``: print the report as JSON."""
    from .search import search_run
    _, report = search_run(args.run_dir, args.strategy, args.budget, args.seed, args.domain, args.population,
                           args.sample, args.device, baseline=not args.no_baseline, out=args.out)
    print(json.dumps(report, indent=1, default=float))
    return 0


def batch_cli(args):
    """``closekit batch`` (or ``--status``); exit code 0 when every job is ok or skipped."""
    from . import batch as batchlib
    if args.status:
        table = batchlib.batch_status(args.status)
        print(table.to_string(index=False) if len(table) else f"no jobs in {args.status}")
        return 0
    if not args.notebook or not args.out or not (args.params or args.grid):
        raise ValueError("give NOTEBOOK, PARAMS.yaml files and/or --grid, and --out DIR (or --status DIR)")
    opts = JobOptions(timeout=args.timeout, retries=args.retries, kernel=args.kernel, html=not args.no_html,
                      rerun=args.rerun, progress_every=args.progress_every)
    slurm = dict(partition=args.partition, gpus_per_job=args.gpus_per_job, max_parallel=args.max_parallel,
                 options=parse_overrides(args.slurm, "--slurm"))
    summary = batchlib.run_batch(args.notebook, args.params, args.out, opts, gpus=args.gpus, cpu_slots=args.cpu_slots,
                                 grid=args.grid, engine=args.engine, slurm=slurm)
    return 0 if summary["state"].isin(["ok", "skipped"]).all() else 1


def init_cli(args):
    """``closekit init DIR``: lay out the kit, print what went where."""
    from . import starter
    files = starter.init(args.dir, force=args.force)
    n_nb = sum(f.suffix == ".ipynb" for f in files)
    print(f"closekit init: {n_nb} notebooks, {len(files) - n_nb - 1} params files and README.md in {args.dir} "
          f"(from {starter.source()})")
    return 0


def parser():
    """The argument parser of every command."""
    p = argparse.ArgumentParser(prog="closekit", description="one-shot NAS with CLOSE: train, ground truth, batch")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a supernet, score architectures, rank against ground truth",
                       epilog=config_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("params", help="params YAML file (closekit params lists the shipped ones)")
    t.add_argument("--out", help="run directory (default: out_dir of the params)")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=f"override config keys, e.g. {SET_EXAMPLE}")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    sub.add_parser("params", help="list the shipped params files")
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
    b = sub.add_parser("batch", help="run a notebook once per params file with papermill (GPU / CPU job queue)")
    b.add_argument("notebook", nargs="?", help="notebook with a cell tagged 'parameters'")
    b.add_argument("params", nargs="*", help="params YAML files, one job each (times every --grid point)")
    b.add_argument("--out", help="batch directory (rerun to resume: finished jobs of the same notebook are skipped)")
    b.add_argument("--status", metavar="DIR", help="show every job's state in batch directory DIR and exit")
    b.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="Cartesian product over every params file, "
                   "e.g. --grid seed=0,1,2 gate_lr_scale=1,10 (values typed like the notebook's parameters)")
    b.add_argument("--rerun", action="store_true", help="run finished jobs again (e.g. the ground truth changed)")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--gpus", help="comma-separated GPU ids, one job per GPU at a time (e.g. 0,1)")
    g.add_argument("--cpu-slots", type=int, default=1, help="parallel jobs without GPU (default 1)")
    b.add_argument("--timeout", type=float, help="wall-clock seconds per job attempt, > 0 (default: none)")
    b.add_argument("--retries", type=int, default=1, help="retries of a job whose kernel died, >= 0 (default 1)")
    b.add_argument("--kernel", default="python3", help="Jupyter kernel spec (default python3)")
    b.add_argument("--no-html", action="store_true", help="skip the HTML reports")
    b.add_argument("--progress-every", type=float, default=JobOptions.progress_every, metavar="S", help="seconds "
                   "between two progress lines within a job's phase; a new phase is shown at once (default "
                   f"{JobOptions.progress_every:g}; 0: every change)")
    s = b.add_argument_group("SLURM engine (pip install closekit[slurm])")
    s.add_argument("--engine", default="local", choices=("local", "slurm"), help="slurm: one job array, --out on the "
                   "cluster's shared filesystem")
    s.add_argument("--partition", help="SLURM partition (required with --engine slurm)")
    s.add_argument("--gpus-per-job", type=int, help="GPUs per array task (default 1; 0: CPU only)")
    s.add_argument("--max-parallel", type=int, help="array tasks running at once (default: no limit)")
    s.add_argument("--slurm", nargs="+", metavar="KEY=VALUE", help="more submitit SlurmExecutor "
                   "options, e.g. cpus_per_task=8 mem=32G account=lab (unknown keys go to sbatch as --key=value)")
    r = sub.add_parser("search", help="random search / regularized evolution on a trained run's one-shot scores")
    r.add_argument("run_dir", help="a run directory (closekit train) or a batch job directory (closekit batch)")
    r.add_argument("--strategy", default="evolution", choices=STRATEGIES)
    r.add_argument("--budget", type=int, default=100, help="architectures scored (default 100)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--population", type=int, default=20, help="evolution: population size P (default 20)")
    r.add_argument("--sample", type=int, default=5, help="evolution: tournament size S (default 5)")
    r.add_argument("--domain", default="auto", choices=("auto", "space", "truth"),
                   help="auto: the ground truth's archs when the run has one, else the whole space")
    r.add_argument("--device", default="cpu")
    r.add_argument("--out", help="folder of the history CSV and report JSON (default RUN_DIR/search)")
    r.add_argument("--no-baseline", action="store_true", help="skip scoring every truth arch for the random baseline")
    i = sub.add_parser("init", help="copy the notebooks and params files into a working directory")
    i.add_argument("dir", help="working directory to fill (notebooks/, params/, README.md)")
    i.add_argument("--force", action="store_true", help="overwrite files already there")
    return p


COMMANDS = {"train": train_cli, "params": params_cli, "truth": truth_cli, "batch": batch_cli, "search": search_cli,
            "init": init_cli}


def main(argv=None):
    args = parser().parse_args(argv)
    name = "closekit batch" if args.cmd == "batch" else "closekit"
    try:
        return COMMANDS[args.cmd](args)
    except BrokenPipeError:                  # the reader stopped early (closekit params | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ERRORS as e:
        print(f"{name}: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
