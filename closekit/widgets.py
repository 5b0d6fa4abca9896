"""GATE explorer (CLOSE §3.3-3.4): one run's routing of an architecture at a checkpoint, drawn by ``space.draw``
coloured by block, with the router's table and (a learned or sampled router) the block usage of an architecture set.
Knows a space only by its protocol and a router only by ``routing.describe``.
"""
import contextlib
import functools
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
DPI = 100                   # PNG resolution of the view's figures, shown at their own size
CACHE = 64                  # drawings / arch routings kept (least recently used dropped first)
PNG_LEVEL = 1               # zlib level: the fastest encoding; the bytes only travel to the browser
PREFETCH_AFTER = 1.0        # s after a render before drawing at other checkpoints: the page shows the render first
MODES = {"chosen blocks": "chosen", "expected (Gumbel)": "expected"}


def arch_dependence_note(stochastic, s):
    """One line on whether a learned router's routing depends on the architecture (``routing.summary`` ``s``)."""
    ad = s["arch_dependence"]
    if not stochastic or s["level"] < 2 or ad != ad:
        return None
    depends = "does not depend" if ad < ARCH_BLIND else "depends"
    return f"routing {depends} on the architecture: its spread across archs is {ad:.2g} of that across blocks"


def png(fig):
    """PNG bytes of a figure as laid out (no bbox cropping: what a script saves is what the page shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_LEVEL})
    plt.close(fig)                              # a no-op for pyplot-free figures
    return buf.getvalue()


def _pre(lines):
    return "<pre style='margin:0;white-space:pre-wrap'>" + html.escape("\n".join(lines)) + "</pre>"


class GateExplorer:
    """The explorer of the run under ``run_dir`` (a run's out_dir or a ``closekit batch`` job dir): ``.widget`` (a
    VBox; the object displays as it), ``.view`` (the last rendered data).

    JupyterLab sends widget messages on kernel subshells (threads): one lock serialises every action, and the
    drawings, made in threads, are pyplot-free. Nets, routings and heatmaps are made once per checkpoint, drawings
    once per (arch, checkpoint); once on a page, ahead at the nearest checkpoints while the user looks."""

    def __init__(self, run_dir, archs="sample:200", arch_seed=0, truth=None):
        self.ckpts = R.checkpoints(run_dir)
        self._lock, self._syncing, self._ahead, self._action = threading.RLock(), False, False, 0
        self.renders, self.view = 0, {}
        self._nets = [load_net(p)[:2] for p in self.ckpts["path"]]
        self.space = space = spaces.get(self._nets[-1][1].space)
        self.label, self.stochastic = R.describe(self._nets[-1][0])
        self.archs = arch_list(space, archs, arch_seed, truth) if isinstance(archs, str) else list(archs)
        self._routes = [R.route_cfg(net, space, self.archs, cfg) for net, cfg in self._nets]
        self.one, self.drawing_png = functools.lru_cache(CACHE)(self._one), functools.lru_cache(CACHE)(self._drawing)
        self._heat = {(i, m): self._heatmap(i, m) for i in range(len(self.ckpts))       # pyplot: here, not in
                      for m in (MODES.values() if self.stochastic else ())}             # handlers' threads
        self.notables = R.notable_archs(self._routes[-1], space, truth, self.stochastic)
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
        last = self.ckpts.index.to_series().groupby(self.ckpts["level"]).max()      # each level's last checkpoint
        self.level = W.Dropdown(options=[(f"L={lv} (epoch {self.ckpts['epoch'][i]})", lv) for lv, i in last.items()],
                                value=last.index[-1], description="level")
        self.usage = W.ToggleButtons(options=list(MODES.items()), value="chosen", description="usage",
                                     layout=W.Layout(display=None if self.stochastic else "none"))
        # the view: widgets changed in place; images at their own size (stretched, a narrow heatmap grew 2k px tall)
        self.status, self.table, self.line = W.HTML(), W.HTML(), W.HTML()
        self.drawing, self.heatmap = (W.Image(format="png", layout=W.Layout(align_self="flex-start", max_width="100%"))
                                      for _ in range(2))
        self.heatmap.layout.display = None if self.stochastic else "none"
        self._set_ops(self.shown)
        # handlers read the widgets' values now, not change["new"]: an action queued behind the lock may be stale
        for w, on in ((self.notable, self._follow(self.arch, lambda: self.notables.get(self.notable.value))),
                      (self.arch, self._follow(self.notable, lambda: self._label(self.arch.value))),
                      (self.epoch, self._follow(self.level, lambda: int(self.ckpts["level"][self.epoch.value]))),
                      (self.level, self._follow(self.epoch, lambda: int(last[self.level.value]))),
                      (self.arch, self._update), (self.epoch, self._update), (self.usage, self._update)):
            w.observe(self._locked(on), "value")
        self.widget = W.VBox([W.HBox([self.notable, self.level]), self.op_box, self.arch,
                              W.HBox([self.epoch, self.usage]), self.status, self.drawing, self.table,
                              self.heatmap, self.line])
        self._update(None)

    def _repr_mimebundle_(self, **kw):
        self._ahead = True                      # on a page: draw ahead from now on, first at every checkpoint
        self._draw_ahead(self.view["arch"], self.epoch.value, len(self.ckpts))
        return self.widget._repr_mimebundle_(**kw)

    # ---- data: made once per checkpoint (nets, routings, heatmaps) or per (arch, checkpoint) ----
    def _one(self, name, index):
        """``routing.arch_table`` of one architecture (string) at checkpoint ``index``."""
        net, cfg = self._nets[index]
        return R.arch_table(R.route_cfg(net, self.space, [name], cfg), self.space)

    def _drawing(self, name, index):
        """PNG of ``space.draw`` of one architecture at checkpoint ``index`` (b"" for a space without a drawing)."""
        ck = self.ckpts.iloc[index]
        try:
            return png(self.space.draw(self.space.coerce(name), self.one(name, index),
                                       title=f"epoch {ck.epoch}, level {ck.level}"))
        except NotImplementedError:
            return b""                          # the table carries the same

    def _heatmap(self, index, usage):
        r = self._routes[index]
        fig = plots.block_usage(R.usage_table(r, expected=usage == "expected"))
        fig.axes[0].set_title(f"{usage} blocks of {len(r.archs)} archs, epoch {self.ckpts['epoch'].iloc[index]}",
                              fontsize=9)
        return png(fig)

    def _draw_ahead(self, name, index, n):
        """In PREFETCH_AFTER s, unless the user acts first, draw ``name`` at the ``n`` checkpoints nearest ``index``."""
        near = sorted(range(len(self.ckpts)), key=lambda i: abs(i - index))[1:n + 1]
        later = threading.Timer(PREFETCH_AFTER, self._prefetch, (name, near, self._action))
        later.daemon = True
        later.start()

    def _prefetch(self, name, indices, action):
        """Draw ``name`` at checkpoints ``indices`` while the user looks; stops at the next action (which waits for
        one drawing at most: under the lock, as drawings in parallel threads slow each other down a lot)."""
        for i in indices:
            with self._lock:
                if self._action != action:
                    return
                self.drawing_png(name, i)

    # ---- control syncing: one lock, one render per user action ----
    def _locked(self, fn):
        def run(change):
            self._action += 1                   # a prefetch stops at its next drawing
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

    def _follow(self, target, value):
        """A handler: ``target`` takes ``value()`` (unless None) after a user's change, not after a sync."""
        def on(change):
            if not self._syncing and (v := value()) is not None:
                with self._hold():
                    target.value = v
        return on

    def _on_op(self, change):                   # the arch follows (and the notable pick, and the view)
        if not self._syncing:
            i = next(k for k, w in enumerate(self.ops) if w is change["owner"])
            try:
                self.arch.value = self.space.to_str(self.space.edit(self.shown, i, change["owner"].value))
            except ValueError:                  # not an architecture of the space: back to the one drawn
                self._set_ops(self.shown)

    def _update(self, change):
        self.render(self.arch.value, self.epoch.value, self.usage.value)

    # ---- the view ----
    def render(self, arch, index, usage):
        """Show an arch string as given (an invalid one: an error line, the last valid one stays) at checkpoint
        ``index`` in usage mode ``usage``; its data goes to ``.view``."""
        with self._lock:
            self.renders += 1
            self._action += 1
            space, error, lines = self.space, None, []
            try:
                cell = space.coerce(arch)
            except ValueError as e:
                cell, error = self.shown, str(e)
                lines.append(f"arch: {error}; showing {space.to_str(cell)}")
            self.shown = cell
            self._set_ops(cell)
            name, rep = space.to_str(cell), space.canonical_str(cell)
            ck, r, table = self.ckpts.iloc[index], self._routes[index], self.one(name, index)
            s = R.summary(r)
            note = arch_dependence_note(self.stochastic, s)
            blind = note if note and s["arch_dependence"] < ARCH_BLIND else None
            lines.append(f"epoch {ck.epoch}, level {ck.level}: {self.label}"
                         + (" (level 1: every slot uses block 0)" if ck.level == 1 else ""))
            if rep != name:
                lines.append(f"not its isomorphism class's representative {rep}: routed and drawn as chosen, "
                             "as scoring does")
            lines += [blind] if blind else []
            self.drawing.value = self.drawing_png(name, index)
            self.drawing.layout.display = None if self.drawing.value else "none"
            if self.stochastic:
                self.heatmap.value = self._heat[index, usage]
            shown = self._table(table)
            change = R.routing_change(self._routes[index - 1], r) if index > 0 else None
            line = self._summary_line(s, r, change, index)
            self.status.value = _pre(lines)
            self.table.value = shown.to_html(index=False, max_rows=None, max_cols=None)
            self.line.value = _pre([line])
            self.view = {"arch": name, "representative": rep, "epoch": int(ck.epoch), "level": int(ck.level),
                         "table": table, "shown": shown, "usage": R.usage_table(r, expected=usage == "expected"),
                         "summary": s, "change": change, "arch_blind": blind, "text": "\n".join([*lines, line])}
            if error is not None:
                self.view["error"] = error
            if self._ahead:
                self._draw_ahead(name, index, 2)

    def _table(self, table):
        """The table under the drawing: every slot with its probabilities, or a fixed router's runs of slots."""
        if not self.stochastic:
            return R.block_runs(table)
        drop = ["slot", "p"] + (["cell"] if table["cell"].nunique() == 1 else [])
        return table.drop(columns=[c for c in drop if c in table]).round(3)

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


explorer = GateExplorer          # explorer(run_dir, archs, arch_seed, truth): the notebooks' name for it
