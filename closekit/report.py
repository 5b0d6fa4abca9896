"""The run report every run notebook shows (CLOSE §5: ranking quality, training, sharing per curriculum level).

Functions over ``closekit.run``'s ``Result``; a run notebook calls ``headline`` and ``body``. The report leads with
the result (the space that ran, the headline against the truth's ceilings, a warning when training failed), then
the figures, then the details; the training log comes last, folded. What differs between spaces comes from the
space's own protocol (``slots``, ``draw``, an optional ``complexity``), never from its name. Heavy libraries are
imported inside the functions, so importing this module is instant.
"""
import html
from pathlib import Path

SECTIONS = ("Result", "Scores against the truth", "Training", "Block usage per curriculum level", "Architectures",
            "Size", "Details", "Training log")
LOG_TAIL = 3              # log lines shown live while a notebook trains
TOP = 10                  # architectures in the details table
DRAWN = ("best", "median", "worst")     # architectures drawn, by one-shot accuracy
DRAW_SIZE = (7.0, 4.2)    # inches per drawn architecture, one per row, at DRAW_DPI: ~1000 px wide with labels
DRAW_DPI = 140            # legible at the report's width (the spaces draw their labels in points)
TABLE_MAX_POSITIONS = 40  # a fixed routing table wider than this is shown per cell type


def config(namespace):
    """The RunConfig of a notebook's parameters: the RunConfig keys among ``namespace`` (its globals), papermill's
    injected ones included; the others take RunConfig's defaults."""
    from dataclasses import fields

    from .config import RunConfig
    names = {f.name for f in fields(RunConfig)}
    return RunConfig.from_dict({k: v for k, v in namespace.items() if k in names}, source="the notebook parameters")


class Log:
    """A ``log`` for ``closekit.run`` that keeps every line and, in a notebook, shows only the latest ones in place
    (``replace`` puts the headline there; the full log goes to the end of the report); prints outside a notebook."""

    def __init__(self):
        self.lines, self._handle = [], None
        try:
            from IPython import get_ipython
            if get_ipython() is not None:
                from IPython.display import display
                self._handle = display({"text/plain": "starting"}, raw=True, display_id=True)
        except ImportError:
            pass

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


def _show(*objs):
    from IPython.display import display
    display(*objs)


def _md(text):
    from IPython.display import Markdown
    _show(Markdown(text))


def _fig(fig):
    import matplotlib.pyplot as plt
    _show(fig)
    plt.close(fig)


def _section(name, note=""):
    _md(f"## {name}" + (f"\n{note}" if note else ""))


def title(result):
    """The space that ran and the supernet (and the ground truth it was ranked against)."""
    m = result.metrics
    kind = "CLOSE" if result.cfg.supernet == "close" else "Vanilla one-shot"
    return f"# {kind} supernet on {result.space.name}" + (f"\nRanked against `{m['truth']}`." if m.get("truth") else "")


def warning_html(text):
    """A warning box that stands out in the notebook and in its HTML export."""
    return ('<div style="border-left:6px solid #c62828;background:#fdecea;padding:8px 12px;margin:6px 0">'
            f"<b>Warning:</b> {html.escape(text)}</div>")


def headline_markdown(result):
    """Title, the headline numbers (or the score summary) and a warning when training failed, as Markdown."""
    from .metrics import headline_text, training_warning
    warn = training_warning(result.history, result.data.num_classes)
    return (f"{title(result)}\n## {SECTIONS[0]}\n**{headline_text(result.metrics)}**\n"
            + (f"\n{warning_html(warn)}\n" if warn else ""))


def headline(result, log=None):
    """Show the headline, in place of ``log``'s live lines when it has them (so the report starts with it)."""
    from IPython.display import Markdown
    text = headline_markdown(result)
    if not (log is not None and log.replace(text)):
        _show(Markdown(text))


def scores_vs_truth(result):
    """Scatter of one-shot against ground-truth accuracy (a note without a truth)."""
    from . import plots
    _section(SECTIONS[1])
    if result.truth is None:
        _md("No ground truth configured (`truth: null`): nothing to rank against. Set `truth` to a shipped name, "
            "a CSV (`arch,acc`), a `closekit truth build` directory or an official file.")
        return
    _fig(plots.score_vs_truth(result.scores, result.truth, result.metrics))


