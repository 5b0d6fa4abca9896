"""The run report every run notebook shows (CLOSE §5: ranking quality, training, sharing per curriculum level).

Functions over ``closekit.run``'s ``Result``: the result first (headline, a warning when training failed), figures,
details, the training log last and folded. Space-specific figures come from the space (``slots``, ``draw``, an
optional ``complexity``). matplotlib is imported inside the functions, so importing this module is quick."""
import html
from pathlib import Path

from IPython import get_ipython
from IPython.display import HTML, Markdown, display

SECTIONS = ("Result", "Scores against the truth", "Training", "Block usage per curriculum level", "Architectures",
            "Size", "Details", "Training log")
LOG_TAIL = 3              # log lines shown live while a notebook trains
TOP = 10                  # architectures in the details table
DRAWN = ("best", "median", "worst")     # architectures drawn, by one-shot score
DRAW_SIZE = (7.0, 4.2)    # inches per drawn architecture, one per row, at DRAW_DPI: ~1000 px wide with labels
DRAW_DPI = 140            # legible at the report's width (the spaces draw their labels in points)
TABLE_MAX_POSITIONS = 40  # a fixed routing table wider than this is shown per cell type
WARNING_STYLE = "border-left:6px solid #c62828;background:#fdecea;padding:8px 12px;margin:6px 0"


def config(namespace):
    """The RunConfig of a notebook's globals: its RunConfig keys (papermill's included), the rest defaults."""
    from .config import RunConfig
    keys = RunConfig().to_dict()
    return RunConfig.from_dict({k: v for k, v in namespace.items() if k in keys}, source="the notebook parameters")


class Log:
    """A ``closekit.run`` log that keeps every line; in a notebook it shows the latest in place, else prints."""

    def __init__(self):
        self.lines = []
        self._handle = display({"text/plain": "starting"}, raw=True, display_id=True) if get_ipython() else None

    def __call__(self, line):
        self.lines.append(str(line))
        if self._handle is None:
            print(line)
        else:
            self._handle.update({"text/plain": "\n".join(self.lines[-LOG_TAIL:])}, raw=True)

    def replace(self, markdown):
        """Show ``markdown`` where the live lines were; False outside a notebook."""
        if self._handle is not None:
            self._handle.update({"text/markdown": markdown, "text/plain": markdown}, raw=True)
        return self._handle is not None


def _md(text):
    display(Markdown(text))


def _fig(fig):
    import matplotlib.pyplot as plt
    display(fig)
    plt.close(fig)


def _section(name, note=""):
    _md(f"## {name}" + (f"\n{note}" if note else ""))


def _folded(summary, body):
    """HTML that shows ``summary`` and opens to ``body``."""
    return f"<details><summary>{html.escape(summary)} (click to open)</summary>{body}</details>"


def _ranked(scores):
    """Scores best first by one-shot score (ties: lower loss, then higher accuracy, as ``metrics.compare``)."""
    return scores.sort_values(["score", "loss", "acc"], ascending=[False, True, False])


def headline_markdown(result):
    """The space and supernet that ran, the headline numbers (or the score summary) and a training warning."""
    from .metrics import SCORE_NAMES, headline_text, training_warning
    kind = "CLOSE" if result.cfg.supernet == "close" else "Vanilla one-shot"
    truth = result.metrics.get("truth")
    by = "" if result.cfg.score == "acc" else f" by the {SCORE_NAMES[result.cfg.score]}"     # acc: the reference
    warn = training_warning(result.history, result.data.num_classes)
    return (f"# {kind} supernet on {result.space.name}" + (f"\nRanked{by} against `{truth}`." if truth else "")
            + f"\n## {SECTIONS[0]}\n**{headline_text(result.metrics)}**\n"
            + (f'\n<div style="{WARNING_STYLE}"><b>Warning:</b> {html.escape(warn)}</div>\n' if warn else ""))


def headline(result, log=None):
    """Show the headline, in place of ``log``'s live lines when it has them (so the report starts with it)."""
    text = headline_markdown(result)
    if not (log is not None and log.replace(text)):
        _md(text)


