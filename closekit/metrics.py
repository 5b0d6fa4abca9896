"""Ranking metrics of CLOSE (Zhou et al., ECCV 2022, §5 evaluation).

Re-implements the metrics computed by the reference code aw_nas
`examples/research/surgery/evaluation.py`: Kendall's tau, Spearman's rho,
Pearson's r, P@topK / P@bottomK, Kendall's tau within the top/bottom K, and
BR@K / WR@K (best / worst true rank among the predicted top K).

Ranks are 0-based internally (0 = best = highest score). `rank_metrics` breaks
ties stably (first in input ranks better), exactly tied predictions first by the
optional `pred_tiebreak` (higher ranks better). `compare` makes results independent
of row order: it sorts the joined rows by `arch`, breaks ties of the predicted
score by the scores' `loss` column when present (lower loss ranks better), then by
`arch` (smaller string ranks better), and ties of the true accuracy by `arch`.
aw_nas uses numpy's default (unstable) quicksort, so on tied values results
may differ from aw_nas. Ratios whose K = int(N * ratio) is < 1 are skipped
(key absent), as in aw_nas. BR@K follows the paper (best true rank among the
predicted top K); note aw_nas's `print_info` passes its arguments to
`minn_at_k(true, predict)` swapped, i.e. it reports the converse.
"""

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

TOP_RATIOS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
BR_RATIOS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2)


def _pct(ratio):
    """Format a ratio as a percentage key suffix: 0.001 -> '0.1%', 0.1 -> '10%'."""
    return f"{round(ratio * 100, 6):g}%"


def _order(x, tiebreak=None):
    """Indices sorting x descending; ties by tiebreak descending (if given), then input position."""
    return np.argsort(-x, kind="stable") if tiebreak is None else np.lexsort((-tiebreak, -x))


def _ranks(x):
    """0-based descending rank of each element of x (0 = highest), stable on ties."""
    r = np.empty(len(x), dtype=np.int64)
    r[_order(x)] = np.arange(len(x))
    return r