def training(result):
    """Loss and accuracy per epoch, curriculum levels and SRT restarts marked."""
    from . import plots
    _section(SECTIONS[2], "Loss and accuracy of the sampled architectures per epoch (probe scores when "
                          "`eval_every` > 0); dashed lines: curriculum levels, dotted: SRT restarts.")
    _fig(plots.trajectory(result.history, result.cfg.srt_epochs))


def missing_levels(cfg, shown):
    """{level: why nothing is shown} for every curriculum level 1..num_blocks that ``shown`` lacks."""
    if cfg.supernet != "close":
        return {}
    sched, out = list(cfg.cl_schedule), {}
    for level in range(1, len(sched) + 1):
        if level in shown:
            continue
        start = sched[level - 1]
        if start > cfg.epochs:
            out[level] = f"starts at epoch {start}, after the last ({cfg.epochs})"
        elif level < len(sched) and sched[level] <= start:
            out[level] = f"no epoch ends inside it (the next level starts at the same epoch, {start})"
        else:
            out[level] = ("not trained in this session (a resumed run shows the levels it trained; "
                          "gate_explorer.ipynb reads every level's snapshot)")
    return out


def _fixed_table(usage):
    """The level x position table of blocks when routing does not depend on the architecture (every position of a
    level uses one block), else None."""
    used = usage[usage["count"] > 0]
    if used.empty or used.groupby(["level", "position"])["block"].nunique().max() > 1:
        return None
    order = used.drop_duplicates("position").sort_values("slot")["position"].tolist()
    return used.pivot(index="level", columns="position", values="block")[order].sort_index()


def block_usage(result):
    """GLOW-block use per curriculum level: a level x position table when routing is fixed, else heatmaps; a note
    for every level without data."""
    from . import plots
    _section(SECTIONS[3], "Which block each routed position uses at the last epoch of every curriculum level, over "
                          "the probe architectures (a seeded sample of the scored ones).")
    usage, cfg = result.usage, result.cfg
    if cfg.supernet != "close" or usage is None or not len(usage):
        _md("Vanilla supernet: every position always uses its own block (no sharing to show).")
        return
    notes = missing_levels(cfg, set(usage["level"].unique()))
    by_reason = {}
    for level, why in notes.items():
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
        _fig(plots.routing_table(table[cols], title=" = ".join(cells) if len(groups) > 1 or len(cells) > 1 else ""))


def _cell_groups(result, table):
    """[([cell types], [their positions in the first])]: cells whose tables are equal are shown once, and the
    table is split by cell type only when it is too wide to read."""
    slots = result.space.slots(result.scores["arch"].iloc[0])
    cell_of = dict(zip(slots["label"], slots["cell"]))
    cells = list(dict.fromkeys(cell_of.get(p, "") for p in table.columns))
    if len(table.columns) <= TABLE_MAX_POSITIONS or len(cells) == 1:
        return [(cells, list(table.columns))]
    groups = []
    for c in cells:
        cols = [p for p in table.columns if cell_of.get(p, "") == c]
        t = table[cols].to_numpy()
        same = next((g for g in groups if g[2].shape == t.shape and (g[2] == t).all()), None)
        if same:
            same[0].append(c)
        else:
            groups.append(([c], cols, t))
    return [(g[0], g[1]) for g in groups]


