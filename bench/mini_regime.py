"""Mini regimes in which vanilla one-shot NB301 and NDS supernets train (issue 29 item 3): a resumable study.

One fixed baseline per space (the shipped ``params/<space>/*mini-vanilla.yaml``, only the seed changed) and
variants that change ONE thing (``KEY=VALUE`` RunConfig overrides), 2 training seeds each, every run through
``closekit.run`` and scored on all of the shipped mini truth's architectures (the same 200 for every row). Each
finished run is one row of ``rows.csv``, keyed by (space, variant, seed, config hash, code version): training
accuracy along the run (at 1/4, 1/2 and the end; rising or flat over the last quarter), final loss, Kendall /
Spearman / P@top5% against the truth, the ranking by parameter count alone and the truth's ceilings beside it.
A killed study resumes: finished rows are skipped, a run in progress restarts from its checkpoint (saved every
epoch); rows are appended atomically and ``table.md`` is rewritten after each row.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/mini_regime.py            # run (or resume) the whole plan
    PYTHONPATH=. python bench/mini_regime.py --list                       # the plan and what is done
    PYTHONPATH=. python bench/mini_regime.py --table                      # print the table of the rows so far
    PYTHONPATH=. python bench/mini_regime.py --only nb301 --seeds 0       # a part of the plan
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/mini-regime"
# space -> (params file, overrides): the fixed baseline. ResNeXt-A's mini became this study's winner (batch 32 x 40
# epochs); its baseline stays the mini the study started from, so the committed rows keep their config hashes.
BASE = {"nb301": ("params/nb301/mini-vanilla.yaml", {}), "nds-resnet": ("params/nds/resnet-mini-vanilla.yaml", {}),
        "nds-resnexta": ("params/nds/resnexta-mini-vanilla.yaml", {"epochs": 20, "batch_size": 128})}
STUDY = {"save_every": 1, "eval_every": 0, "archs": "truth"}   # not training keys: resume per epoch, score the truth
SEEDS = (0, 1)
CHANCE = 0.1                     # 10 classes on the embedded data
RISING = 0.01                    # last-quarter gain in training accuracy above which a run is still rising
TAIL = 3                         # epochs averaged at each end of that comparison (one epoch's accuracy is noisy)
BASELINE = "baseline"
# (space, variants) in the order they run, most informative first: the baselines, the levers most likely to
# matter for the space that trains worst (ResNeXt-A: widths resampled every step; bench/nds_supernet_fit.py), its
# untried ones first (head_norm=mean has 3 seeds in bench/results/ranking-nds-resnexta), then NB301's and ResNet's;
# second-tier levers after the first tier has both seeds: the two levers that helped each space most, together
# (ResNeXt-A: channels_init=4 and epochs=60 / batch_size=32 and epochs=60; NB301: batch_size=32 and epochs=60), then
# the untried single levers.
TIER1 = [("nds-resnexta", [BASELINE]), ("nds-resnet", [BASELINE]), ("nb301", [BASELINE]),
         ("nds-resnexta", ["batch_size=32", "channels_init=4", "epochs=60", "head_norm=mean"]),
         ("nb301", ["epochs=90", "batch_size=32", "train_limit=null", "lr=0.1"]),
         ("nds-resnet", ["batch_size=32", "epochs=60", "head_norm=mean"])]
TIER2 = [("nds-resnexta", ["channels_init=4 epochs=60", "batch_size=32 epochs=60", "batch_size=32 epochs=40",
                          "lr=0.02", "grad_clip=5"]),
         ("nb301", ["batch_size=32 epochs=60", "augment=false", "dropout=0", "channels_init=16"]),
         ("nds-resnet", ["channels_init=4", "lr=0.1", "augment=false", "weight_decay=0.0005"])]
# tier 3 (on the code with ``sampler``): the slimmable / BigNAS sandwich rule for the NDS widths, at the baseline's
# epochs and at about the baseline's compute (a sandwich step costs ~6x a sampled one on these supernets: the largest
# configuration alone ~5x; measured in bench/results/mini-regime/README.md)
TIER3 = [("nds-resnexta", ["sampler=sandwich epochs=4", "sampler=sandwich"]),
         ("nds-resnet", ["sampler=sandwich epochs=4"])]
KEY = ("space", "variant", "seed", "config_hash", "code_version")


def plan(seeds=SEEDS, only=None, variants=None):
    """(space, variant, seed) in run order: each tier seed by seed; ``only`` / ``variants`` keep a part of it."""
    return [(space, v, s) for tier in (TIER1, TIER2, TIER3) for s in seeds for space, vs in tier for v in vs
            if (only is None or space in only) and (variants is None or v in variants)]


def overrides(variant):
    """A variant's RunConfig overrides: {} for the baseline, else its space-separated KEY=VALUE pairs."""
    from closekit.config import parse_overrides as _overrides
    return {} if variant == BASELINE else _overrides(variant.split())


