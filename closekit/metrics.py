"""Ranking metrics of CLOSE §5, as the reference aw_nas `examples/research/surgery/evaluation.py` computes them.

Kendall's tau, Spearman's rho, Pearson's r, P@top/bottom K, Kendall's tau within the predicted top/bottom K, and
BR@K / WR@K: the best / worst true rank among the predicted top K, as the paper defines it (aw_nas's `print_info`
swaps the arguments of `minn_at_k`, reporting the converse). Ranks are 0-based inside (0 = best) and ties break
stably; `compare` ranks the one-shot `score` column (`acc` in scores files written before it) independently of row
order (rows sorted by `arch`; tied scores broken by the other quantity: lower `loss` or higher `acc`, then `arch`),
where aw_nas's unstable quicksort may differ on ties. A ratio whose K = int(N * ratio) is < 1 is skipped, as in
aw_nas. The run's headline and training warning are read from these numbers.
"""
import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

TOP_RATIOS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
BR_RATIOS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2)
HEADLINE = ("kendall", "spearman", "p@top5%", "br@5%_rel")
CEILINGS = (("truth_best_kendall", "best reachable kendall"), ("truth_seed_kendall", "seed-to-seed kendall"))
LOSS_RISE = 1.05      # final / first epoch training loss above this: the supernet is not learning
NEAR_CHANCE = 1.5     # final training accuracy below this many times chance: its scores rank noise
SCORE_NAMES = {"acc": "one-shot accuracy", "loss": "negated one-shot loss"}      # RunConfig.score as figures say it


def _pct(ratio):
    """A ratio as a key suffix: 0.001 -> '0.1%', 0.1 -> '10%'."""
    return f"{round(ratio * 100, 6):g}%"


def _order(x, tiebreak=None):
    """Indices sorting x descending; ties by tiebreak descending (if given), then input position."""
    return np.argsort(-x, kind="stable") if tiebreak is None else np.lexsort((-tiebreak, -x))


def _tau(a, b):
    """Kendall tau-b of a vs b; NaN if fewer than 2 points or either side constant."""
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def rank_metrics(pred, truth, *, top_ratios=TOP_RATIOS, br_ratios=BR_RATIOS, pred_tiebreak=None) -> dict:
    """Flat dict of ranking metrics of predicted scores vs true accuracies (higher = better); ``pred_tiebreak``
    (higher = better) orders only exactly tied predictions; kendall@top/bottom is tau-b on the *predicted* top /
    bottom K (aw_nas: predicted and true top K), NaN when K < 2 or a side is constant there."""
    pred, truth = (np.asarray(x, dtype=np.float64).ravel() for x in (pred, truth))
    n = len(pred)
    if n != len(truth):
        raise ValueError(f"pred and truth differ in length: {n} vs {len(truth)}")
    if n < 2:
        raise ValueError(f"need at least 2 architectures to rank, got {n}")
    if np.isnan(pred).any() or np.isnan(truth).any():
        raise ValueError(f"NaN in input: {int(np.isnan(pred).sum())} in pred, {int(np.isnan(truth).sum())} in truth")
    if pred_tiebreak is not None:
        pred_tiebreak = np.asarray(pred_tiebreak, dtype=np.float64).ravel()
        if len(pred_tiebreak) != n:
            raise ValueError(f"pred_tiebreak has length {len(pred_tiebreak)}, pred {n}")
    rt = np.empty(n, dtype=np.int64)
    rt[_order(truth)] = np.arange(n)     # true rank of each arch, 0 = best
    order = _order(pred, pred_tiebreak)  # arch indices, best predicted first
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = float(np.corrcoef(pred, truth)[0, 1])
    out = {"n": n, "kendall": float(kendalltau(pred, truth).statistic),
           "spearman": float(spearmanr(pred, truth).statistic), "pearson": pearson, "mean_pred": float(pred.mean())}
    for ratio in top_ratios:
        k, s = int(n * ratio), _pct(ratio)
        if k >= 1:
            top, bot = order[:k], order[n - k:]
            out.update({f"p@top{s}": float(np.sum(rt[top] < k) / k),
                        f"p@bottom{s}": float(np.sum(rt[bot] >= n - k) / k),
                        f"kendall@top{s}": _tau(pred[top], truth[top]),
                        f"kendall@bottom{s}": _tau(pred[bot], truth[bot])})
    for ratio in br_ratios:
        k, s = int(n * ratio), _pct(ratio)
        if k >= 1:
            got = rt[order[:k]] + 1      # 1-indexed true ranks of the predicted top K
            best, worst = int(got.min()), int(got.max())
            out.update({f"br@{s}": best, f"br@{s}_rel": best / n, f"wr@{s}": worst, f"wr@{s}_rel": worst / n})
    return out


