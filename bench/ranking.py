"""Ranking quality of vanilla vs CLOSE supernets on the shipped mini NB201 ground truth (issue 3, CLOSE §5.1).

Trains every (variant, seed) with the mini configs (params/nb201/mini-*.yaml, only the seed and the variant's
keys changed), scores the ground truth's architectures and prints Kendall tau, P@top5% and BR@5% (best true
rank among the predicted top 5%, as a fraction of all; mean ± std over seeds) next to the ground truth's noise
ceiling. Every CLOSE run is also scored with the reference's Gumbel-sampled routing (eval_routing=gumbel, same
weights), and the table gives, for argmax scoring, the share of (architecture, edge) pairs routed to the most
used block and the mean GATE entropy over its maximum, log L. Runs keep their directories under --out
(checkpoints, scores*.csv, bench.json), so a killed bench resumes where it stopped and a rerun only compares
and prints. Scores do not depend on the ground truth's values: the scored architectures are the ones its
meta.yaml declares, so the bench can train while the ground truth is still being built, and the table uses the
rows finished so far.

    python bench/ranking.py                       # MAIN variants x seeds 0 1 2; ablations seed 0
    python bench/ranking.py --seeds 0 --ablation-seeds --set epochs=2 train_limit=1000 --out /tmp/rk   # 1 min
"""
import argparse
import json
import math
import multiprocessing as mp
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
# variant name -> (params file, overrides)
VARIANTS = {
    "vanilla": ("params/nb201/mini-vanilla.yaml", {}),
    "close": ("params/nb201/mini-close.yaml", {}),
    "close gate_forward=selected": ("params/nb201/mini-close.yaml", {"gate_forward": "selected"}),
    "close aw_nas_compat=true": ("params/nb201/mini-close.yaml", {"aw_nas_compat": True}),
    "vanilla + SRT at 13": ("params/nb201/mini-vanilla.yaml", {"srt_epochs": [13]}),    # control: CLOSE's LR restart
    # torch-1.x zero_grad, as the reference ran: unsampled params still get weight decay and momentum
    "vanilla keep_zero_grads=true": ("params/nb201/mini-vanilla.yaml", {"keep_zero_grads": True}),
    "close keep_zero_grads=true": ("params/nb201/mini-close.yaml", {"keep_zero_grads": True}),
    # beyond the reference: a GATE that learns faster and is not decayed
    "close gate_lr_scale=10 gate_weight_decay=0": ("params/nb201/mini-close.yaml",
                                                    {"gate_lr_scale": 10.0, "gate_weight_decay": 0.0}),
    # control: the most sharing, one op set for all six edges of a cell throughout (CLOSE's level 1, kept)
    "close num_blocks=1": ("params/nb201/mini-close.yaml", {"num_blocks": 1, "cl_schedule": [1], "srt_epochs": []}),
}
MAIN = ("vanilla", "close", "vanilla + SRT at 13", "vanilla keep_zero_grads=true", "close keep_zero_grads=true",
        "close gate_lr_scale=10 gate_weight_decay=0", "close num_blocks=1")
ABLATIONS = ("close gate_forward=selected", "close aw_nas_compat=true")
KEYS = ("kendall", "p@top5%", "br@5%_rel")
ROUTING = ("top_block_share", "entropy_ratio")


def truth_archs(spec, space):
    """The architectures a minibench ground truth declares (meta.yaml archs + sample_seed), finished or not."""
    from closekit import groundtruth
    from closekit.evaluate import arch_list
    meta = yaml.safe_load((Path(groundtruth.SHIPPED.get(spec, spec)) / "meta.yaml").read_text())
    return arch_list(space, meta["archs"], meta["sample_seed"])


def run_one(job):
    """Train (or resume) one (variant, seed) and score the ground truth's archs; returns bench.json's dict."""
    import torch
    from closekit.config import RunConfig
    from closekit.evaluate import evaluate_cfg
    from closekit.train import build, train
    variant, seed, truth, out, extra = job
    out = Path(out)
    if (out / "bench.json").is_file():
        return json.loads((out / "bench.json").read_text())
    torch.set_num_threads(1)
    params, over = VARIANTS[variant]
    cfg = RunConfig.from_yaml(ROOT / params, seed=seed, **{**over, **extra})
    space, data, net = build(cfg)
    _, history = train(net, data, cfg, out_dir=out, log=lambda *a, **k: None)
    archs = truth_archs(truth, space)
    out_json = {"train_seconds": float(history["seconds"].sum()) if "seconds" in history else None}
    evaluate_cfg(net, space, archs, data, cfg, progress=False).to_csv(out / "scores.csv", index=False)
    if cfg.supernet == "close":
        evaluate_cfg(net, space, archs, data, cfg, routing="gumbel", progress=False).to_csv(
            out / "scores_gumbel.csv", index=False)
    (out / "bench.json").write_text(json.dumps(out_json, indent=1))
    return out_json


