"""Ranking quality of vanilla vs CLOSE supernets on a shipped mini ground truth, any space (CLOSE §5.1).

Runs every (variant, seed) through ``closekit.run`` with the mini configs (params/nb201/mini-*.yaml, only the seed
and the variant's keys changed), scoring and ranking the ground truth's architectures, and prints Kendall tau,
P@top5% and BR@5% (best true rank among the predicted top 5%, as a fraction of all; mean ± std over seeds) next to
the ground truth's noise ceiling and the ranking by parameter count alone. Every CLOSE run of the main group whose
routing is sampled (a GATE; not NDS's table) is also scored with the reference's Gumbel-sampled routing
(eval_routing=gumbel, same weights), and the table gives, for argmax scoring, the share of (architecture, slot)
pairs routed to the most used block and, for a GATE, its mean routing entropy over its maximum log L and how much
the routing depends on the architecture (routing.arch_dependence). Each run lives in --out under
``<variant>-seed<s>-<config hash>-<code version>``: a killed bench resumes where it stopped, a rerun on the same
code only compares and prints (a row is reused only against the same ground truth rows: a grown build re-scores),
and a run of other code or another config is never reused.

    python bench/ranking.py                       # MAIN variants x seeds 0 1 2; ablations seed 0
    python bench/ranking.py --seeds 0 --ablation-seeds --set epochs=2 train_limit=1000 --out /tmp/rk   # 1 min
    python bench/ranking.py --space nb301         # NB301: vanilla vs CLOSE (params/nb301/mini-*.yaml) on mini-nb301
    python bench/ranking.py --groups gate --gate-seeds 0 1 2        # CLOSE with each GATE variant (issue 14), then
    python bench/gate_signal.py --runs runs/bench-ranking/close_gate-*  # their routing columns
    python bench/ranking.py --stretch 3           # the same runs at 3x the epochs (schedule, SRT, patience x3)
    python bench/ranking.py --variants vanilla "one block" close few-shot --seeds 0 1 2 [--stretch 3]  # sharing 4-way

``--stretch K`` multiplies the epochs and stretches the curriculum: epoch e of cl_schedule and srt_epochs becomes
1 + (e - 1) K, the plateau patience becomes K times as long; the run directories differ (another config hash).
Runs probed along training (``--set eval_every=6``, x3: 18: at every level end; probes are training-neutral) also
leave probes[-xK].csv and probes.png (probe Kendall tau per variant, mean ± sd over seeds, one panel per budget).
"""
import argparse
import json
import math
import multiprocessing as mp
import sys
from pathlib import Path

import pandas as pd

from gate_signal import VARIANTS as GATE_VARIANTS, mean_std

ROOT = Path(__file__).resolve().parents[1]
# the most sharing, on any space: one block for every edge / position throughout (no curriculum, no SRT)
ONE_BLOCK = {"router": "oneblock", "num_blocks": 1, "cl_schedule": [1], "srt_epochs": []}
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
    # the same control through the one-block router (no GATE built) and few-shot NAS (its split at epoch 16)
    "one block": ("params/nb201/mini-close.yaml", ONE_BLOCK),
    "few-shot": ("params/nb201/mini-fewshot.yaml", {}),
}
MAIN = ("vanilla", "close", "vanilla + SRT at 13", "close gate_lr_scale=10 gate_weight_decay=0", "close num_blocks=1",
        "one block", "few-shot")
# beyond the paper (issue 14): CLOSE with each GATE variant of bench/gate_signal.py
VARIANTS.update({f"close gate={name}": ("params/nb201/mini-close.yaml", over) for name, over in GATE_VARIANTS.items()
                 if over})
GATE = tuple(v for v in VARIANTS if v.startswith("close gate="))
ABLATIONS = ("close gate_forward=selected", "close aw_nas_compat=true", "vanilla keep_zero_grads=true",
             "close keep_zero_grads=true")
# NB301 (issue 11): vanilla vs CLOSE at equal epochs on the shipped mini NB301 ground truth
# and (issue 29) one block and few-shot NAS (its split at epoch 16 on the normal cell's first connection)
NB301_VARIANTS = {"vanilla": ("params/nb301/mini-vanilla.yaml", {}), "close": ("params/nb301/mini-close.yaml", {}),
                  "one block": ("params/nb301/mini-close.yaml", ONE_BLOCK),
                  "few-shot": ("params/nb301/mini-fewshot.yaml", {})}


