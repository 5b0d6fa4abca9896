"""How a trained CLOSENet shares its weights (CLOSE §3.3, the GATE; §3.4 and Fig. 4, the sharing-extent curriculum).

For an architecture, the GATE gives each edge a distribution over the active GLOW blocks: ``softmax(logits)`` is
the probability that training's Gumbel-max sample routes the edge to block k (the temperature only shapes the
straight-through gradient). Over a set of architectures: block-usage counts per edge position, routing entropy,
the sharing extent of each block, and how routing changes between checkpoints or curriculum levels. Pure
functions on a live supernet, tensors and DataFrames; ``load_net`` rebuilds a supernet from any checkpoint that
``train.Trainer`` or ``train.snapshots`` wrote.

Vanilla supernets route edge i to block i (entropy 0); the ``random`` router has uniform probabilities and its
chosen block is a seeded draw; at level 1 every edge uses block 0.
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from . import spaces
from .config import RunConfig
from .gates import Gate, gumbel_straight_through
from .sharing import RandomRouter
from .spaces.nb201_arch import CONVS, EDGES, OPS, coerce, live_edges, to_matrix, to_str
from .train import CKPT, SNAPSHOTS

SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3",
         "avg_pool_3x3": "pool3x3"}


class Routing(NamedTuple):
    """Routing of archs (canonical strings): probs [A, E, L] over the active blocks, chosen block [A, E]."""
    archs: list
    probs: torch.Tensor
    chosen: torch.Tensor

    @property
    def level(self):
        return self.probs.shape[-1]


# ---- checkpoints ----
def read_checkpoint(path):
    """The dict saved by Trainer.save or a snapshot (tensors on the CPU, memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location="cpu", mmap=True, weights_only=False)


def load_net(path, device="cpu"):
    """(supernet in eval mode, RunConfig, epoch) rebuilt from a checkpoint file."""
    state = read_checkpoint(path)
    cfg, model = RunConfig.from_dict(state["config"]), state["model"]
    net = spaces.get(cfg.space).supernet(cfg, model["stem.0.weight"].shape[1], model["classifier.1.weight"].shape[0])
    net.load_state_dict(model)
    return net.to(device).eval(), cfg, int(state["epoch"])


def _recorded_out_dir(job_dir):
    """The out_dir a notebook job recorded (results.json config, else params.yaml), relative to the job dir."""
    out = None
    if (job_dir / "results.json").is_file():
        out = (json.loads((job_dir / "results.json").read_text()).get("config") or {}).get("out_dir")
    if out is None and (job_dir / "params.yaml").is_file():
        out = (yaml.safe_load((job_dir / "params.yaml").read_text()) or {}).get("out_dir")
    return job_dir / out if out else None


