"""The seaborn figures of the closekit notebooks (CLOSE §5: ranking quality, training curves, GLOW-block use): pure
functions from DataFrames to Figures that change no global style; the caller displays and closes each figure."""
import contextlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

from .metrics import SCORE_NAMES, join_scores

STYLE = "whitegrid"
PANEL = (4.2, 3.6)      # inches of one panel of a row of panels
TABLE_CELL_IN = 0.3     # inches per position of a routing table
MAX_WIDTH_IN = 12.0     # widest figure (the report's width)
LOG_SPAN = 5            # a size axis is logarithmic when its values span this factor or more


@contextlib.contextmanager
def _figure(n, size, style=STYLE, **kw):
    """(figure, its row of ``n`` axes) in ``style``, laid out tight on exit."""
    with sns.axes_style(style):
        fig, axes = plt.subplots(1, n, figsize=size, squeeze=False, **kw)
        yield fig, axes[0]
        fig.tight_layout()


def _has(df, col):
    return col in df and df[col].notna().any()


def score_vs_truth(scores, truth, metrics, score="acc"):
    """Scatter of the one-shot score (RunConfig.score, the column ``compare`` ranks) against ground-truth accuracy,
    Kendall and P@top5% (nan: n < 20) in the title."""
    pred, true, _ = join_scores(scores, truth)
    with _figure(1, (5.5, 4.5)) as (fig, (ax,)):
        sns.scatterplot(x=true, y=pred, ax=ax, s=18, alpha=0.7, edgecolor="none")
        ax.set(xlabel="ground-truth accuracy", ylabel=SCORE_NAMES[score],
               title=f"Kendall τ = {metrics['kendall']:.3f}, P@top5% = {metrics.get('p@top5%', np.nan):.2f} "
                     f"(n = {metrics['n']})")
    return fig


def _events(history, srt_epochs):
    """{epoch: labels} of curriculum level changes (after the first epoch) and SRT restarts."""
    out, ep = {}, history["epoch"].to_numpy()
    if "level" in history:
        lv = history["level"].to_numpy()
        for i in np.flatnonzero(lv[1:] != lv[:-1]) + 1:
            out.setdefault(int(ep[i]), []).append(f"L={lv[i]}")
    for e in srt_epochs or ():
        if ep.min() <= e <= ep.max():
            out.setdefault(int(e), []).append("SRT")
    return out


def trajectory(history, srt_epochs=()):
    """Training loss and accuracy (and probe scores) per epoch; dashed lines: level changes, dotted: SRT restarts."""
    n = 3 if _has(history, "probe_kendall") else 2
    with _figure(n, (PANEL[0] * n, PANEL[1]), sharex=True) as (fig, axes):
        sns.lineplot(data=history, x="epoch", y="train_loss", ax=axes[0], marker="o")
        axes[0].set(ylabel="training loss", title="loss")
        sns.lineplot(data=history, x="epoch", y="train_acc", ax=axes[1], marker="o", label="train (sampled arch)")
        if _has(history, "probe_acc_mean"):
            sns.lineplot(data=history.dropna(subset=["probe_acc_mean"]), x="epoch", y="probe_acc_mean", ax=axes[1],
                         marker="s", label="probe mean")
        axes[1].set(ylabel="accuracy", title="accuracy")
        if n == 3:
            sns.lineplot(data=history.dropna(subset=["probe_kendall"]), x="epoch", y="probe_kendall", ax=axes[2],
                         marker="s")
            axes[2].set(ylabel="Kendall τ", title="probe ranking")
        for epoch, labels in _events(history, srt_epochs).items():
            for ax in axes:
                ax.axvline(epoch - 0.5, color="grey", lw=1, ls=":" if labels == ["SRT"] else "--")
            axes[0].text(epoch - 0.45, 0.98, " + ".join(labels), transform=axes[0].get_xaxis_transform(),
                         fontsize=8, color="grey", ha="left", va="top", rotation=90)
        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def probe_curves(probes, col="budget"):
    """Probe Kendall τ per epoch, mean ± sd over seeds per variant, one panel per value of ``col`` (e.g. budget)."""
    with sns.axes_style(STYLE):
        g = sns.relplot(data=probes, x="epoch", y="probe_kendall", hue="variant", col=col, kind="line",
                        errorbar="sd", marker="o", height=PANEL[1], aspect=1.2, facet_kws={"sharex": False})
        g.set_axis_labels("epoch", "probe Kendall τ (mean ± sd over seeds)")
        sns.move_legend(g, "upper center", bbox_to_anchor=(0.5, 0), ncol=2, title=None, frameon=False)
        g.tight_layout()
    return g.figure


def block_usage(usage):
    """Heatmaps of position x GLOW block counts (``routing.usage_table``), one panel per curriculum level."""
    groups = list(usage.groupby("level")) if "level" in usage else [(None, usage)]
    widths = [int(g["block"].max()) + 1 for _, g in groups]
    key = next(c for c in ("slot", "position", "edge") if c in usage)
    name = "position" if "position" in usage else key
    size = (1.2 + 0.9 * sum(widths) + 0.6 * len(groups), max(3.4, 1.0 + 0.4 * usage[key].nunique()))
    with _figure(len(groups), size, "white", gridspec_kw={"width_ratios": widths}) as (fig, axes):
        for ax, (level, g) in zip(axes, groups):
            table = g.pivot_table(index=key, columns="block", values="count", aggfunc="sum", fill_value=0)
            table.index = pd.Index(table.index.map(dict(zip(g[key], g[name]))), name=name)
            sns.heatmap(table, ax=ax, annot=True, fmt="d", cbar=False, vmin=0, vmax=max(usage["count"].max(), 1),
                        cmap="Blues")
            ax.set(title="" if level is None else f"level {level}", xlabel="GLOW block",
                   ylabel=name if ax is axes[0] else "")
    return fig


