"""One-shot scoring (CLOSE §4, reference protocol of §6.1): every architecture is run with the shared weights on
the held-out split, in a fixed batch order, and scored by accuracy and loss; a RunConfig's scoring keys set how
(BN statistics per batch or recalibrated, argmax or seeded Gumbel routing, batches) and which of the two ranks
(``score``). The supernet is left untouched.
"""
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
import yaml

from . import data as datalib
from .config import RunConfig
from .metrics import compare
from .progress import bar
from .routing import block_usage

SCORING_KEYS = ("bn_mode", "recal_batches", "eval_routing", "eval_seed", "eval_batch_size", "eval_max_batches",
                "score")


def arch_list(space, spec, seed=0, truth=None):
    """Architectures to score: a finite enumeration of the space (e.g. 'all', 'valid'), 'sample:N', 'truth' (the
    ground truth's), or a file of arch strings, one per line, or a YAML list (canonicalised, repeats dropped)."""
    if spec == "truth":
        if truth is None:
            raise ValueError("archs: truth needs a ground truth; set truth to a CSV, mini-benchmark dir or "
                             "official file")
        return list(truth["arch"])
    if spec in space.enumerations:
        return space.enumerate(spec)
    if spec.startswith("sample:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"archs {spec!r}: N in sample:N must be a whole number >= 1, e.g. sample:40")
        return space.sample_list(int(n), seed)
    path = Path(spec)
    if not path.is_file():
        kinds = " / ".join((*space.enumerations, "sample:N", "truth"))
        raise FileNotFoundError(f"arch list {spec!r} is neither {kinds} nor an existing file of arch strings")
    if path.suffix in (".yaml", ".yml"):                    # the reference's arch lists (e.g. nb301_archs.yaml)
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"arch list {path} is not valid YAML: {getattr(e, 'problem', None) or e}") from None
        entries = d.get("archs") if isinstance(d, dict) else d
        if not isinstance(entries, list):
            raise ValueError(f"arch list {path} must be a YAML list of arch strings (or a mapping with key archs)")
        lines = [(f"entry {i}", str(s)) for i, s in enumerate(entries)]
    else:
        lines = [(f"line {i}", t.strip()) for i, t in enumerate(path.read_text().splitlines(), 1)
                 if t.strip() and not t.lstrip().startswith("#")]
    archs = {}
    for where, text in lines:
        try:
            a = space.canonical(text)
        except ValueError as e:
            raise ValueError(f"arch list {path} {where}: {e}") from None
        archs.setdefault(space.to_str(a), a)
    return list(archs.values())


@torch.no_grad()
def evaluate(net, space, archs, data, cfg=None, *, progress=None, on_scored=None, **keys):
    """DataFrame arch (official string), acc, loss, score (``oneshot_score``) of ``archs`` under the scoring keys of
    ``cfg`` (RunConfig(), or ``keys`` over it: one of SCORING_KEYS); ``on_scored(i, n)`` after each arch;
    ``progress``: a bar (None: on a terminal only)."""
    bad = [k for k in keys if k not in SCORING_KEYS]
    if bad:
        raise TypeError(f"evaluate() got {bad[0]}={keys[bad[0]]!r}, not a scoring key; use one of "
                        f"{', '.join(SCORING_KEYS)} (or set it in cfg)")
    cfg = (cfg or RunConfig()).replace(**keys)
    device = next(net.parameters()).device
    if not len(data.valid):
        raise ValueError("the valid split is empty: nothing to score on (train_portion must be < 1)")
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = {k: v.clone() for k, v in net.state_dict().items() if "running_" in k or "num_batches" in k}
    momenta, was_training = [m.momentum for m in bns], net.training
    gen, rows = torch.Generator().manual_seed(cfg.eval_seed), []
    try:
        net.eval()
        for arch in bar(archs, len(archs), "scoring", show=progress):
            arch = space.coerce(arch)
            gates = net.route(arch, sample=cfg.eval_routing == "gumbel", generator=gen)
            if cfg.bn_mode == "recalibrate":        # running statistics recomputed on training batches first
                for m in bns:
                    m.reset_running_stats()
                    m.momentum, m.training = None, True
                for x, _ in datalib.batches(data.train, cfg.eval_batch_size, shuffle=False, device=device,
                                            max_batches=cfg.recal_batches):
                    net(x, arch, gates)
                for m in bns:
                    m.training = False
            else:                                   # batch: per-batch statistics (the reference)
                for m in bns:
                    m.training = True
            loss_sum, correct, n = 0.0, 0, 0
            for x, y in datalib.batches(data.valid, cfg.eval_batch_size, shuffle=False, device=device,
                                        max_batches=cfg.eval_max_batches):
                logits = net(x, arch, gates)
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                n += len(y)
            rows.append({"arch": space.to_str(arch), "acc": correct / n, "loss": loss_sum / n})
            if on_scored:
                on_scored(len(rows), len(archs))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        net.load_state_dict(saved, strict=False)
        net.train(was_training)
    scores = pd.DataFrame(rows, columns=["arch", "acc", "loss"])
    return scores.assign(score=oneshot_score(scores, cfg.score))


