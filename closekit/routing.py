"""How a trained CLOSENet shares its weights (CLOSE §3.3, the GATE; §3.4 and Fig. 4, the sharing-extent curriculum):
each slot's block probabilities under training's Gumbel sample and scoring's choice; over an architecture set, block
usage, entropy, sharing extent, arch dependence and changes between checkpoints. Space-generic (``space.slots``).
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from . import sharing
from .checkpoint import CKPT, SNAPSHOTS, load_net, read_checkpoint


class Routing(NamedTuple):
    """archs (strings) over the slots of ``space.slots``: probs [A, S, L], chosen [A, S], labels [S], param [A, S]."""
    archs: list
    probs: torch.Tensor
    chosen: torch.Tensor
    labels: list
    param: torch.Tensor

    @property
    def level(self):
        return self.probs.shape[-1]


def _recorded_out_dir(job_dir):
    """The out_dir a notebook job recorded (results.json config, else params.yaml), relative to the job dir."""
    out = None
    if (job_dir / "results.json").is_file():
        out = (json.loads((job_dir / "results.json").read_text()).get("config") or {}).get("out_dir")
    if out is None and (job_dir / "params.yaml").is_file():
        out = (yaml.safe_load((job_dir / "params.yaml").read_text()) or {}).get("out_dir")
    return job_dir / out if out else None


def checkpoints(run_dir):
    """Snapshots and checkpoint.pt (path, epoch, level, kind; one per epoch) of a run dir or batch job dir."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found")
    found = [(p.parent, p, "checkpoint") for p in run_dir.rglob(CKPT)] + \
            [(p.parent.parent, p, "snapshot") for p in run_dir.rglob(f"{SNAPSHOTS}/epoch-*.pt")]
    roots = sorted({str(r) for r, _, _ in found})
    recorded = _recorded_out_dir(run_dir)
    if not roots and recorded is not None and recorded.resolve() != run_dir.resolve():
        return checkpoints(recorded)                 # a job dir whose run went to an out_dir elsewhere
    if not roots:
        raise FileNotFoundError(f"no {CKPT} or {SNAPSHOTS}/epoch-*.pt under {run_dir}: "
                                "train there first (notebooks/nb201.ipynb, closekit train or closekit batch)")
    if len(roots) > 1:
        raise ValueError(f"{run_dir} holds {len(roots)} runs ({', '.join(roots)}); pass one of them")
    rows = []
    for _, p, kind in found:
        state = read_checkpoint(p)
        rows.append({"path": str(p), "epoch": int(state["epoch"]), "level": int(state["model"]["sharing.level"]),
                     "kind": kind})
    df = pd.DataFrame(rows).sort_values(["epoch", "kind"], ascending=[True, False])   # snapshot before checkpoint
    return df.drop_duplicates("epoch").reset_index(drop=True)


def describe(net):
    """(label, stochastic) of the net's router; stochastic: sampled or learned, not a fixed position -> block table."""
    r = net.router
    if not isinstance(r, sharing.Router):
        raise TypeError(f"routing.describe: unknown router {type(r).__name__}; subclass closekit.sharing.Router")
    return r.label, bool(r.stochastic)


# ---- routing of architectures ----
def _cat(net, d):
    """{cell type: [S_c, L]} -> [S, L] in the order of ``net.cell_types``."""
    return torch.cat([d[c].detach().float().cpu() for c in net.cell_types])


@torch.no_grad()
def route(net, space, archs, *, routing="argmax", seed=123):
    """Routing of ``archs`` as given: scoring's blocks (argmax, or gumbel with ``seed``), training's probabilities."""
    if routing not in ("argmax", "gumbel"):
        raise ValueError(f"routing={routing!r} is not one of argmax, gumbel")
    level, archs = net.active_level(), [space.coerce(a) for a in archs]
    labels = list(space.slots(archs[0] if archs else space.sample(torch.Generator().manual_seed(0)))["label"])
    A, S = len(archs), len(labels)
    probs, chosen, param = torch.zeros(A, S, level), torch.zeros(A, S, dtype=torch.long), torch.zeros(A, S, dtype=bool)
    gen, was_training = torch.Generator().manual_seed(seed), net.training
    try:
        if was_training:                            # eval() and train() walk every module: only when needed
            net.eval()
        for i, a in enumerate(archs):
            chosen[i] = _cat(net, net.route(a, sample=routing == "gumbel", generator=gen)).argmax(-1)
            probs[i] = _cat(net, net.route_probs(a))
            param[i] = torch.tensor(space.slots(a)["param"].to_numpy(dtype=bool))
    finally:
        if was_training:
            net.train()
    return Routing([space.to_str(a) for a in archs], probs, chosen, labels, param)