def nds_variants(s):
    """NDS (issue 12): vanilla vs CLOSE at equal epochs, one block (issue 29), the two split-table switches, and both
    with the pooled features centred before the FC (head_norm=mean, not in the reference; run with --variants)."""
    vanilla, close = f"params/nds/{s}-mini-vanilla.yaml", f"params/nds/{s}-mini-close.yaml"
    return {"vanilla": (vanilla, {}), "close": (close, {}),
            "one block": (close, ONE_BLOCK),
            "close cl_criteria=max": (close, {"cl_criteria": "max"}),
            "close wit_buffers=false": (close, {"wit_buffers": False}),
            "vanilla head_norm=mean": (vanilla, {"head_norm": "mean"}),
            "close head_norm=mean": (close, {"head_norm": "mean"})}


BY_SPACE = {"nb201": (VARIANTS, MAIN, ABLATIONS, GATE, "mini-nb201"),   # variants, main, ablations, gate, truth
            "nb301": (NB301_VARIANTS, ("vanilla", "one block", "close", "few-shot"), (), (), "mini-nb301"),
            **{f"nds-{s}": (nds_variants(s), ("vanilla", "one block", "close"),
                            ("close cl_criteria=max", "close wit_buffers=false"), (), f"mini-nds-{s}")
               for s in ("resnet", "resnexta")}}
KEYS = ("kendall", "p@top5%", "br@5%_rel")
ROUTING = ("top_block_share", "entropy_ratio", "arch_dependence")


def stretched(cfg, k):
    """``cfg`` at k times the epochs: curriculum and SRT epochs e -> 1 + (e - 1) k, plateau patience x k."""
    at = lambda es: tuple(1 + (e - 1) * k for e in es)  # noqa: E731
    return cfg if k == 1 else cfg.replace(epochs=cfg.epochs * k, cl_schedule=at(cfg.cl_schedule),
                                          srt_epochs=at(cfg.srt_epochs), plateau_patience=cfg.plateau_patience * k)


def job_dir(out, variant, seed, extra, space="nb201", stretch=1):
    """The run directory of one (variant, seed): keyed by the resolved config and the code version."""
    from closekit.config import RunConfig
    from closekit.run import code_version, config_hash
    params, over = BY_SPACE[space][0][variant]
    cfg = stretched(RunConfig.from_yaml(ROOT / params, seed=seed, **{**over, **extra}), stretch)
    slug = f"{variant.replace(' ', '_').replace('=', '-')}-seed{seed}"
    return cfg, Path(out) / f"{slug}-{config_hash(cfg)[:8]}-{code_version(cfg.space)[:8]}"


def truth_key(truth):
    """What a cached bench row was ranked against: the ground truth's version and a hash of its (arch, acc) rows."""
    import hashlib
    rows = truth[["arch", "acc"]].sort_values("arch").to_csv(index=False)
    return f"{truth.attrs.get('version')}-{len(truth)}-{hashlib.sha1(rows.encode()).hexdigest()[:8]}"