def config(space, variant, seed, extra=None):
    """The resolved RunConfig of one row (bad keys or values raise one line naming them); ``extra``: --set."""
    from closekit.config import RunConfig
    path, base = BASE[space]
    return RunConfig.from_yaml(ROOT / path, **{**base, **STUDY, "seed": seed, **(extra or {}), **overrides(variant)})


def run_dir(out, space, variant, seed, prov):
    """Where one run trains: keyed like its row, so another config or code never resumes it."""
    slug = variant.replace(" ", "_").replace("=", "-")
    return Path(out) / space / f"{slug}-seed{seed}-{prov['config_hash'][:8]}-{prov['code_version'][:8]}"


def trajectory(h):
    """Training accuracy at 1/4, 1/2 and the end of a history, and whether it still rose over the last quarter."""
    acc, n = h["train_acc"].to_numpy(), len(h)
    at = lambda f: float(acc[max(0, math.ceil(f * n) - 1)])  # noqa: E731
    q3 = math.ceil(0.75 * n)
    gain = float(acc[n - TAIL:].mean() - acc[max(0, q3 - TAIL):q3].mean())
    return {"acc_q1": at(0.25), "acc_half": at(0.5), "train_acc": float(acc[-1]), "best_train_acc": float(acc.max()),
            "last_quarter_gain": gain, "trend": "rising" if gain > RISING else "flat"}


def baselines(space):
    """Parameter count alone and the truth's ceilings, for one space's shipped mini truth."""
    from closekit import groundtruth, spaces
    from closekit.metrics import size_baseline
    from closekit.run import ceiling
    sp = spaces.get(space)
    truth = groundtruth.load(f"mini-{space}", sp)
    m = size_baseline(truth, sp)
    return {"params_kendall": m["kendall"], "params_spearman": m["spearman"], "params_p@top5%": m["p@top5%"],
            **ceiling(truth)}


def loss_kendall(space, run_path):
    """Kendall of the negated held-out loss (instead of accuracy) against the truth: the same scores.csv, no rerun."""
    from closekit import groundtruth, spaces
    from scipy.stats import kendalltau
    truth = groundtruth.load(f"mini-{space}", spaces.get(space))
    scores = pd.read_csv(Path(run_path) / "scores.csv")
    both = scores.merge(truth[["arch", "acc"]], on="arch", suffixes=("", "_truth"))
    if len(both) != len(scores):
        raise ValueError(f"{run_path}/scores.csv: {len(scores) - len(both)} architectures are not in the truth")
    return float(kendalltau(-both["loss"], both["acc_truth"])[0])


