"""Does the GATE route by architecture? One table per GATE variant (CLOSE §3.3; issue 14 items 1-2).

For a CLOSE params file of any GATE space (NB201, NB301: through the supernet protocol's ``gate_logits``, i.e. the
space's own arch -> GATE input), per GATE variant (VARIANTS: config overrides) at initialisation over several seeds,
and for trained runs (run directories or checkpoint files), over a fixed sample of architectures:

  arch sd / block sd / ratio   logit std across architectures (mean over slots and blocks) / across blocks (mean
                               over archs and slots) and their ratio: far below 1, the GATE routes every arch alike
  off-modal                    share of (arch, slot) pairs whose argmax block is not the modal block of their slot
                               (scoring's argmax routing); "routes by architecture" when >= 10%
  entropy                      mean routing entropy (softmax of the logits, training's Gumbel sample) / log L
  kendall, p@top5%, br@5%      trained runs with a scores.csv and a ground truth: closekit.metrics.compare
L: the net's level; at levels 0 and 1 (before training, first level) all K blocks, the blocks the GATE would route
among once they are active.
Rows are mean ± std over seeds (init) or over runs of the same variant and epoch; "routes by arch" counts them.

    python bench/gate_signal.py                                    # NB201 mini CLOSE at init: 6 variants x 3 seeds
    python bench/gate_signal.py --space nb301 --archs 100          # NB301 mini CLOSE at init
    python bench/ranking.py --groups main gate    # mini runs: vanilla, CLOSE, ... and CLOSE with each GATE variant
    python bench/gate_signal.py --runs runs/bench-ranking/close-seed* runs/bench-ranking/close_gate-*
                                                                   # init rows + those trained runs, one table
"""
import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# variant name -> GATE config overrides; a, b, c: issue 14's switches (names are file-name safe: run dir slugs)
VARIANTS = {
    "reference": {},
    "a-layernorm": {"gate_embed_norm": "layernorm"},
    "a-l2": {"gate_embed_norm": "l2"},
    "b-norm_preserving": {"gate_gcn_init": "norm_preserving"},
    "c-edge_op": {"gate_edge_op": True},
    "ab-layernorm-norm_preserving": {"gate_embed_norm": "layernorm", "gate_gcn_init": "norm_preserving"},
}
COLS = ("arch_sd", "block_sd", "ratio", "off_modal", "entropy", "kendall", "p@top5%", "br@5%_rel")


def variant_name(cfg):
    """The VARIANTS name of a config's GATE keys (or the keys themselves)."""
    keys = cfg.gate_variant()
    return next((n for n, o in VARIANTS.items() if o == keys), " ".join(f"{k}={v}" for k, v in keys.items()))


@torch.no_grad()
def signal(net, archs):
    """The GATE columns for ``archs`` (coerced) at the net's level (all K blocks below level 2)."""
    was = net.training
    net.eval()
    try:
        logits = torch.stack([torch.cat([v.float().cpu() for v in net.gate_logits(a).values()]) for a in archs])
    finally:
        net.train(was)
    level = int(net.level) if int(net.level) >= 2 else logits.shape[-1]
    logits = logits[..., :level]                                           # [A, S, L]
    chosen = logits.argmax(-1)                                             # [A, S]
    modal = chosen.mode(0).values                                          # [S]
    from closekit.routing import entropy
    arch_sd, block_sd = float(logits.std(0).mean()), float(logits.std(-1).mean())
    return {"level": level, "arch_sd": arch_sd, "block_sd": block_sd, "ratio": arch_sd / block_sd,
            "off_modal": float((chosen != modal).float().mean()),
            "entropy": float(entropy(F.softmax(logits, -1)).mean()) / math.log(level)}


def config(params, variant, seed, extra=()):
    """The RunConfig of one (variant, seed) from a params file."""
    from closekit import RunConfig
    return RunConfig.from_yaml(params, seed=seed, **VARIANTS[variant], **dict(extra))


def init_rows(params, variants, seeds, n_archs, arch_seed, extra):
    """One row per (variant, seed): a fresh supernet of the config (closekit.build: seeded as training starts)."""
    from closekit import build
    rows = []
    for v in variants:
        for s in seeds:
            try:
                cfg = config(params, v, s, {**extra, "truth": None, "archs": "sample:1"})
            except ValueError as e:
                print(f"{v}: skipped ({e})", file=sys.stderr)
                break
            space, _, net = build(cfg.replace(device="cpu"))
            archs = [space.coerce(a) for a in space.sample_list(n_archs, arch_seed)]
            rows.append({"variant": v, "when": "init", "seed": s, **signal(net, archs)})
    return rows