def route_cfg(net, space, archs, cfg):
    """``route`` with the scoring knobs of a RunConfig (eval_routing, eval_seed), as scoring routes."""
    return route(net, space, archs, routing=cfg.eval_routing, seed=cfg.eval_seed)


def entropy(probs):
    """Routing entropy in nats over the last dim ([A, E, L] -> [A, E]); 0 at level 1."""
    return torch.special.xlogy(probs, probs).sum(-1).abs()               # abs: no -0.0


def arch_table(r, space, i=0):
    """Architecture ``i`` of a Routing: its ``space.slots`` rows, block (chosen), p (its probability), p0.., entropy."""
    table, probs = space.slots(r.archs[i]).reset_index(drop=True), r.probs[i]
    table["block"] = r.chosen[i].tolist()
    table["p"] = probs.gather(-1, r.chosen[i][:, None])[:, 0].tolist()
    for b in range(r.level):
        table[f"p{b}"] = probs[:, b].tolist()
    table["entropy"] = entropy(probs).tolist()
    return table


def block_runs(table):
    """A fixed router's ``arch_table`` in short: each run of consecutive slots of a cell on one block."""
    key = (table["cell"] != table["cell"].shift()) | (table["block"] != table["block"].shift())
    g = table.assign(run=key.cumsum()).groupby("run", sort=True)
    return pd.DataFrame({"cell": g["cell"].first(), "from": g["label"].first(), "to": g["label"].last(),
                         "block": g["block"].first(), "live": g["live"].sum()}).reset_index(drop=True)


# ---- sets of architectures ----
def _onehot(r):
    """[A, S, L] bool: the block each (arch, slot) is routed to."""
    return F.one_hot(r.chosen, r.level).bool()


def usage_counts(r):
    """Counts [S, L]: how many archs route each slot position to each block (sums to S * A)."""
    return _onehot(r).sum(0)


def usage_table(r, expected=False):
    """``usage_counts`` as rows (slot, position, block, count, level); ``expected``: summed probabilities instead."""
    c = r.probs.sum(0) if expected else usage_counts(r)
    S, L = c.shape
    slots = [s for s in range(S) for _ in range(L)]
    df = pd.DataFrame({"slot": slots, "position": [r.labels[s] for s in slots], "block": list(range(L)) * S,
                       "count": c.double().round().long().flatten().tolist(), "level": r.level})
    if expected:
        df["expected"] = c.flatten().tolist()
    return df


def block_usage(net, space, archs, *, routing="argmax", seed=123):
    """How many of ``archs`` route each slot position to each active block: the ``usage_table`` of ``route``."""
    return usage_table(route(net, space, archs, routing=routing, seed=seed))


def entropy_table(r):
    """Per slot position: mean routing entropy (nats), mean probability of the chosen block, share of block 0."""
    ent, pmax = entropy(r.probs), r.probs.gather(-1, r.chosen[..., None])[..., 0]
    return pd.DataFrame({"position": r.labels, "entropy": ent.mean(0).tolist(),
                         "p_chosen": pmax.mean(0).tolist(), "block0": (r.chosen == 0).float().mean(0).tolist()})


def sharing_extent(r):
    """Per block: (arch, slot) pairs routed to it (slots, share), archs using it, and the same over live
    parameterised slots (``param_*``: the ones that train its weights; other ops compute alike in any block)."""
    onehot = _onehot(r)
    par = onehot & r.param[..., None]
    total = max(onehot.shape[0] * onehot.shape[1], 1)
    return pd.DataFrame({"block": range(r.level), "slots": onehot.sum((0, 1)).tolist(),
                         "share": (onehot.sum((0, 1)).float() / total).tolist(),
                         "archs": onehot.any(1).sum(0).tolist(), "param_slots": par.sum((0, 1)).tolist(),
                         "param_archs": par.any(1).sum(0).tolist()})