def scores_vs_truth(result):
    """Scatter of the one-shot score against ground-truth accuracy (a note without a truth)."""
    from . import plots
    _section(SECTIONS[1])
    if result.truth is None:
        _md("No ground truth configured (`truth: null`): nothing to rank against. Set `truth` to a shipped name, "
            "a CSV (`arch,acc`), a `closekit truth build` directory or an official file.")
    else:
        _fig(plots.score_vs_truth(result.scores, result.truth, result.metrics, result.cfg.score))


def training(result):
    """Loss and accuracy per epoch, curriculum levels and SRT restarts marked."""
    from . import plots
    _section(SECTIONS[2], "Loss and accuracy of the sampled architectures per epoch (probe scores when "
                          "`eval_every` > 0); dashed lines: curriculum levels, dotted: SRT restarts.")
    _fig(plots.trajectory(result.history, result.cfg.srt_epochs))


def missing_levels(cfg, shown):
    """{level: why nothing is shown} for every curriculum level 1..num_blocks that ``shown`` lacks."""
    sched = list(cfg.cl_schedule) if cfg.supernet == "close" else []
    out = {}
    for level, start in enumerate(sched, 1):
        if level in shown:
            continue
        if start > cfg.epochs:
            out[level] = f"starts at epoch {start}, after the last ({cfg.epochs})"
        elif level < len(sched) and sched[level] <= start:
            out[level] = f"no epoch ends inside it (the next level starts at the same epoch, {start})"
        else:
            out[level] = ("not trained in this session (a resumed run shows the levels it trained; "
                          "gate_explorer.ipynb reads every level's snapshot)")
    return out


def _fixed_table(usage):
    """The level x position table of blocks when every position of a level uses one block, else None."""
    used = usage[usage["count"] > 0]
    if used.empty or used.groupby(["level", "position"])["block"].nunique().max() > 1:
        return None
    order = used.drop_duplicates("position").sort_values("slot")["position"].tolist()
    return used.pivot(index="level", columns="position", values="block")[order].sort_index()


def _cell_groups(result, table):
    """[(cell types, positions)]: one table, or one per cell type when too wide (equal ones shown once)."""
    import numpy as np
    if len(table.columns) <= TABLE_MAX_POSITIONS:
        return [([], list(table.columns))]
    slots = result.space.slots(result.scores["arch"].iloc[0])
    cell_of, cols_of, groups = dict(zip(slots["label"], slots["cell"])), {}, []
    for p in table.columns:
        cols_of.setdefault(cell_of.get(p, ""), []).append(p)
    for cell, cols in cols_of.items():
        same = next((g for g in groups if np.array_equal(table[g[1]].to_numpy(), table[cols].to_numpy())), None)
        if same:
            same[0].append(cell)
        else:
            groups.append(([cell], cols))
    return groups


def block_usage(result):
    """GLOW-block use per curriculum level (a table when routing is fixed, else heatmaps), missing levels named."""
    from . import plots
    _section(SECTIONS[3], "Which block each routed position uses at the last epoch of every curriculum level, over "
                          "the probe architectures (a seeded sample of the scored ones).")
    usage = result.usage
    if result.cfg.supernet != "close" or usage is None or not len(usage):
        _md("Vanilla supernet: every position always uses its own block (no sharing to show).")
        return
    by_reason = {}
    for level, why in missing_levels(result.cfg, set(usage["level"])).items():
        by_reason.setdefault(why, []).append(str(level))
    if by_reason:
        _md("Levels not shown: " + "; ".join(f"level{'s' if len(ls) > 1 else ''} {', '.join(ls)}: {why}"
                                             for why, ls in by_reason.items()) + ".")
    table = _fixed_table(usage)
    if table is None:
        _fig(plots.block_usage(usage))
        return
    groups = _cell_groups(result, table)
    same = f" (the same in {', '.join(groups[0][0])})" if len(groups) == 1 and len(groups[0][0]) > 1 else ""
    _md(f"Every position used one block for all probe architectures at each level: one position -> block table "
        f"per level{same}.")
    for cells, cols in groups:
        _fig(plots.routing_table(table[cols], title=" = ".join(cells)))


