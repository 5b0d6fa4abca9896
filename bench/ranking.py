"""Ranking quality of vanilla vs CLOSE supernets on the shipped mini NB201 ground truth (issue 3, CLOSE §5.1).

Trains every (variant, seed) with the small CPU configs, scores the ground truth's architectures and prints
Kendall tau, P@top5% and BR@5% (best true rank among the predicted top 5%, as a fraction; mean ± std over seeds) next to the ground truth's noise ceiling. Every CLOSE run
is also re-scored with the reference's Gumbel-sampled routing (eval_routing=gumbel, no retraining), and the table
gives the share of (architecture, edge) pairs the scoring routes to block 0 and the mean GATE entropy. Each run keeps
its own directory under --out with checkpoints and bench.json, so a killed bench resumes where it stopped and
a rerun only prints the table.

    python bench/ranking.py                       # vanilla + CLOSE x seeds 0 1 2, ablations on seed 0
    python bench/ranking.py --workers 2 --seeds 0 1 2 --out runs/bench-ranking
    python bench/ranking.py --seeds 0 --set epochs=2 train_limit=1000 --out /tmp/rk     # a one-minute check
"""
import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# variant name -> (params file, overrides)
VARIANTS = {
    "vanilla": ("params/nb201/mini-vanilla.yaml", {}),
    "close": ("params/nb201/mini-close.yaml", {}),
    "close gate_forward=selected": ("params/nb201/mini-close.yaml", {"gate_forward": "selected"}),
    "close aw_nas_compat=true": ("params/nb201/mini-close.yaml", {"aw_nas_compat": True}),
}
MAIN, ABLATIONS = ("vanilla", "close"), ("close gate_forward=selected", "close aw_nas_compat=true")
KEYS = ("kendall", "p@top5%", "br@5%_rel")


def run_one(job):
    """Train + score one (variant, seed); returns its metrics dict (cached in bench.json)."""
    import torch
    from closekit.cli import run_train
    from closekit.config import RunConfig
    variant, seed, truth, out, extra = job
    out = Path(out)
    if (out / "bench.json").is_file():
        return json.loads((out / "bench.json").read_text())
    torch.set_num_threads(1)
    params, over = VARIANTS[variant]
    cfg = RunConfig.from_yaml(ROOT / params, seed=seed, truth=truth, archs="truth", **{**over, **extra})
    metrics, _, _ = run_train(cfg, out, log=lambda *a, **k: None)
    if cfg.supernet == "close":
        metrics["gumbel"] = rescore(out, cfg, truth)
        metrics.update(routing_stats(out, cfg))
    (out / "bench.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def rescore(out, cfg, truth_spec):
    """Ranking metrics of the trained CLOSE net scored with Gumbel-sampled routing (the reference's evaluation)."""
    from closekit import groundtruth
    from closekit.evaluate import arch_list, evaluate_cfg
    from closekit.metrics import compare
    from closekit.routing import load_net
    from closekit.train import build
    net, _, _ = load_net(out / "checkpoint.pt")
    space, data, _ = build(cfg)
    truth = groundtruth.load(truth_spec, space)
    scores = evaluate_cfg(net, space, arch_list(space, cfg.archs, cfg.arch_seed, truth), data, cfg,
                          routing="gumbel", progress=False)
    return {k: v for k, v in compare(scores, truth).items() if k in KEYS}


def routing_stats(out, cfg):
    """Share of (arch, edge) pairs routed to block 0 by argmax scoring, mean GATE entropy / its maximum."""
    import math
    from closekit import groundtruth
    from closekit.routing import entropy, load_net, route
    from closekit.spaces import get
    net, _, _ = load_net(out / "checkpoint.pt")
    space = get(cfg.space)
    r = route(net, space, list(groundtruth.load(cfg.truth, space)["arch"]))
    return {"block0_share": float((r.chosen == 0).float().mean()),
            "entropy_ratio": float(entropy(r.probs).mean()) / math.log(r.level) if r.level > 1 else float("nan")}


def table(rows, ceiling):
    """Markdown table: mean ± std over seeds per variant, the noise ceiling alongside."""
    df = pd.DataFrame(rows)
    cols = (*KEYS, "block0_share", "entropy_ratio")
    lines = ["| variant | seeds | " + " | ".join(cols) + " | train s/run |", "|---" * (len(cols) + 3) + "|"]
    for variant, g in df.groupby("variant", sort=False):
        cells = [("" if g[k].isna().all() else f"{g[k].mean():.3f} ± {g[k].std(ddof=1):.3f}" if len(g) > 1
                  else f"{g[k].iloc[0]:.3f}") for k in cols]
        lines.append(f"| {variant} | {len(g)} | " + " | ".join(cells) + f" | {g['train_seconds'].mean():.0f} |")
    lines.append(f"| ground truth: seed 0 vs seed 1 (noise ceiling) | | {ceiling['kendall']:.3f} ± "
                 f"{ceiling['bootstrap_std']:.3f} (bootstrap) |" + " |" * (len(cols)) )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--truth", default="mini-nb201", help="ground truth spec (closekit.groundtruth.load)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of vanilla and CLOSE")
    p.add_argument("--ablation-seeds", nargs="*", type=int, default=[0], help="seeds of the ablation variants")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    p.add_argument("--out", default="runs/bench-ranking", help="run directories (rerun to resume)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override every config (a quick check)")
    args = p.parse_args(argv)
    from closekit import groundtruth
    from closekit.cli import _overrides
    from closekit.spaces import get
    truth = groundtruth.load(args.truth, get("nb201"))
    jobs = [(v, s) for v in MAIN for s in args.seeds] + [(v, s) for v in ABLATIONS for s in args.ablation_seeds]
    extra = _overrides(args.set)
    specs = [(v, s, args.truth, str(Path(args.out) / f"{v.replace(' ', '_').replace('=', '-')}-seed{s}"), extra)
             for v, s in jobs]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(run_one, specs, chunksize=1)
    rows = []
    for (v, s), m in zip(jobs, results):
        extra = {k: m.get(k) for k in ("block0_share", "entropy_ratio")}
        rows.append({"variant": v, "seed": s, **{k: m[k] for k in (*KEYS, "train_seconds")}, **extra})
        if "gumbel" in m:
            rows.append({"variant": f"{v}, scored eval_routing=gumbel", "seed": s, **m["gumbel"],
                         "train_seconds": m["train_seconds"], **extra})
    pd.DataFrame(rows).to_csv(Path(args.out) / "ranking.csv", index=False)
    print(f"ground truth: {truth.attrs.get('version')} ({len(truth)} archs)")
    print(table(rows, truth.attrs["noise_ceiling"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