def routing_table(table, title=""):
    """A level x position table of blocks (routing fixed per position), coloured as in every block view."""
    n_rows, n_cols = table.shape
    vals = table.to_numpy()
    n = int(vals.max()) + 1
    with _figure(1, (min(1.5 + TABLE_CELL_IN * n_cols, MAX_WIDTH_IN), 1.2 + 0.4 * n_rows), "white") as (fig, (ax,)):
        ax.imshow(vals, cmap=ListedColormap(block_colours(n)), vmin=-0.5, vmax=n - 0.5, aspect="auto")
        for (i, j), b in np.ndenumerate(vals):
            ax.text(j, i, int(b), ha="center", va="center", fontsize=8)
        ax.set(xticks=range(n_cols), yticks=range(n_rows), yticklabels=table.index, xlabel="position",
               ylabel="curriculum level")
        ax.set_xticklabels(table.columns, rotation=90, fontsize=8)
        ax.set_title(f"position -> block per level{': ' + title if title else ''}", fontsize=10)
    return fig


def against_size(sizes, acc):
    """One-shot accuracy against each column of ``sizes`` (params, FLOPs); wide spans on a 1-2-5 log axis, whose
    minor ticks stay unlabelled (their labels overlap)."""
    with _figure(sizes.shape[1], (4.6 * sizes.shape[1], PANEL[1]), sharey=True) as (fig, axes):
        for ax, col in zip(axes, sizes):
            ax.scatter(sizes[col], acc, s=14, alpha=0.7)
            ax.set(xlabel=f"stand-alone {col}")
            if sizes[col].max() >= LOG_SPAN * sizes[col].min() > 0:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        axes[0].set_ylabel("one-shot accuracy")
    return fig


def by_config(table, metrics, config="config", lines=None):
    """A panel per metric: mean bars and run points per config; ``lines``: {metric: [(y, label, linestyle)]}."""
    metrics = [m for m in metrics if _has(table, m)]
    with _figure(max(len(metrics), 1), (1.5 + 3.8 * max(len(metrics), 1), PANEL[1])) as (fig, axes):
        for ax, m in zip(axes, metrics):
            sns.barplot(data=table, x=config, y=m, ax=ax, errorbar="sd", alpha=0.6)
            sns.stripplot(data=table, x=config, y=m, ax=ax, color="black", size=4)
            for y, label, ls in (lines or {}).get(m, ()):
                ax.axhline(y, color="firebrick", ls=ls, lw=1.2, label=label)
            if (lines or {}).get(m):
                ax.legend(fontsize=8, loc="best")
            ax.set(xlabel="", title=m)
            ax.tick_params(axis="x", rotation=20)
    return fig


def scores_by_config(scores, config="config"):
    """One-shot scores per config: scatter against ``truth_acc`` when that column has values, else distributions."""
    with _figure(1, (6.5, 4.5)) as (fig, (ax,)):
        if _has(scores, "truth_acc"):
            sns.scatterplot(data=scores.dropna(subset=["truth_acc"]), x="truth_acc", y="acc", hue=config, ax=ax,
                            s=16, alpha=0.7, edgecolor="none")
            ax.set(xlabel="ground-truth accuracy", ylabel="one-shot accuracy")
        else:
            sns.boxplot(data=scores, x=config, y="acc", ax=ax, color="lightgrey", fliersize=0)
            sns.stripplot(data=scores, x=config, y="acc", ax=ax, size=3, alpha=0.5)
            ax.set(xlabel="", ylabel="one-shot accuracy")
            ax.tick_params(axis="x", rotation=20)
    return fig


# ---- GATE routing (closekit.routing) ----
def block_colours(n):
    """One fixed colour per GLOW block (block k has the same colour in every view)."""
    return sns.color_palette("tab10", max(n, 1))


def routing_entropy(summary, by_position=None):
    """Mean routing entropy per checkpoint (and per position, given ``by_position``); dashed: level changes."""
    with _figure(1, (6.0, PANEL[1])) as (fig, (ax,)):
        if by_position is not None:
            sns.lineplot(data=by_position, x="epoch", y="entropy", hue="position", ax=ax, marker="o", alpha=0.7)
        sns.lineplot(data=summary, x="epoch", y="entropy", ax=ax, color="black", lw=2.5, marker="s", label="mean")
        lv, ep = summary["level"].to_numpy(), summary["epoch"].to_numpy()
        for i in np.flatnonzero(lv[1:] != lv[:-1]) + 1:
            x = (ep[i] + ep[i - 1]) / 2
            ax.axvline(x, color="grey", ls="--", lw=1)
            ax.text(x, 0.98, f" L={lv[i]}", transform=ax.get_xaxis_transform(), fontsize=8, color="grey", va="top")
        ax.set(ylabel="routing entropy (nats)", title="GATE routing entropy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, ncol=2)
    return fig


def transitions(named):
    """Heatmaps of block transitions between checkpoints: ``named`` is a list of (title, transition DataFrame)."""
    with _figure(max(len(named), 1), (0.6 + 2.8 * max(len(named), 1), 3.0), "white") as (fig, axes):
        for ax, (title, t) in zip(axes, named):
            sns.heatmap(t, ax=ax, annot=True, fmt="d", cbar=False, cmap="Purples")
            ax.set_title(title, fontsize=9)
    return fig