def architectures(result):
    """The best, median and worst scored architectures drawn by the space, each slot coloured by its block."""
    import matplotlib.pyplot as plt

    from . import routing
    from .metrics import SCORE_NAMES
    name = SCORE_NAMES[result.cfg.score]
    _section(SECTIONS[4], f"The best, median and worst architecture by {name}, each routed position "
                          "coloured by the block scoring uses (label: op, block, its probability under training).")
    scores = _ranked(result.scores)
    shown = scores.iloc[list(dict.fromkeys([0, len(scores) // 2, len(scores) - 1]))]
    r = routing.route_cfg(result.net, result.space, shown["arch"].tolist(), result.cfg)
    for i, (which, (_, row)) in enumerate(zip(DRAWN, shown.iterrows())):
        fig, ax = plt.subplots(figsize=DRAW_SIZE, dpi=DRAW_DPI)
        try:
            result.space.draw(row["arch"], routing.arch_table(r, result.space, i), ax=ax,
                              title=f"{which}: {name} {row['score']:.3f}")
        except NotImplementedError as e:
            plt.close(fig)
            _md(f"({e})")
            return
        fig.tight_layout()
        _fig(fig)


def size(result):
    """One-shot accuracy against the stand-alone network's parameters and FLOPs, when the space counts them."""
    complexity = getattr(result.space, "complexity", None)
    if complexity is None:
        return
    import pandas as pd

    from . import plots
    _section(SECTIONS[5], "One-shot accuracy against the stand-alone network's parameters and FLOPs (reference "
                          "scale): how much of the ranking is size alone.")
    cx = pd.DataFrame([complexity(a) for a in result.scores["arch"]], columns=["params", "flops"])
    _fig(plots.against_size(cx, result.scores["acc"]))


def _arch_table(df):
    """Scores as HTML: numbers first, the architecture strings last, wrapped and never cut (they differ late)."""
    cols = [c for c in df if c != "arch"] + ["arch"]
    styler = df[cols].style.format(precision=3).hide(axis="index") \
        .set_properties(subset=cols[:-1], **{"white-space": "nowrap"}) \
        .set_properties(subset=["arch"], **{"text-align": "left", "overflow-wrap": "anywhere",
                                            "font-family": "monospace", "font-size": "85%"})
    return HTML(styler.to_html())


def details(result):
    """Metrics at every K, every recorded number, the top architectures, the config keys off their defaults."""
    import pandas as pd

    from .config import RunConfig
    from .metrics import SCORE_NAMES, by_k
    _section(SECTIONS[6])
    m, truth = result.metrics, result.truth
    if truth is not None:
        _md("Ranking metrics at every K (P@top/bottom-K, Kendall τ within the predicted top/bottom K, best/worst "
            "true rank among the predicted top K):")
        display(by_k(m).round(3))
    numbers = {k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in m.items()
               if "@" not in k and not isinstance(v, (dict, list))}
    display(pd.Series(numbers, name="value").to_frame())
    top = _ranked(result.scores).head(TOP)
    if truth is not None:
        top = top.assign(truth_acc=top["arch"].map(truth.set_index("arch")["acc"]))
    _md(f"The {len(top)} best architectures by {SCORE_NAMES[result.cfg.score]}:")
    display(_arch_table(top))
    base = RunConfig().to_dict()
    diff = pd.Series({k: str(v) for k, v in result.cfg.to_dict().items() if v != base[k]}, name="value", dtype=object)
    display(HTML(_folded(f"{len(diff)} config keys differ from RunConfig's defaults", diff.to_frame().to_html())))


def training_log(log):
    """The training log, folded."""
    lines = log.lines if hasattr(log, "lines") else list(log or ())
    _section(SECTIONS[7])
    text = html.escape("\n".join(lines))
    display(HTML(_folded(f"{len(lines)} line{'' if len(lines) == 1 else 's'}", f"<pre>{text}</pre>")))


def body(result, log=None, to=None):
    """Everything after the headline, in SECTIONS order (sections a space or run cannot fill are left out), then
    the results recorded into ``record_dir(to, result)``."""
    from .record import record
    scores_vs_truth(result)
    training(result)
    block_usage(result)
    architectures(result)
    size(result)
    details(result)
    training_log(log)
    record(record_dir(to, result), **result.metrics, config=result.cfg.to_dict(), history=result.history,
           block_usage=result.usage, scores=result.scores)         # what closekit.read_results / compare.ipynb read


def record_dir(given, result):
    """Where a run notebook's results.json goes: ``given`` (closekit batch passes its job directory), else the run
    directory (a hand-run notebook: where its run is, not the current directory)."""
    return Path(given or result.out_dir)