def run_one(job):
    """Train (or resume) one (variant, seed), score and rank it; returns bench.json's dict (cached)."""
    import torch
    from closekit import run
    from closekit.evaluate import evaluate
    from closekit.metrics import compare
    from closekit.routing import arch_dependence, entropy, route_cfg
    from closekit.run import provenance
    variant, seed, out, extra, space, stretch, truth_key, gumbel = job
    cfg, d = job_dir(out, variant, seed, extra, space, stretch)
    if (d / "bench.json").is_file():
        cached = json.loads((d / "bench.json").read_text())
        if cached.get("truth_key") == truth_key:
            return cached                    # else the ground truth changed (e.g. a build grew): resume and re-score
    torch.set_num_threads(1)
    res = run(cfg, d, log=lambda *a, **k: None, keep_snapshots=False, usage_every_level=False)
    pick = lambda m: {k: m[k] for k in (*KEYS, "n")}  # noqa: E731
    row = {"variant": variant, "seed": seed, "dir": d.name, "truth_key": truth_key, **provenance(cfg),
           **pick(res.metrics),
           "train_seconds": float(res.history["seconds"].sum())}
    sampled = False
    if cfg.supernet == "close":
        r = route_cfg(res.net, res.space, list(res.scores["arch"]), cfg)
        counts = r.chosen.flatten().bincount(minlength=r.level)
        row["top_block_share"] = float(counts.max()) / float(counts.sum())
        sampled = bool(((r.probs > 0) & (r.probs < 1)).any())    # a GATE's routing; not NDS's fixed split table
        if sampled:
            row.update(arch_dependence=arch_dependence(r),
                       entropy_ratio=float(entropy(r.probs).mean()) / math.log(r.level) if r.level > 1 else None)
    if sampled and gumbel:
        scores = evaluate(res.net, res.space, list(res.scores["arch"]), res.data, cfg, eval_routing="gumbel",
                          progress=False)
        scores.to_csv(d / "scores_gumbel.csv", index=False)
        row["gumbel"] = pick(compare(scores, res.truth))
    (d / "bench.json").write_text(json.dumps(row, indent=1))
    return row


def size_row(truth, space):
    """The baseline a supernet must beat: the ground truth ranked by its stand-alone nets' parameter count alone."""
    from closekit.metrics import size_baseline
    if "params" not in truth and not hasattr(space, "complexity"):
        return None
    m = size_baseline(truth, space)
    return {"variant": "parameter count alone (no supernet)", **{k: m[k] for k in KEYS}}


def table(rows, ceiling, size=None):
    """Markdown table: mean ± std over seeds per variant; the size baseline and the noise ceilings below."""
    df = pd.DataFrame(rows)
    cols = (*KEYS, *ROUTING)

    def cell(g, k):
        """mean ± std over the seeds where the metric is defined; a seed whose scores are all equal (Kendall
        undefined) is counted, not dropped silently."""
        if k not in g:
            return ""
        bad = int(g[k].isna().sum()) if k in KEYS else 0
        return mean_std(g[k]) + (f" ({bad} of {len(g)} seeds undefined: constant scores)" if bad else "")

    lines = ["| variant | seeds | " + " | ".join(cols) + " | train acc % (last epoch) | train s/run |",
             "|---" * (len(cols) + 4) + "|"]
    for variant, g in df.groupby("variant", sort=False):
        acc = mean_std(g["train_acc"] * 100, ".1f") if "train_acc" in g else ""
        lines.append(f"| {variant} | {len(g)} | " + " | ".join(cell(g, k) for k in cols) +
                     f" | {acc} | {g['train_seconds'].mean():.0f} |")
    pad = " |" * (len(cols) + 1)
    if size:
        values = " | ".join(f"{size[k]:.3f}" for k in KEYS)
        lines.append(f"| {size['variant']} | | {values} |" + " |" * (len(ROUTING) + 2))
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