def architectures(result):
    """The best, median and worst scored architectures drawn by the space, each slot coloured by its block."""
    from . import routing
    import matplotlib.pyplot as plt
    _section(SECTIONS[4], "The best, median and worst architecture by one-shot accuracy, each routed position "
                          "coloured by the block scoring uses (label: op, block, its probability under training).")
    scores = result.scores.sort_values(["acc", "loss"], ascending=[False, True])
    picks = list(dict.fromkeys([0, len(scores) // 2, len(scores) - 1]))
    shown = scores.iloc[picks]
    r = routing.route(result.net, result.space, shown["arch"].tolist(), routing=result.cfg.eval_routing,
                      seed=result.cfg.eval_seed)
    for i, (name, (_, row)) in enumerate(zip(DRAWN, shown.iterrows())):
        fig, ax = plt.subplots(figsize=DRAW_SIZE, dpi=DRAW_DPI)
        try:
            result.space.draw(row["arch"], routing.arch_table(r, result.space, i), ax=ax,
                              title=f"{name}: one-shot accuracy {row['acc']:.3f}")
        except NotImplementedError as e:
            plt.close(fig)
            _md(f"({e})")
            return
        fig.tight_layout()
        _fig(fig)


def size(result):
    """One-shot accuracy against the stand-alone network's parameters and FLOPs, when the space counts them."""
    from . import plots
    complexity = getattr(result.space, "complexity", None)
    if complexity is None:
        return
    import pandas as pd
    _section(SECTIONS[5], "One-shot accuracy against the stand-alone network's parameters and FLOPs (reference "
                          "scale): how much of the ranking is size alone.")
    cx = pd.DataFrame([complexity(a) for a in result.scores["arch"]], columns=["params", "flops"])
    _fig(plots.against_size(cx, result.scores["acc"]))


def _value(v):
    """A number in 4 significant digits, anything else as text."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _arch_table(df):
    """Scores as HTML: numbers in 3 decimals on one line, the architecture strings last and wrapped, never cut
    (they often differ late)."""
    from IPython.display import HTML
    cols = [c for c in df if c != "arch"] + ["arch"]
    styler = df[cols].style.format(precision=3).hide(axis="index") \
        .set_properties(subset=cols[:-1], **{"white-space": "nowrap"}) \
        .set_properties(subset=["arch"], **{"text-align": "left", "overflow-wrap": "anywhere",
                                            "font-family": "monospace", "font-size": "85%"})
    return HTML(styler.to_html())


def _folded(summary, body):
    """HTML that shows ``summary`` and opens to ``body``."""
    return f"<details><summary>{html.escape(summary)} (click to open)</summary>{body}</details>"


def details(result):
    """The metrics at every K, every recorded number once, the top architectures, the config keys that differ
    from RunConfig's defaults (folded)."""
    import pandas as pd
    from IPython.display import HTML

    from .config import RunConfig
    from .metrics import by_k
    _section(SECTIONS[6])
    m = result.metrics
    if result.truth is not None:
        _md("Ranking metrics at every K (P@top/bottom-K, Kendall τ within the predicted top/bottom K, best/worst "
            "true rank among the predicted top K):")
        _show(by_k(m).round(3))
    numbers = {k: _value(v) for k, v in m.items() if "@" not in k and not isinstance(v, (dict, list))}
    _show(pd.Series(numbers, name="value").to_frame())
    top = result.scores.sort_values(["acc", "loss"], ascending=[False, True]).head(TOP)
    if result.truth is not None:
        top = top.assign(truth_acc=top["arch"].map(result.truth.set_index("arch")["acc"]))
    _md(f"The {len(top)} best architectures by one-shot accuracy:")
    _show(_arch_table(top))
    base, cfg = RunConfig().to_dict(), result.cfg.to_dict()
    diff = pd.Series({k: str(v) for k, v in cfg.items() if v != base[k]}, name="value", dtype=object)
    _show(HTML(_folded(f"{len(diff)} config keys differ from RunConfig's defaults", diff.to_frame().to_html())))


def training_log(log):
    """The training log, folded."""
    from IPython.display import HTML
    lines = log.lines if hasattr(log, "lines") else list(log or ())
    _section(SECTIONS[7])
    text = html.escape("\n".join(lines))
    _show(HTML(_folded(f"{len(lines)} line{'' if len(lines) == 1 else 's'}", f"<pre>{text}</pre>")))


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
    record(record_dir(to, result), **results(result))


def record_dir(given, result):
    """Where a run notebook's results.json goes: ``given`` (closekit batch passes its job directory), else the run
    directory (a hand-run notebook: where its run is, not the current directory)."""
    return Path(given or result.out_dir)


def results(result):
    """What a run notebook records (for ``closekit.read_results`` / compare.ipynb)."""
    return dict(**result.metrics, config=result.cfg.to_dict(), history=result.history, block_usage=result.usage,
                scores=result.scores)