def backfill_loss_kendall(path, out):
    """Rows written before the loss column existed get it from their run's scores.csv (when it is still there)."""
    rows = read_rows(path)
    if rows.empty:
        return
    if "kendall_loss" not in rows:
        rows["kendall_loss"] = float("nan")
    todo = rows["kendall_loss"].isna() & (rows["status"] == "ok")
    for i in rows.index[todo]:
        d = Path(out) / rows.at[i, "space"] / rows.at[i, "dir"]
        if (d / "scores.csv").is_file():
            rows.at[i, "kendall_loss"] = loss_kendall(rows.at[i, "space"], d)
    if todo.any():
        tmp = Path(path).with_suffix(".csv.tmp")
        rows.to_csv(tmp, index=False)
        os.replace(tmp, path)


def run_row(space, variant, seed, out, results, extra=None):
    """Train (or resume), score and rank one (space, variant, seed); returns its row."""
    import torch
    from closekit import run
    from closekit.run import provenance
    torch.set_num_threads(1)
    cfg = config(space, variant, seed, extra)
    prov = provenance(cfg)
    d = run_dir(out, space, variant, seed, prov)
    row = {"space": space, "variant": variant, "seed": seed, **prov, "epochs": cfg.epochs, "dir": d.name}
    t0 = time.time()
    try:
        res = run(cfg, d, log=lambda line: print(f"  {space} {variant} s{seed}: {line}", flush=True),
                  keep_snapshots=False, usage_every_level=False)
    except FloatingPointError as e:             # deterministic: a rerun diverges again, so it is a result
        return {**row, "status": f"diverged: {e}".split(";")[0], "wall_seconds": round(time.time() - t0, 1)}
    h, m = res.history, res.metrics
    hist_dir = Path(results) / "histories"
    hist_dir.mkdir(parents=True, exist_ok=True)
    h.to_csv(hist_dir / f"{space}-{d.name}.csv", index=False)
    train_s = float(h["seconds"].sum())         # all epochs, resumed ones included
    return {**row, "status": "ok", "train_seconds": round(train_s, 1), "score_seconds": m["score_seconds"],
            "wall_seconds": round(train_s + m["score_seconds"], 1),
            "seconds_per_epoch": round(train_s / len(h), 2), "score_ms_per_arch": round(1e3 * m["score_seconds"] /
                                                                                        m["n"], 1),
            **trajectory(h), "final_train_loss": m["final_train_loss"],
            **{k: m.get(k) for k in ("kendall", "spearman", "p@top5%", "n")}, **baselines(space),
            "kendall_loss": loss_kendall(space, Path(out) / space / d.name),
            "load_avg_15min": round(os.getloadavg()[2], 1)}     # the machine is shared: read the seconds with it


def read_rows(path):
    """The study's rows so far (an empty frame before the first)."""
    return pd.read_csv(path) if Path(path).is_file() else pd.DataFrame(columns=list(KEY))


def append_row(path, row):
    """Append one row atomically: write the whole table to a temporary file, then rename it over the old one."""
    df = pd.concat([read_rows(path), pd.DataFrame([row])], ignore_index=True)
    tmp = Path(path).with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def done_keys(rows):
    """The keys of the finished rows."""
    return {tuple(r[k] for k in KEY) for _, r in rows.iterrows()}


def key_of(space, variant, seed, extra=None):
    """The row key a (space, variant, seed) has under this code."""
    from closekit.run import provenance
    prov = provenance(config(space, variant, seed, extra))
    return (space, variant, seed, prov["config_hash"], prov["code_version"])