def gaps(rows):
    """Markdown: each pair of trained variants, the difference of their means with its standard error
    sqrt(sd_a^2/n_a + sd_b^2/n_b) (seeds are independent runs; Welch's unpaired error), per ranking metric."""
    df = pd.DataFrame([r for r in rows if ", scored" not in r["variant"]])
    groups = [(v, g) for v, g in df.groupby("variant", sort=False) if len(g) > 1]
    lines = ["| a − b | " + " | ".join(f"Δ {k} (± s.e.)" for k in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for i, (a, ga) in enumerate(groups):
        for b, gb in groups[i + 1:]:
            cells = []
            for k in KEYS:
                x, y = ga[k].dropna().astype(float), gb[k].dropna().astype(float)
                se = (x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y)) ** 0.5
                cells.append(f"{round(x.mean() - y.mean(), 3) + 0.0:+.3f} ± {se:.3f}")    # + 0.0: no "-0.000"
            lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nb201", choices=tuple(BY_SPACE), help="search space (default nb201)")
    p.add_argument("--truth", help="a minibench ground truth: shipped name or directory (default: the space's "
                                   "shipped mini-<space>)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds of vanilla and CLOSE")
    p.add_argument("--ablation-seeds", nargs="*", type=int, default=[0], help="seeds of the ablation variants")
    p.add_argument("--gate-seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds of the GATE variants")
    p.add_argument("--groups", nargs="+", default=["main", "ablations"], choices=("main", "ablations", "gate"),
                   help="variant groups to run (default main ablations)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="run only these variants (with --seeds)")
    p.add_argument("--stretch", type=int, default=1, help="k times the epochs, curriculum stretched (default 1)")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    p.add_argument("--out", default="runs/bench-ranking", help="run directories (rerun to resume)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override every config (a quick check)")
    args = p.parse_args(argv)
    from closekit import groundtruth
    from closekit.config import parse_overrides as _overrides
    from closekit.spaces import get
    variants, main_variants, ablations, gate, default_truth = BY_SPACE[args.space]
    args.truth = args.truth or default_truth
    if args.variants:
        unknown = set(args.variants) - set(variants)
        if unknown:
            p.error(f"unknown variant(s) {', '.join(sorted(unknown))}; {args.space} has: {', '.join(variants)}")
        jobs = [(v, s) for v in args.variants for s in args.seeds]
    else:
        groups = {"main": (main_variants, args.seeds), "ablations": (ablations, args.ablation_seeds),
                  "gate": (gate, args.gate_seeds)}
        jobs = [(v, s) for g in args.groups for v in groups[g][0] for s in groups[g][1]]
    if not jobs:
        p.error(f"no runs: the groups {' '.join(args.groups)} hold no {args.space} variant with those seeds")
    extra = {"truth": args.truth, "archs": "truth", **_overrides(args.set)}
    truth = groundtruth.load(args.truth, get(args.space))
    key = truth_key(truth)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        done = pool.map(run_one, [(v, s, args.out, extra, args.space, args.stretch, key, v in main_variants)
                                  for v, s in jobs], chunksize=1)
    rows = []
    for b in done:
        acc = float(pd.read_csv(Path(args.out) / b["dir"] / "history.csv")["train_acc"].iloc[-1])
        rows.append({**{k: v for k, v in b.items() if k != "gumbel"}, "train_acc": acc})
        if "gumbel" in b:
            rows.append({"variant": f"{b['variant']}, scored eval_routing=gumbel", "seed": b["seed"], **b["gumbel"],
                         "train_acc": acc, "train_seconds": b["train_seconds"]})
    tag = f"-x{args.stretch}" if args.stretch > 1 else ""
    pd.DataFrame(rows).to_csv(Path(args.out) / f"ranking{tag}.csv", index=False)
    print(f"ground truth: {truth.attrs.get('version')} ({len(truth)} archs; ranked on n = {rows[0]['n']}); "
          f"code {done[0]['code_version']}" + (f"; stretched x{args.stretch}" if args.stretch > 1 else ""))
    text = table(rows, truth.attrs["noise_ceiling"], size_row(truth, get(args.space)))
    if gaps(rows):
        text += "\n\nGaps between variants (mean difference ± its standard error over seeds):\n\n" + gaps(rows)
    (Path(args.out) / f"ranking{tag}.md").write_text(text + "\n")
    print(text)
    probes = probe_history(done, args.out, args.stretch)
    if not probes.empty:
        probes.to_csv(Path(args.out) / f"probes{tag}.csv", index=False)
        figure(args.out)
    return 0


def probe_history(done, out, stretch):
    """The probe Kendall tau of every run of this bench along training (history.csv rows that have one)."""
    frames = []
    for b in done:
        h = pd.read_csv(Path(out) / b["dir"] / "history.csv")
        if "probe_kendall" in h:
            budget = f"x{stretch}: {h['epoch'].max()} epochs"
            h = h.dropna(subset=["probe_kendall"])[["epoch", "level", "probe_kendall"]]
            frames.append(h.assign(variant=b["variant"], seed=b["seed"], budget=budget))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure(out):
    """probes.png: every probes*.csv in ``out`` (each run once), one panel per budget."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from closekit.plots import probe_curves
    probes = pd.concat([pd.read_csv(p) for p in sorted(Path(out).glob("probes*.csv"))], ignore_index=True)
    probes = probes.drop_duplicates(["variant", "seed", "budget", "epoch"])     # a run saved under two names: once
    fig = probe_curves(probes)
    fig.savefig(Path(out) / "probes.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