def _tau(a, b):
    """Kendall tau-b of a vs b; NaN if fewer than 2 points or either side constant."""
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def _check(pred, truth):
    """Convert pred / truth to float arrays and validate them."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=np.float64).ravel()
    if len(pred) != len(truth):
        raise ValueError(f"pred and truth differ in length: {len(pred)} vs {len(truth)}")
    if len(pred) < 2:
        raise ValueError(f"need at least 2 architectures to rank, got {len(pred)}")
    if np.isnan(pred).any() or np.isnan(truth).any():
        raise ValueError(f"NaN in input: {int(np.isnan(pred).sum())} in pred, "
                         f"{int(np.isnan(truth).sum())} in truth")
    return pred, truth


def rank_metrics(pred, truth, *, top_ratios=TOP_RATIOS, br_ratios=BR_RATIOS, pred_tiebreak=None) -> dict:
    """Flat dict of ranking metrics of predicted scores vs true accuracies (higher = better).

    pred_tiebreak (optional, same length, higher = better) orders only exactly tied
    predictions (for P@K, BR@K / WR@K and the top / bottom K subsets); NaN in it ranks worst.

    kendall@top{p} / kendall@bottom{p} are tau-b restricted to the *predicted* top /
    bottom K (aw_nas instead restricts to predicted-and-true top K); they are NaN when
    K < 2 or when either side is constant on that subset.
    """
    pred, truth = _check(pred, truth)
    n = len(pred)
    if pred_tiebreak is not None:
        pred_tiebreak = np.asarray(pred_tiebreak, dtype=np.float64).ravel()
        if len(pred_tiebreak) != n:
            raise ValueError(f"pred_tiebreak has length {len(pred_tiebreak)}, pred {n}")
    rt = _ranks(truth)                   # true rank of each arch, 0 = best
    order = _order(pred, pred_tiebreak)  # arch indices, best predicted first
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = float(np.corrcoef(pred, truth)[0, 1])
    out = {
        "n": n,
        "kendall": float(kendalltau(pred, truth).statistic),
        "spearman": float(spearmanr(pred, truth).statistic),
        "pearson": pearson,
        "mean_pred": float(pred.mean()),
    }
    for ratio in top_ratios:
        k = int(n * ratio)
        if k < 1:
            continue
        s, top, bot = _pct(ratio), order[:k], order[n - k:]
        out[f"p@top{s}"] = float(np.sum(rt[top] < k) / k)
        out[f"p@bottom{s}"] = float(np.sum(rt[bot] >= n - k) / k)
        out[f"kendall@top{s}"] = _tau(pred[top], truth[top])
        out[f"kendall@bottom{s}"] = _tau(pred[bot], truth[bot])
    for ratio in br_ratios:
        k = int(n * ratio)
        if k < 1:
            continue
        s, got = _pct(ratio), rt[order[:k]] + 1  # 1-indexed true ranks of predicted top K
        best, worst = int(got.min()), int(got.max())
        out.update({f"br@{s}": best, f"br@{s}_rel": best / n,
                    f"wr@{s}": worst, f"wr@{s}_rel": worst / n})
    return out


def _unique(df, name):
    """Raise a one-line ValueError if df lists an architecture twice."""
    dup = df["arch"].duplicated()
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate architectures in {name}, "
                         f"e.g. {df['arch'][dup].iloc[0]!r}")


def join_scores(scores: pd.DataFrame, truth: pd.DataFrame, score_col="acc", truth_col="acc"):
    """Join scores to truth on `arch`; return (pred, truth, archs), rows sorted by `arch`."""
    _unique(truth, "truth")
    _unique(scores, "scores")
    lookup = truth.set_index("arch")[truth_col]
    missing = ~scores["arch"].isin(lookup.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of {len(scores)} scored architectures missing "
                         f"from truth, e.g. {scores['arch'][missing].iloc[0]!r}")
    scores = scores.sort_values("arch", kind="stable")
    archs = list(scores["arch"])
    return (scores[score_col].to_numpy(dtype=np.float64),
            lookup.loc[archs].to_numpy(dtype=np.float64), archs)


def compare(scores: pd.DataFrame, truth: pd.DataFrame, score_col="acc", truth_col="acc",
            **kw) -> dict:
    """rank_metrics of joined scores vs truth, plus `n`; independent of row order (module docstring)."""
    pred, true, archs = join_scores(scores, truth, score_col, truth_col)
    if "loss" in scores and "pred_tiebreak" not in kw:  # lower one-shot loss ranks better
        kw["pred_tiebreak"] = -scores.set_index("arch")["loss"].loc[archs].to_numpy(dtype=np.float64)
    return {**rank_metrics(pred, true, **kw), "n": len(archs)}


def size_baseline(truth, space, by="params", **kw):
    """How well size alone ranks a ground truth: ``compare`` of score = stand-alone params (or flops) vs
    truth acc. Uses the truth's own column when it has one (official files: reference scale; a mini truth: its
    scaled nets), else ``space.complexity`` at the reference scale."""
    if by not in ("params", "flops"):
        raise ValueError(f"size baseline by={by!r} is not one of params, flops")
    if by in truth and truth[by].notna().all():
        size = truth[by].astype(float)
    else:
        size = pd.Series([float(space.complexity(a)[by == "flops"]) for a in truth["arch"]], index=truth.index)
    return compare(pd.DataFrame({"arch": truth["arch"], "acc": size}), truth, **kw)


HEADLINE = ("kendall", "spearman", "p@top5%", "br@5%_rel")


def headline(m):
    """The few numbers a report leads with, from a ``compare`` dict (and its ground-truth ceilings, if any)."""
    return {k: m[k] for k in (*HEADLINE, "truth_best_kendall", "truth_seed_kendall", "n") if m.get(k) is not None}


def by_k(m):
    """The @K metrics of a ``compare`` dict as one compact table: a row per K below 100%, a column per metric;
    NaN cells (K too small for a Kendall tau) left empty."""
    rows = {}
    for key, v in m.items():
        if "@" not in key or key.endswith("_rel") or "100%" in key:
            continue
        name, k = key.split("@", 1)
        kind = "top" if k.startswith("top") else "bottom" if k.startswith("bottom") else ""
        rows.setdefault(k[len(kind):], {})[f"{name}@{kind}" if kind else name] = v
    df = pd.DataFrame.from_dict(rows, orient="index").rename_axis("K")
    return df.loc[sorted(df.index, key=lambda s: float(s.rstrip("%")))] if len(df) else df


LOSS_RISE = 1.05      # final / first epoch training loss above this: the supernet is not learning
NEAR_CHANCE = 1.5     # final training accuracy below this many times chance: its scores rank noise


def headline_text(m):
    """One short line of the headline numbers next to the truth's ceilings, or the score summary without a truth."""
    h = headline(m)
    if "kendall" not in h:
        return (f"{m.get('n_scored', '?')} architectures scored, one-shot accuracy "
                f"{m.get('oneshot_acc_mean', float('nan')):.3f} +- {m.get('oneshot_acc_std', float('nan')):.3f} "
                "(no ground truth)")
    parts = [f"{k} {h[k]:.3f}" for k in HEADLINE if k in h]
    ceil = [f"{name} {h[k]:.3f}" for k, name in (("truth_best_kendall", "best reachable kendall"),
                                                   ("truth_seed_kendall", "seed-to-seed kendall")) if k in h]
    return ", ".join(parts) + f" over {h['n']} architectures" + (f" (truth: {', '.join(ceil)})" if ceil else "")


def training_warning(history, num_classes):
    """A one-line warning when training diverged, its loss rose or it ended near chance accuracy; else None."""
    if history is None or not len(history):
        return None
    first, last = float(history["train_loss"].iloc[0]), float(history["train_loss"].iloc[-1])
    acc, chance = float(history["train_acc"].iloc[-1]), 1 / num_classes
    if not np.isfinite(last):
        return f"training diverged (loss {last}): its scores mean nothing; lower lr or set grad_clip"
    if last > LOSS_RISE * first:
        return (f"the training loss rose ({first:.2f} -> {last:.2f}): the supernet did not learn and its ranking "
                "means little; lower lr or train longer")
    if acc < NEAR_CHANCE * chance:
        return (f"training ended near chance accuracy ({acc:.1%}, chance {chance:.1%}): the ranking means little; "
                "train longer, lower lr or try head_norm: mean (NDS)")
    return None