def table(rows):
    """Markdown: one line per (space, variant), mean ± sd over its seeds (the value alone for one seed)."""
    if rows.empty:
        return "(no rows yet)"
    ok = rows[rows["status"] == "ok"]

    def cell(g, k, pct=False):
        v = g[k].astype(float) * (100 if pct else 1)
        f = "{:.1f}" if pct else "{:.3f}"
        if v.isna().all():
            return "undefined"
        return f.format(v.mean()) + (f" ± {f.format(v.std(ddof=1))}" if v.notna().sum() > 1 else "")

    lines = ["| space | variant | seeds | epochs | train acc % (1/4, 1/2, end) | trend | final loss | kendall | "
             "kendall (-loss) | spearman | p@top5% | params-alone kendall | ceiling (seed pair / best) | min/run |",
             "|---" * 14 + "|"]
    for (space, variant), g in ok.groupby(["space", "variant"], sort=False):
        trends = "/".join(g["trend"])
        accs = f"{cell(g, 'acc_q1', True)}, {cell(g, 'acc_half', True)}, **{cell(g, 'train_acc', True)}**"
        ceil = f"{g['truth_seed_kendall'].iloc[0]:.3f} / {g['truth_best_kendall'].iloc[0]:.3f}"
        lines.append(f"| {space} | {variant} | {','.join(map(str, g['seed']))} | {int(g['epochs'].iloc[0])} | {accs} | "
                     f"{trends} | {cell(g, 'final_train_loss')} | {cell(g, 'kendall')} | {cell(g, 'kendall_loss')} | "
                     f"{cell(g, 'spearman')} | "
                     f"{cell(g, 'p@top5%')} | {g['params_kendall'].iloc[0]:.3f} | {ceil} | "
                     f"{g['wall_seconds'].mean() / 60:.1f} |")
    for _, r in rows[rows["status"] != "ok"].iterrows():
        lines.append(f"| {r['space']} | {r['variant']} | {r['seed']} | {r['epochs']} | {r['status']} |" + " |" * 9)
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print the plan and what is done, run nothing")
    p.add_argument("--table", action="store_true", help="print the table of the rows so far, run nothing")
    p.add_argument("--only", nargs="+", choices=tuple(BASE), help="only these spaces")
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help="only these variants (e.g. baseline "
                                                                    "'sampler=sandwich epochs=4')")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="training seeds (default 0 1)")
    p.add_argument("--out", default=str(ROOT / "runs/mini-regime"), help="run directories (checkpoints)")
    p.add_argument("--rows", default=str(RESULTS / "rows.csv"),
                   help="the study's CSV (one row per finished run); table.md and histories/ go beside it")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override every config (a quick check; use another --rows and --out)")
    args = p.parse_args(argv)
    from closekit.config import parse_overrides as _overrides
    extra = _overrides(args.set)
    jobs = plan(args.seeds, args.only, args.variants)
    keys = [key_of(*j, extra) for j in jobs]               # every config resolves before any work: bad keys fail here
    backfill_loss_kendall(args.rows, args.out)
    rows = read_rows(args.rows)
    if args.table:
        print(table(rows))
        return 0
    done = done_keys(rows)
    if args.list:
        for j, k in zip(jobs, keys):
            print(f"{'done' if k in done else 'todo'}  {j[0]:13s} seed {j[2]}  {j[1]}")
        print(f"{sum(k in done for k in keys)} of {len(jobs)} done; code version {keys[0][4]}")
        return 0
    results = Path(args.rows).parent
    results.mkdir(parents=True, exist_ok=True)
    for (space, variant, seed), k in zip(jobs, keys):
        if k in done:
            continue
        print(f"{time.strftime('%H:%M:%S')} start {space} {variant} seed {seed}", flush=True)
        try:
            row = run_row(space, variant, seed, args.out, results, extra)
        except Exception as e:                  # one bad run must not stop the study; it is retried on resume
            print(f"{time.strftime('%H:%M:%S')} FAILED {space} {variant} seed {seed}: {e!r}", flush=True)
            continue
        append_row(args.rows, row)
        (results / "table.md").write_text(table(read_rows(args.rows)) + "\n")
        acc, tau = (float(row.get(k) if row.get(k) is not None else "nan") for k in ("train_acc", "kendall"))
        print(f"{time.strftime('%H:%M:%S')} done {space} {variant} seed {seed}: train acc {acc:.3f}, kendall {tau:.3f} "
              f"({row['status']}, {row['wall_seconds'] / 60:.1f} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