def arch_dependence(r):
    """Spread of the probabilities across archs over that across blocks (0: all routed alike); NaN: < 2 archs, L=1."""
    if len(r.archs) < 2 or r.level < 2:
        return float("nan")
    across_blocks = float(r.probs.std(-1).mean())
    return float(r.probs.std(0).mean()) / across_blocks if across_blocks > 0 else float("nan")


def summary(r):
    """Level, archs, mean entropy (nats and / log L), blocks used, distinct blocks per arch, ``arch_dependence``."""
    ent = float(entropy(r.probs).mean()) if len(r.archs) else 0.0
    return {"level": r.level, "archs": len(r.archs), "entropy": ent,
            "entropy_norm": ent / math.log(r.level) if r.level > 1 else 0.0,
            "blocks_used": int(usage_counts(r).sum(0).gt(0).sum()),
            "blocks_per_arch": float(_onehot(r).any(1).sum(-1).float().mean()) if len(r.archs) else 0.0,
            "arch_dependence": arch_dependence(r)}


def routing_change(a, b):
    """From ``a`` to ``b`` (same archs): changed share of (arch, slot) pairs, per slot, and the block transitions."""
    if list(a.archs) != list(b.archs):
        raise ValueError("routing_change needs the routing of the same architectures in the same order")
    diff = a.chosen != b.chosen
    t = torch.zeros(a.level, b.level, dtype=torch.long)
    t.index_put_((a.chosen.flatten(), b.chosen.flatten()), torch.ones(a.chosen.numel(), dtype=torch.long),
                 accumulate=True)
    trans = pd.DataFrame(t.numpy(), index=pd.Index(range(a.level), name="from block"),
                         columns=pd.Index(range(b.level), name="to block"))
    return {"changed": float(diff.float().mean()) if diff.numel() else 0.0, "pairs": int(diff.numel()),
            "changed_by_slot": diff.float().mean(0).tolist() if len(a.archs) else [0.0] * len(a.labels),
            "transition": trans}


def notable_archs(r, space, truth=None, stochastic=True):
    """{label: arch}: best / worst by ``truth``, routing extremes of ``r`` (fixed table: most blocks), the space's."""
    out = {}
    if truth is not None and len(truth):
        t = truth.sort_values(["acc", "arch"], kind="stable")
        out[f"best by truth ({t['acc'].iloc[-1]:.4g})"] = t["arch"].iloc[-1]
        out[f"worst by truth ({t['acc'].iloc[0]:.4g})"] = t["arch"].iloc[0]
    if len(r.archs) and not stochastic:
        out["most blocks in use"] = r.archs[int((_onehot(r) & r.param[..., None]).any(1).sum(-1).argmax())]
    elif len(r.archs):
        ent = entropy(r.probs).mean(1)
        out["most uncertain routing"] = r.archs[int(ent.argmax())]
        out["most confident routing"] = r.archs[int(ent.argmin())]
        out["most blocks in one cell"] = r.archs[int(_onehot(r).any(1).sum(-1).argmax())]
    return {**out, **space.notable()}


def over_checkpoints(ckpts, space, archs, routing=None, seed=None):
    """({epoch: Routing}, summary and change per checkpoint) of ``archs``; routing, seed: the run's eval settings."""
    routes, rows, prev = {}, [], None
    for ck in ckpts.itertuples():
        net, cfg, epoch = load_net(ck.path)
        r = route(net, space, archs, routing=routing or cfg.eval_routing, seed=cfg.eval_seed if seed is None else seed)
        routes[epoch] = r
        rows.append({"epoch": epoch, **summary(r),
                     "changed_vs_prev": routing_change(prev, r)["changed"] if prev is not None else float("nan")})
        prev = r
    return routes, pd.DataFrame(rows)