def checkpoints(run_dir):
    """Checkpoints of one run under ``run_dir`` (a run's out_dir or a batch job dir): path, epoch, level, kind.

    Snapshots (``snapshots/epoch-NNNN.pt``) and ``checkpoint.pt``, one row per epoch, sorted by epoch. A job dir
    without checkpoints is followed to the out_dir its results.json / params.yaml recorded.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found")
    found = [(p.parent, p, "checkpoint") for p in run_dir.rglob(CKPT)] + \
            [(p.parent.parent, p, "snapshot") for p in run_dir.rglob(f"{SNAPSHOTS}/epoch-*.pt")]
    roots = sorted({str(r) for r, _, _ in found})
    recorded = _recorded_out_dir(run_dir)
    if not roots and recorded is not None and recorded.resolve() != run_dir.resolve():
        return checkpoints(recorded)                 # a batch job dir whose run went to an out_dir elsewhere
    if not roots:
        raise FileNotFoundError(f"no {CKPT} or {SNAPSHOTS}/epoch-*.pt under {run_dir}: "
                                "train there first (notebooks/nb201.ipynb, closekit train or closekit batch)")
    if len(roots) > 1:
        raise ValueError(f"{run_dir} holds {len(roots)} runs ({', '.join(roots)}); pass one of them")
    rows = []
    for _, p, kind in found:
        state = read_checkpoint(p)
        rows.append({"path": str(p), "epoch": int(state["epoch"]), "level": int(state["model"]["level"]),
                     "kind": kind})
    df = pd.DataFrame(rows).sort_values(["epoch", "kind"], ascending=[True, False])   # snapshot before checkpoint
    return df.drop_duplicates("epoch").reset_index(drop=True)


# ---- routing of architectures ----
def _level(net):
    level = int(net.level)
    if level < 1:
        raise RuntimeError("the supernet has no active GLOW block yet (level 0): load a trained checkpoint or grow(1)")
    return level


def _cat(parts, empty):
    return torch.cat(parts) if parts else empty


def gate_logits(gate, adj):
    """Gate.logits for a batch: adj [B, V, V] long -> logits [B, E, K] over all K blocks."""
    z = gate.encoder(adj)                                                 # [B, V, D]
    if gate.level_kind == "node":
        return gate.mlp(torch.cat([z[:, gate.from_idx], z[:, gate.to_idx]], -1))
    return gate.mlp(z[:, -1]).view(len(adj), len(gate.edges), gate.num_blocks)


@torch.no_grad()
def route(net, space, archs, *, routing="argmax", seed=123, chunk=256):
    """Routing of ``archs`` (canonicalised) at the net's level; ``routing`` argmax or gumbel (seeded) picks the block.

    The same choices as ``net.route`` in ``evaluate`` (eval mode: GATE dropout off), computed in batches.
    """
    if routing not in ("argmax", "gumbel"):
        raise ValueError(f"routing={routing!r} is not one of argmax, gumbel")
    level, archs = _level(net), [space.canonical(a) for a in archs]
    gen, was_training, sample = torch.Generator().manual_seed(seed), net.training, routing == "gumbel"
    try:
        net.eval()
        if isinstance(net.router, Gate):
            adj = torch.tensor([to_matrix(a) for a in archs], dtype=torch.long).view(-1, 4, 4).to(net.level.device)
            logits = _cat([gate_logits(net.router, adj[i:i + chunk])[..., :level].cpu()
                           for i in range(0, len(archs), chunk)], torch.zeros(0, len(EDGES), level))
            probs = F.softmax(logits, -1)                                 # [A, E, L]
            chosen = _cat([gumbel_straight_through(lg, net.router.temperature, gen).argmax(-1)[None]
                           for lg in logits], probs.argmax(-1)) if sample else probs.argmax(-1)
        else:                                   # vanilla own-block router or the random ablation: no logits
            gates = _cat([net.route(a, sample=sample, generator=gen).cpu()[None] for a in archs],
                         torch.zeros(0, len(EDGES), level))
            chosen = gates.argmax(-1)
            probs = torch.full_like(gates, 1 / level) if isinstance(net.router, RandomRouter) else gates
    finally:
        net.train(was_training)
    return Routing([to_str(a) for a in archs], probs, chosen)


def route_cfg(net, space, archs, cfg):
    """``route`` with the scoring knobs of a RunConfig (eval_routing, eval_seed), as scoring routes."""
    return route(net, space, archs, routing=cfg.eval_routing, seed=cfg.eval_seed)


def entropy(probs):
    """Routing entropy in nats over the last dim ([A, E, L] -> [A, E]); 0 at level 1."""
    return torch.special.xlogy(probs, probs).sum(-1).abs()               # abs: no -0.0


def arch_table(r, i=0):
    """One architecture of a Routing, one row per edge: edge, src, dst, op, live, block, p (chosen), p0.., entropy."""
    arch = coerce(r.archs[i])
    live, probs = live_edges(arch), r.probs[i]
    rows = []
    for e, ((dst, src), op) in enumerate(zip(EDGES, arch)):
        k = int(r.chosen[i, e])
        rows.append({"edge": f"{src}→{dst}", "src": src, "dst": dst, "op": SHORT[OPS[op]], "live": live[e],
                     "block": k, "p": float(probs[e, k]),
                     **{f"p{b}": float(probs[e, b]) for b in range(r.level)}, "entropy": float(entropy(probs[e]))})
    return pd.DataFrame(rows)


# ---- sets of architectures ----
def usage_counts(r):
    """Counts [E, L]: how many archs route each edge position to each block (sums to E * A)."""
    return F.one_hot(r.chosen, r.level).sum(0) if len(r.archs) else torch.zeros(len(EDGES), r.level, dtype=torch.long)


def usage_table(r, expected=False):
    """``usage_counts`` as a DataFrame: edge, block, count, level (every pair of the level). ``expected``: the
    expected counts under training's Gumbel sampling instead (sum of probabilities; column ``expected``, count
    rounded)."""
    c = r.probs.sum(0) if expected else usage_counts(r)
    df = pd.DataFrame([{"edge": e, "block": b, "count": int(round(float(c[e, b]))), "level": r.level}
                       for e in range(c.shape[0]) for b in range(c.shape[1])],
                      columns=["edge", "block", "count", "level"])
    if expected:
        df["expected"] = c.flatten().tolist()
    return df


def block_usage(net, space, archs, *, routing="argmax", seed=123):
    """How many of ``archs`` route each edge position to each active block (eval routing, dropout off).

    DataFrame with columns edge (0..E-1), block (0..level-1), count, level: every (edge, block) pair of the
    current level, so the counts of one level sum to E * len(archs). Deterministic for a given ``seed``.
    """
    return usage_table(route(net, space, archs, routing=routing, seed=seed))


def entropy_table(r):
    """Per edge position: mean routing entropy (nats), mean probability of the chosen block, share of block 0."""
    ent, pmax = entropy(r.probs), r.probs.gather(-1, r.chosen[..., None])[..., 0]
    return pd.DataFrame({"edge": [f"{s}→{d}" for d, s in EDGES], "entropy": ent.mean(0).tolist(),
                         "p_chosen": pmax.mean(0).tolist(), "block0": (r.chosen == 0).float().mean(0).tolist()})


def _param_edges(archs):
    """[A, E] bool: live edges whose op has weights (convs): the edges that use and train a block's weights."""
    return torch.tensor([[lv and op in CONVS for lv, op in zip(live_edges(a), coerce(a))] for a in archs],
                        dtype=torch.bool).view(-1, len(EDGES))


