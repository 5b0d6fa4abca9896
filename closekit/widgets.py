"""GATE explorer (CLOSE §3.3-3.4): a thin ipywidgets shell over ``closekit.routing`` for one run directory.

Pick an architecture (one dropdown per decision when the space can edit: each slot's op, or NDS's stage depths and
widths; a typed arch string; or a notable one), a checkpoint with the epoch slider or a curriculum level (the last
checkpoint of that level); see the architecture with each slot coloured by its GLOW block (``space.draw``), the
router's table for it, and, where routing is sampled or learned, the block usage of an architecture set (chosen
blocks, or the expected counts under training's Gumbel sampling) with the change from the previous checkpoint.
A fixed router (NDS's split table, vanilla) is shown as its position -> block table, without probabilities.

Keeps up in JupyterLab: nets and routings are loaded once per checkpoint, PNGs cached per (arch, checkpoint), the
view's widgets updated in place. JupyterLab sends widget messages on kernel subshells (threads), so one lock
serialises every user action and the figures are pyplot-free or closed under it. Space-generic: it knows a space
only through the space protocol (spaces/base.py) and a router only through ``routing.describe``.
"""
import contextlib
import html
import io
import threading

import ipywidgets as W
import matplotlib.pyplot as plt

from . import plots, routing as R, spaces
from .checkpoint import load_net
from .evaluate import arch_list

CUSTOM = "(custom)"
PER_ROW = 3                 # op dropdowns per row
ARCH_BLIND = 0.01           # arch_dependence below this: the GATE routes every architecture alike
DPI = 100                   # PNG resolution of the view's figures
CACHE = 64                  # drawings / arch routings kept (oldest dropped first)
PNG_LEVEL = 1               # zlib level: the fastest encoding; the bytes only travel to the browser


def router_note(label, level):
    """One line on how this run routes (``routing.describe``'s label) at ``level``."""
    return label + (" (level 1: every slot uses block 0)" if level == 1 else "")


def arch_dependence_note(stochastic, s):
    """One line on whether a learned router's routing depends on the architecture (``routing.summary`` ``s``); None
    for a fixed table, at level 1, or with < 2 archs."""
    ad = s["arch_dependence"]
    if not stochastic or s["level"] < 2 or ad != ad:
        return None
    if ad < ARCH_BLIND:
        return (f"routing does not depend on the architecture: its spread across archs is {ad:.1g} of that "
                "across blocks")
    return f"routing depends on the architecture: its spread across archs is {ad:.2g} of that across blocks"