def run_rows(paths, n_archs, arch_seed):
    """One row per trained run (a run directory with checkpoint.pt, or a checkpoint / snapshot file)."""
    from closekit import groundtruth, spaces
    from closekit.checkpoint import CKPT, load_net
    from closekit.metrics import compare
    rows = []
    for p in map(Path, paths):
        ckpt, run_dir = (p / CKPT, p) if p.is_dir() else (p, p.parent)
        net, cfg, epoch = load_net(ckpt)
        space = spaces.get(cfg.space)
        archs = [space.coerce(a) for a in space.sample_list(n_archs, arch_seed)]
        row = {"variant": variant_name(cfg), "when": f"epoch {epoch}", "seed": cfg.seed, "run": str(run_dir),
               **signal(net, archs)}
        if (run_dir / "scores.csv").is_file() and cfg.truth:
            truth = groundtruth.load(cfg.truth, space, for_dataset=cfg.dataset)
            row.update({k: v for k, v in compare(pd.read_csv(run_dir / "scores.csv"), truth).items() if k in COLS})
        rows.append(row)
    return rows


def mean_std(v, f=".3f"):
    """'mean ± std' of a Series over seeds (the value alone for one, '' for none); |mean| < 1e-2 in e-notation."""
    v = v.dropna()
    f = ".2e" if f == ".3f" and len(v) and 0 < abs(v.mean()) < 1e-2 else f
    return "" if v.empty else f"{v.mean():{f}} ± {v.std(ddof=1):{f}}" if len(v) > 1 else f"{v.iloc[0]:{f}}"


def table(rows):
    """Markdown: one line per (variant, when), mean ± std over its seeds / runs."""
    df = pd.DataFrame(rows)

    def cell(g, k, pct=False):
        return mean_std(g[k] * (100 if pct else 1), ".2f" if pct else ".3f") if k in g else ""

    head = ["variant", "when", "L", "seeds", "logit sd over archs", "over blocks", "ratio", "off-modal %",
            "entropy % of max", "routes by arch (off-modal >= 10%)", "kendall", "P@top5%", "BR@5%"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for (v, when), g in df.groupby(["variant", "when"], sort=False):
        routes = f"{int((g['off_modal'] >= 0.10).sum())}/{len(g)}"
        lines.append(f"| {v} | {when} | {int(g['level'].iloc[0])} | {len(g)} | {cell(g, 'arch_sd')} | "
                     f"{cell(g, 'block_sd')} | {cell(g, 'ratio')} | {cell(g, 'off_modal', True)} | "
                     f"{cell(g, 'entropy', True)} | {routes} | {cell(g, 'kendall')} | {cell(g, 'p@top5%')} | "
                     f"{cell(g, 'br@5%_rel')} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nb201", help="GATE space whose params/<space>/mini-close.yaml is the base")
    p.add_argument("--params", help="a CLOSE params file (default: the space's mini-close)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                   help=f"GATE variants (default all: {', '.join(VARIANTS)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="init / mini-run seeds")
    p.add_argument("--archs", type=int, default=200, help="sampled canonical architectures (space.sample_list)")
    p.add_argument("--arch-seed", type=int, default=0)
    p.add_argument("--runs", nargs="*", default=[], help="trained run directories or checkpoint files")
    p.add_argument("--no-init", action="store_true", help="only the trained runs")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override every config")
    p.add_argument("--out", help="also write the table (markdown) here")
    args = p.parse_args(argv)
    from closekit.config import parse_overrides as _overrides
    from closekit.spaces import get
    torch.set_num_threads(1)
    params = Path(args.params) if args.params else ROOT / "params" / get(args.space).params_file("mini-close")
    extra = _overrides(args.set)
    rows = [] if args.no_init else init_rows(params, args.variants, args.seeds, args.archs, args.arch_seed, extra)
    rows += run_rows(args.runs, args.archs, args.arch_seed)
    if not rows:
        p.error("nothing to measure: drop --no-init or give --runs")
    shown = params.resolve().relative_to(ROOT) if params.resolve().is_relative_to(ROOT) else params
    base = "" if args.no_init else f"init: {shown}; "
    text = f"{base}{args.archs} archs (sample_list seed {args.arch_seed})\n\n" + table(rows)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