def sharing_extent(r):
    """Per block: arch-edge pairs routed to it (edges, share), archs using it, and the same over parametric edges.

    ``param_edges`` / ``param_archs`` count live conv edges only: param-free ops (skip, pool) and none edges compute
    the same in every block, so those are the edges that really share the block's weights.
    """
    onehot = F.one_hot(r.chosen, r.level).bool() if len(r.archs) else torch.zeros(0, len(EDGES), r.level, dtype=bool)
    par = onehot & _param_edges(r.archs)[..., None]                      # [A, E, L]
    total = max(onehot.shape[0] * onehot.shape[1], 1)
    return pd.DataFrame({"block": range(r.level), "edges": onehot.sum((0, 1)).tolist(),
                         "share": (onehot.sum((0, 1)).float() / total).tolist(),
                         "archs": onehot.any(1).sum(0).tolist(), "param_edges": par.sum((0, 1)).tolist(),
                         "param_archs": par.any(1).sum(0).tolist()})


def summary(r):
    """Flat summary: level, archs, mean entropy (nats and / log L), blocks used, distinct blocks per arch."""
    ent = float(entropy(r.probs).mean()) if len(r.archs) else 0.0
    per_arch = F.one_hot(r.chosen, r.level).any(1).sum(-1).float() if len(r.archs) else torch.zeros(1)
    return {"level": r.level, "archs": len(r.archs), "entropy": ent,
            "entropy_norm": ent / math.log(r.level) if r.level > 1 else 0.0,
            "blocks_used": int(usage_counts(r).sum(0).gt(0).sum()), "blocks_per_arch": float(per_arch.mean())}


def routing_change(a, b):
    """How routing changed from ``a`` to ``b`` (same archs): changed fraction, per edge, and the transition counts.

    ``transition`` is a DataFrame: rows = block in ``a``, columns = block in ``b``, values = (arch, edge) pairs.
    """
    if list(a.archs) != list(b.archs):
        raise ValueError("routing_change needs the routing of the same architectures in the same order")
    diff = a.chosen != b.chosen
    t = torch.zeros(a.level, b.level, dtype=torch.long)
    t.index_put_((a.chosen.flatten(), b.chosen.flatten()), torch.ones(a.chosen.numel(), dtype=torch.long),
                 accumulate=True)
    trans = pd.DataFrame(t.numpy(), index=pd.Index(range(a.level), name="from block"),
                         columns=pd.Index(range(b.level), name="to block"))
    return {"changed": float(diff.float().mean()) if diff.numel() else 0.0, "pairs": int(diff.numel()),
            "changed_by_edge": diff.float().mean(0).tolist() if len(a.archs) else [0.0] * len(EDGES),
            "transition": trans}


CLASSICS = {"ResNet-like": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
            "all conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                           "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"}


def notable_archs(r, space, truth=None):
    """{label: canonical arch string}: best / worst by ``truth`` (arch, acc), routing extremes of ``r``, classics."""
    out = {}
    if truth is not None and len(truth):
        t = truth.sort_values("acc", kind="stable")
        out[f"best by truth ({t['acc'].iloc[-1]:.4g})"] = t["arch"].iloc[-1]
        out[f"worst by truth ({t['acc'].iloc[0]:.4g})"] = t["arch"].iloc[0]
    if len(r.archs):
        ent = entropy(r.probs).mean(1)
        blocks = F.one_hot(r.chosen, r.level).any(1).sum(-1)
        out["most uncertain routing"] = r.archs[int(ent.argmax())]
        out["most confident routing"] = r.archs[int(ent.argmin())]
        out["most blocks in one cell"] = r.archs[int(blocks.argmax())]
    out.update({k: space.canonical_str(v) for k, v in CLASSICS.items()})
    return out


def over_checkpoints(ckpts, space, archs, routing=None, seed=None):
    """{epoch: Routing} of ``archs`` for every row of ``checkpoints()``, and a summary DataFrame (one row each)
    with the change from the previous checkpoint. ``routing``/``seed`` default to the run's eval settings."""
    routes, rows, prev = {}, [], None
    for ck in ckpts.itertuples():
        net, cfg, epoch = load_net(ck.path)
        r = route(net, space, archs, routing=routing or cfg.eval_routing, seed=cfg.eval_seed if seed is None else seed)
        routes[epoch] = r
        rows.append({"epoch": epoch, **summary(r),
                     "changed_vs_prev": routing_change(prev, r)["changed"] if prev is not None else float("nan")})
        prev = r
    return routes, pd.DataFrame(rows)