def routing_stats(run_dir, space, archs):
    """Argmax scoring's routing of a CLOSE run: share of (arch, edge) pairs on the most used block, and the mean
    GATE entropy over its maximum log L; {} for vanilla."""
    from closekit.routing import entropy, load_net, route
    net, cfg, _ = load_net(Path(run_dir) / "checkpoint.pt")
    if cfg.supernet != "close":
        return {}
    r = route(net, space, archs, routing=cfg.eval_routing, seed=cfg.eval_seed)
    counts = r.chosen.flatten().bincount(minlength=r.level)
    return {"top_block_share": float(counts.max()) / float(counts.sum()),
            "entropy_ratio": float(entropy(r.probs).mean()) / math.log(r.level) if r.level > 1 else None}


def metrics(scores_csv, truth):
    """Ranking metrics of one scores file against the ground truth's finished architectures."""
    from closekit.metrics import compare
    scores = pd.read_csv(scores_csv)
    scores = scores[scores["arch"].isin(truth["arch"])]
    return {k: v for k, v in compare(scores, truth).items() if k in (*KEYS, "n")}


def table(rows, ceiling):
    """Markdown table: mean ± std over seeds per variant, the ground truth's noise ceilings below."""
    df = pd.DataFrame(rows)
    cols = (*KEYS, *ROUTING)

    def cell(g, k):
        v = g[k].dropna()
        return "" if v.empty else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.iloc[0]:.3f}"

    lines = ["| variant | seeds | " + " | ".join(cols) + " | train s/run |", "|---" * (len(cols) + 3) + "|"]
    for variant, g in df.groupby("variant", sort=False):
        lines.append(f"| {variant} | {len(g)} | " + " | ".join(cell(g, k) for k in cols) +
                     f" | {g['train_seconds'].mean():.0f} |")
    pad = " |" * len(cols)
    lines.append(f"| ground truth: seed 0 vs seed 1 (noise ceiling) | | {ceiling['kendall']:.3f} ± "
                 f"{ceiling['bootstrap_std']:.3f} |" + pad)
    if "pairs" in ceiling:
        pairs = pd.Series(ceiling["pairs"])
        lines.append(f"| ground truth: every seed pair | {len(pairs)} pairs | {pairs.mean():.3f} ± "
                     f"{pairs.std(ddof=1):.3f} |" + pad)
    if "seed_mean" in ceiling:
        m = ceiling["seed_mean"]
        lines.append(f"| ground truth: its {m['n_seeds']}-seed mean vs the noise-free ranking (predicted: the best "
                     f"a supernet can score) | | {m['tau_vs_noise_free']:.3f} |" + pad)
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--truth", default="mini-nb201", help="a minibench ground truth: shipped name or directory")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of vanilla and CLOSE")
    p.add_argument("--ablation-seeds", nargs="*", type=int, default=[0], help="seeds of the ablation variants")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    p.add_argument("--out", default="runs/bench-ranking", help="run directories (rerun to resume)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override every config (a quick check)")
    args = p.parse_args(argv)
    from closekit import groundtruth
    from closekit.cli import _overrides
    from closekit.spaces import get
    jobs = [(v, s) for v in MAIN for s in args.seeds] + [(v, s) for v in ABLATIONS for s in args.ablation_seeds]
    extra = _overrides(args.set)
    dirs = [Path(args.out) / f"{v.replace(' ', '_').replace('=', '-')}-seed{s}" for v, s in jobs]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        done = pool.map(run_one, [(v, s, args.truth, str(d), extra) for (v, s), d in zip(jobs, dirs)], chunksize=1)
    space = get("nb201")
    truth, archs = groundtruth.load(args.truth, space), truth_archs(args.truth, space)
    rows = []
    for (v, s), d, b in zip(jobs, dirs, done):
        rows.append({"variant": v, "seed": s, **metrics(d / "scores.csv", truth), "train_seconds": b["train_seconds"],
                     **routing_stats(d, space, archs)})
        if (d / "scores_gumbel.csv").is_file():
            rows.append({"variant": f"{v}, scored eval_routing=gumbel", "seed": s,
                         **metrics(d / "scores_gumbel.csv", truth), "train_seconds": b["train_seconds"]})
    pd.DataFrame(rows).to_csv(Path(args.out) / "ranking.csv", index=False)
    print(f"ground truth: {truth.attrs.get('version')} ({len(truth)} archs finished; ranked on n = "
          f"{rows[0]['n']})")
    text = table(rows, truth.attrs["noise_ceiling"])
    (Path(args.out) / "ranking.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