def oneshot_score(scores, score):
    """The column that ranks ``scores`` (arch, acc, loss) under RunConfig.score: acc, or -loss for loss."""
    return scores["acc"] if score == "acc" else -scores["loss"]


def score_summary(scores):
    """Flat summary of one-shot scores (no ground truth needed)."""
    return {"n_scored": len(scores), "oneshot_acc_mean": float(scores["acc"].mean()),
            "oneshot_acc_std": float(scores["acc"].std(ddof=0)), "oneshot_acc_max": float(scores["acc"].max()),
            "oneshot_loss_mean": float(scores["loss"].mean())}


def probe_archs(archs, n, seed):
    """A seeded sample of ``n`` of ``archs`` in their order (not the first n: a sorted list would bias it)."""
    archs = list(archs)
    keep = sorted(torch.randperm(len(archs), generator=torch.Generator().manual_seed(seed))[:n].tolist())
    return [archs[i] for i in keep]


class Probe:
    """``on_epoch_end`` callback of ``train`` over a seeded sample (``arch_seed``) of ``eval_every_archs`` of
    ``archs``: every ``eval_every`` epochs probe_acc_mean (and probe_kendall of the score against ``truth``); with
    ``usage_every_level`` their ``block_usage`` at the end of each level and of training (``.usages``, ``.usage``)."""

    def __init__(self, space, archs, data, cfg, truth=None, usage_every_level=True):
        self.space, self.data, self.cfg, self.truth = space, data, cfg, truth
        self.archs = probe_archs(archs, cfg.eval_every_archs, cfg.arch_seed)
        self.usage_every_level, self.usages = usage_every_level, []

    def __call__(self, trainer, epoch):
        cfg = self.cfg
        if self.usage_every_level and (epoch >= cfg.epochs or trainer.net.curriculum.level_end(epoch)):
            self.usages.append(block_usage(trainer.net, self.space, self.archs, routing=cfg.eval_routing,
                                           seed=cfg.eval_seed))
        if not cfg.eval_every or epoch % cfg.eval_every:
            return {}
        s = evaluate(trainer.net, self.space, self.archs, self.data, cfg, progress=False)
        row = {"probe_acc_mean": float(s["acc"].mean())}
        if self.truth is not None:
            row["probe_kendall"] = compare(s, self.truth)["kendall"]
        return row

    @property
    def usage(self):
        """Every recorded block-usage table, one after the other (columns slot, position, block, count, level)."""
        return pd.concat(self.usages, ignore_index=True) if self.usages else \
            pd.DataFrame(columns=["slot", "position", "block", "count", "level"])


probe = Probe              # the on_epoch_end callback of one run