def png(fig):
    """PNG bytes of a figure as laid out (no bbox cropping: what a script saves is what the page shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_LEVEL})
    plt.close(fig)                              # a no-op for pyplot-free figures
    return buf.getvalue()


def _put(cache, key, value):
    cache[key] = value
    while len(cache) > CACHE:
        cache.pop(next(iter(cache)))
    return value


class GateExplorer:
    """The explorer of one run: ``.widget`` (a VBox; the object displays as it), ``.view`` (the last rendered data)."""

    def __init__(self, run_dir, archs="sample:200", arch_seed=0, truth=None):
        self.ckpts = R.checkpoints(run_dir)
        self._lock, self._syncing, self.renders, self.view = threading.RLock(), False, 0, {}
        self._nets = [load_net(p)[:2] for p in self.ckpts["path"]]           # every checkpoint, loaded once
        self.space = space = spaces.get(self._nets[-1][1].space)
        self.label, self.stochastic = R.describe(self._nets[-1][0])
        self.archs = arch_list(space, archs, arch_seed, truth) if isinstance(archs, str) else list(archs)
        self._one, self._png, self._heat = {}, {}, {}
        self._routes = {i: R.route_cfg(net, space, self.archs, cfg) for i, (net, cfg) in enumerate(self._nets)}
        self.notables = R.notable_archs(self.routes(len(self.ckpts) - 1), space, truth, self.stochastic)
        self._notable_str = {k: space.to_str(space.coerce(v)) for k, v in self.notables.items()}
        first = next(iter(self.notables))
        self.shown = space.coerce(self.notables[first])             # the architecture drawn: the last valid one
        self.editable = hasattr(space, "choices") and hasattr(space, "edit")
        # controls
        self.notable = W.Dropdown(options=[CUSTOM, *self.notables], value=first, description="notable",
                                  layout=W.Layout(width="420px"))
        self.ops, self.op_box = [], W.VBox(layout=W.Layout(display=None if self.editable else "none"))
        self.arch = W.Text(value=self.notables[first], description="arch", continuous_update=False,
                           layout=W.Layout(width="760px"))
        self.epoch = W.SelectionSlider(options=[(f"{e} (L={lv})", i) for i, (e, lv) in
                                                enumerate(zip(self.ckpts["epoch"], self.ckpts["level"]))],
                                       value=len(self.ckpts) - 1, description="epoch", continuous_update=False,
                                       layout=W.Layout(width="520px"))
        ends = self.ckpts.groupby("level")["epoch"].max()               # last checkpoint of each level
        self.level = W.Dropdown(options=[(f"L={lv} (epoch {e})", lv) for lv, e in ends.items()],
                                value=ends.index[-1], description="level")
        self.usage = W.ToggleButtons(options=[("chosen blocks", "chosen"), ("expected (Gumbel)", "expected")],
                                     value="chosen", description="usage",
                                     layout=W.Layout(display=None if self.stochastic else "none"))
        # the view: widgets whose values change in place
        self.status, self.table, self.line = W.HTML(), W.HTML(), W.HTML()
        self.drawing, self.heatmap = W.Image(format="png"), W.Image(format="png")
        if not self.stochastic:
            self.heatmap.layout.display = "none"
        self._set_ops(self.shown)
        for w, on in ((self.notable, self._on_notable), (self.arch, self._on_arch), (self.epoch, self._on_epoch),
                      (self.level, self._on_level), (self.arch, self._update), (self.epoch, self._update),
                      (self.usage, self._update)):
            w.observe(self._locked(on), "value")
        self.widget = W.VBox([W.HBox([self.notable, self.level]), self.op_box, self.arch,
                              W.HBox([self.epoch, self.usage]), self.status, self.drawing, self.table,
                              self.heatmap, self.line])
        self._update(None)
        for i in range(len(self.ckpts)) if self.stochastic else ():      # every heatmap now: controls stay fast
            for mode in ("chosen", "expected"):
                self.usage_png(i, mode)

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    # ---- data (cached per checkpoint) ----
    def routes(self, index):
        """Routing of the explorer's architecture set at checkpoint ``index`` (scoring's routing and seed)."""
        return self._routes[index]

    def one(self, name, index):
        """``routing.arch_table`` of one architecture (string) at checkpoint ``index``."""
        key = (name, index)
        if key not in self._one:
            net, cfg = self._nets[index]
            _put(self._one, key, R.arch_table(R.route_cfg(net, self.space, [name], cfg), self.space))
        return self._one[key]

    def drawing_png(self, cell, name, index):
        """PNG of ``space.draw`` of one architecture at checkpoint ``index`` (b"" for a space without a drawing)."""
        if (name, index) not in self._png:
            ck = self.ckpts.iloc[index]
            try:
                data = png(self.space.draw(cell, self.one(name, index), title=f"epoch {ck.epoch}, level {ck.level}"))
            except NotImplementedError:
                data = b""                      # the table carries the same
            _put(self._png, (name, index), data)
        return self._png[name, index]

    # ---- control syncing: one lock, one render per user action ----
    def _locked(self, fn):
        def run(change):
            with self._lock:
                fn(change)
        return run

    @contextlib.contextmanager
    def _hold(self):
        was, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = was

    def _label(self, text):
        try:
            name = self.space.to_str(self.space.coerce(text))
        except ValueError:
            return CUSTOM
        return next((k for k, v in self._notable_str.items() if v == name), CUSTOM)

    def _set_ops(self, arch):
        """The dropdowns show ``arch``: one per decision (label, its options, its value), a few per row."""
        if not self.editable:
            return
        decisions = self.space.choices(arch)
        with self._hold():
            if len(self.ops) != len(decisions):                          # first call, or another decision count
                self.ops = [W.Dropdown(layout=W.Layout(width="170px"), style={"description_width": "64px"})
                            for _ in range(len(decisions))]
                for w in self.ops:
                    w.observe(self._locked(self._on_op), "value")
                self.op_box.children = [W.HBox(self.ops[i:i + PER_ROW]) for i in range(0, len(self.ops), PER_ROW)]
            for w, (label, opts, value) in zip(self.ops, decisions):
                w.description = str(label)
                if list(w.options) != list(opts):
                    w.options = list(opts)
                w.value = value

    # handlers read the widgets' values now, not change["new"]: an action queued behind the lock may be stale
    def _on_notable(self, change):
        if not self._syncing and self.notable.value != CUSTOM:
            with self._hold():
                self.arch.value = self.notables[self.notable.value]

    def _on_arch(self, change):                 # typed by the user; render syncs the op dropdowns
        if not self._syncing:
            with self._hold():
                self.notable.value = self._label(self.arch.value)

    def _on_op(self, change):
        if self._syncing:
            return
        i = next(k for k, w in enumerate(self.ops) if w is change["owner"])
        with self._hold():
            try:
                text = self.space.to_str(self.space.edit(self.shown, i, change["owner"].value))
            except ValueError:                  # not an architecture of the space: back to the one drawn
                self._set_ops(self.shown)
                return
            self.arch.value = text
            self.notable.value = self._label(text)

    def _on_epoch(self, change):
        if not self._syncing:
            with self._hold():
                self.level.value = int(self.ckpts["level"].iloc[self.epoch.value])

    def _on_level(self, change):
        if not self._syncing:
            with self._hold():
                self.epoch.value = int(self.ckpts.index[self.ckpts["level"] == self.level.value][-1])

    def _update(self, change):
        self.render(self.arch.value, self.epoch.value, self.usage.value)

    # ---- the view ----
    def render(self, arch, index, usage):
        """Update the view for an arch string, a checkpoint index and a usage mode; keeps its data in ``.view``.

        The architecture is routed and drawn exactly as given (as scoring does); an invalid string shows one
        error line and the last valid architecture stays on view (``.view`` gets an "error" key)."""
        with self._lock:
            self.renders += 1
            space, error, lines = self.space, None, []
            try:
                cell = space.coerce(arch)
            except ValueError as e:
                cell, error = self.shown, str(e)
                lines.append(f"arch: {error}; showing {space.to_str(cell)}")
            self.shown = cell
            self._set_ops(cell)
            name, rep = space.to_str(cell), space.canonical_str(cell)
            ck, r, table = self.ckpts.iloc[index], self.routes(index), self.one(name, index)
            s = R.summary(r)
            note = arch_dependence_note(self.stochastic, s)
            blind = note if note and s["arch_dependence"] < ARCH_BLIND else None
            lines.append(f"epoch {ck.epoch}, level {ck.level}: {router_note(self.label, ck.level)}")
            if rep != name:
                lines.append(f"not its isomorphism class's representative {rep}: routed and drawn as chosen, "
                             "as scoring does")
            lines += [blind] if blind else []
            self.drawing.value = self.drawing_png(cell, name, index)
            self.drawing.layout.display = None if self.drawing.value else "none"
            shown = self._table(table)
            use = R.usage_table(r, expected=usage == "expected")
            if self.stochastic:
                self.heatmap.value = self.usage_png(index, usage)
            change = R.routing_change(self.routes(index - 1), r) if index > 0 else None
            line = self._summary_line(s, r, change, index)
            self.status.value = _pre(lines)
            self.table.value = shown.to_html(index=False, max_rows=None, max_cols=None)
            self.line.value = _pre([line])
            self.view = {"arch": name, "representative": rep, "epoch": int(ck.epoch), "level": int(ck.level),
                         "table": table, "shown": shown, "usage": use, "summary": s, "change": change,
                         "arch_blind": blind, "text": "\n".join([*lines, line])}
            if error is not None:
                self.view["error"] = error

    def _table(self, table):
        """The table under the drawing: every slot with its probabilities, or a fixed router's runs of slots."""
        if not self.stochastic:
            return R.block_runs(table)
        drop = ["slot", "p"] + (["cell"] if table["cell"].nunique() == 1 else [])
        return table.drop(columns=[c for c in drop if c in table]).round(3)

    def usage_png(self, index, usage):
        """PNG of the block-usage heatmap at checkpoint ``index`` (kept for every checkpoint and mode)."""
        if (index, usage) not in self._heat:
            r = self.routes(index)
            fig = plots.block_usage(R.usage_table(r, expected=usage == "expected"))
            fig.axes[0].set_title(f"{usage} blocks of {len(r.archs)} archs, epoch {self.ckpts['epoch'].iloc[index]}",
                                  fontsize=9)
            self._heat[index, usage] = png(fig)
        return self._heat[index, usage]

    def _summary_line(self, s, r, change, index):
        if self.stochastic:
            line = (f"{len(r.archs)} archs: mean routing entropy {s['entropy']:.3f} nats "
                    f"({s['entropy_norm']:.0%} of log L), {s['blocks_used']} of {s['level']} blocks chosen")
        else:
            line = f"{len(r.archs)} archs on one table: {s['blocks_used']} of {s['level']} blocks in it"
        if change is not None:
            prev = self.ckpts.iloc[index - 1]
            line += (f"; vs epoch {prev.epoch} (L={prev.level}): {change['changed']:.1%} of "
                     f"{change['pairs']:,} (arch, slot) assignments changed block")
        return line


def _pre(lines):
    return "<pre style='margin:0;white-space:pre-wrap'>" + html.escape("\n".join(lines)) + "</pre>"


def explorer(run_dir, archs="sample:200", arch_seed=0, truth=None):
    """A ``GateExplorer`` of the run under ``run_dir`` (a run's out_dir or a ``closekit batch`` job dir)."""
    return GateExplorer(run_dir, archs, arch_seed, truth)