def join_scores(scores: pd.DataFrame, truth: pd.DataFrame, score_col=None, truth_col="acc"):
    """Join scores to truth on `arch`; return (pred, truth, archs), rows sorted by `arch`; ``score_col`` None: `score`,
    or `acc` when scores has no `score` column (scores.csv files written before RunConfig.score)."""
    score_col = score_col or ("score" if "score" in scores else "acc")
    for df, name in ((truth, "truth"), (scores, "scores")):
        dup = df["arch"].duplicated()
        if dup.any():
            raise ValueError(f"{int(dup.sum())} duplicate architectures in {name}, e.g. {df['arch'][dup].iloc[0]!r}")
    lookup = truth.set_index("arch")[truth_col]
    missing = ~scores["arch"].isin(lookup.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} of {len(scores)} scored architectures missing from truth, "
                         f"e.g. {scores['arch'][missing].iloc[0]!r}")
    archs = list(scores["arch"].sort_values(kind="stable"))
    return (scores.set_index("arch")[score_col].loc[archs].to_numpy(dtype=np.float64),
            lookup.loc[archs].to_numpy(dtype=np.float64), archs)


def _tiebreak(scores, archs):
    """Rank (higher = better) of ``archs`` by lower loss, then higher accuracy, equal rows tied; None without either.
    Tied scores tie the quantity that is the score (acc or -loss), so the other one decides."""
    keys = pd.DataFrame({k: sign * scores[k] for k, sign in (("loss", -1), ("acc", 1)) if k in scores})
    if keys.empty:
        return None
    rows = keys.set_axis(scores["arch"]).loc[archs].to_numpy(dtype=np.float64)
    return np.unique(rows, axis=0, return_inverse=True)[1].ravel()      # index among the sorted distinct rows


def compare(scores: pd.DataFrame, truth: pd.DataFrame, score_col=None, truth_col="acc", **kw) -> dict:
    """rank_metrics of joined scores vs truth, plus `n`; independent of row order (module docstring)."""
    pred, true, archs = join_scores(scores, truth, score_col, truth_col)
    if "pred_tiebreak" not in kw:
        kw["pred_tiebreak"] = _tiebreak(scores, archs)
    return {**rank_metrics(pred, true, **kw), "n": len(archs)}


def size_baseline(truth, space, by="params", **kw):
    """``compare`` of stand-alone size (params or flops) against the truth: the truth's own column when it has one
    (official files: reference scale; a mini truth: its scaled nets), else ``space.complexity``."""
    if by not in ("params", "flops"):
        raise ValueError(f"size baseline by={by!r} is not one of params, flops")
    if by in truth and truth[by].notna().all():
        size = truth[by].astype(float)
    else:
        size = pd.Series([float(space.complexity(a)[by == "flops"]) for a in truth["arch"]], index=truth.index)
    return compare(pd.DataFrame({"arch": truth["arch"], "acc": size}), truth, **kw)


def by_k(m):
    """The @K metrics of a ``compare`` dict below 100% as a table: a row per K, a column per metric."""
    rows = {}
    for key, v in m.items():
        if "@" in key and not key.endswith("_rel") and "100%" not in key:
            name, k = key.split("@", 1)
            kind = next((w for w in ("top", "bottom") if k.startswith(w)), "")
            rows.setdefault(k[len(kind):], {})[f"{name}@{kind}" if kind else name] = v
    df = pd.DataFrame.from_dict(rows, orient="index").rename_axis("K")
    return df.loc[sorted(df.index, key=lambda s: float(s.rstrip("%")))] if len(df) else df


def headline_text(m):
    """One short line of the headline numbers next to the truth's ceilings, or the score summary without a truth."""
    if m.get("kendall") is None:
        return (f"{m.get('n_scored', '?')} architectures scored, one-shot accuracy "
                f"{m.get('oneshot_acc_mean', float('nan')):.3f} +- {m.get('oneshot_acc_std', float('nan')):.3f} "
                "(no ground truth)")
    parts = ", ".join(f"{k} {m[k]:.3f}" for k in HEADLINE if m.get(k) is not None)
    ceil = ", ".join(f"{name} {m[k]:.3f}" for k, name in CEILINGS if m.get(k) is not None)
    return f"{parts} over {m['n']} architectures" + (f" (truth: {ceil})" if ceil else "")


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
