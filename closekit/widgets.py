"""GATE explorer (CLOSE §3.3-3.4): a thin ipywidgets shell over ``closekit.routing`` for one run directory.

Pick an architecture (one dropdown per decision when the space can edit: each slot's op, or NDS's stage depths and
widths; a typed arch string; or a notable one), a checkpoint with the epoch slider or a curriculum level (the last
checkpoint of that level); see the architecture with each slot coloured by its GLOW block (``space.draw``), the
GATE's probability table, and the block usage of an architecture set (chosen blocks, or the expected counts under
training's Gumbel sampling) with the change from the previous checkpoint. Space-generic: it knows a space only
through the space protocol (spaces/base.py).
"""
import contextlib

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display

from . import plots, routing as R, spaces
from .checkpoint import load_net, read_checkpoint
from .config import RunConfig
from .evaluate import arch_list

CUSTOM = "(custom)"
PER_ROW = 3                 # op dropdowns per row
ARCH_BLIND = 0.01           # arch_dependence below this: the GATE routes every architecture alike
ROUTERS = {"node": "node-level GATE", "arch": "arch-level GATE",
           "random": "random router: uniform probabilities, the chosen block is a seeded draw"}


def router_note(cfg, level):
    """One line on how this run routes (vanilla, level 1, GATE kind)."""
    if cfg.supernet == "vanilla":
        return "vanilla supernet: slot i always uses its own block i (no GATE, no curriculum)"
    return ROUTERS[cfg.router] + (" (level 1: every slot uses block 0)" if level == 1 else "")


def arch_dependence_note(cfg, s):
    """One line on whether a GATE's routing depends on the architecture (``routing.summary`` ``s``); None when the
    run has no GATE, at level 1, or with < 2 archs."""
    ad = s["arch_dependence"]
    if cfg.supernet != "close" or cfg.router == "random" or s["level"] < 2 or ad != ad:
        return None
    if ad < ARCH_BLIND:
        return (f"routing does not depend on the architecture: its spread across archs is {ad:.1g} of that "
                "across blocks")
    return f"routing depends on the architecture: its spread across archs is {ad:.2g} of that across blocks"


class GateExplorer:
    """The explorer of one run: ``.widget`` (a VBox; the object displays as it), ``.view`` (the last rendered data)."""

    def __init__(self, run_dir, archs="sample:200", arch_seed=0, truth=None):
        self.ckpts = R.checkpoints(run_dir)
        self.cfg = RunConfig.from_dict(read_checkpoint(self.ckpts["path"].iloc[-1])["config"])
        self.space = space = spaces.get(self.cfg.space)
        self.archs = arch_list(space, archs, arch_seed, truth) if isinstance(archs, str) else list(archs)
        self._routes, self._net, self._syncing, self.renders, self.view = {}, (None, None, None), False, 0, {}
        self.notables = R.notable_archs(self.routes(len(self.ckpts) - 1), space, truth)
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
                                     value="chosen", description="usage")
        self._set_ops(self.shown)
        self.notable.observe(self._on_notable, "value")
        self.arch.observe(self._on_arch, "value")
        self.epoch.observe(self._on_epoch, "value")
        self.level.observe(self._on_level, "value")
        self.out = W.interactive_output(self.render, {"arch": self.arch, "index": self.epoch, "usage": self.usage})
        self.widget = W.VBox([W.HBox([self.notable, self.level]), self.op_box, self.arch,
                              W.HBox([self.epoch, self.usage]), self.out])

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    # ---- data (cached per checkpoint) ----
    def net(self, index):
        """(supernet, RunConfig) of checkpoint ``index`` (the last one loaded is kept)."""
        path = self.ckpts["path"].iloc[index]
        if self._net[0] != path:
            net, cfg, _ = load_net(path)
            self._net = (path, net, cfg)
        return self._net[1], self._net[2]

    def routes(self, index):
        """Routing of the explorer's architecture set at checkpoint ``index`` (scoring's routing and seed)."""
        if index not in self._routes:
            net, cfg = self.net(index)
            self._routes[index] = R.route_cfg(net, self.space, self.archs, cfg)
        return self._routes[index]

    # ---- control syncing: one render per user action ----
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
                    w.observe(self._on_op, "value")
                self.op_box.children = [W.HBox(self.ops[i:i + PER_ROW]) for i in range(0, len(self.ops), PER_ROW)]
            for w, (label, opts, value) in zip(self.ops, decisions):
                w.description = str(label)
                if list(w.options) != list(opts):
                    w.options = list(opts)
                w.value = value

    def _on_notable(self, change):
        if not self._syncing and change["new"] != CUSTOM:
            with self._hold():
                self.arch.value = self.notables[change["new"]]

    def _on_arch(self, change):                 # typed by the user; render syncs the op dropdowns
        if not self._syncing:
            with self._hold():
                self.notable.value = self._label(change["new"])

    def _on_op(self, change):
        if self._syncing:
            return
        i = next(k for k, w in enumerate(self.ops) if w is change["owner"])
        with self._hold():
            try:
                text = self.space.to_str(self.space.edit(self.shown, i, change["new"]))
            except ValueError:                  # not an architecture of the space: back to the one drawn
                self._set_ops(self.shown)
                return
            self.arch.value = text
            self.notable.value = self._label(text)

    def _on_epoch(self, change):
        if not self._syncing:
            with self._hold():
                self.level.value = int(self.ckpts["level"].iloc[change["new"]])

    def _on_level(self, change):
        if not self._syncing:
            with self._hold():
                self.epoch.value = int(self.ckpts.index[self.ckpts["level"] == change["new"]][-1])

    # ---- the view ----
    def render(self, arch, index, usage):
        """Draw the view for an arch string, a checkpoint index and a usage mode; keeps its data in ``.view``.

        The architecture is routed and drawn exactly as given (as scoring does); an invalid string prints one
        error line and the last valid architecture stays on view (``.view`` gets an "error" key)."""
        self.renders += 1
        space, error = self.space, None
        try:
            cell = space.coerce(arch)
        except ValueError as e:
            cell, error = self.shown, str(e)
            print(f"arch: {error}; showing {space.to_str(cell)}")
        self.shown = cell
        self._set_ops(cell)
        name, rep = space.to_str(cell), space.canonical_str(cell)
        ck, (net, cfg) = self.ckpts.iloc[index], self.net(index)
        one = R.route_cfg(net, space, [cell], cfg)
        table, r = R.arch_table(one, space), self.routes(index)
        s = R.summary(r)
        note = arch_dependence_note(cfg, s)
        blind = note if note and s["arch_dependence"] < ARCH_BLIND else None
        print(f"epoch {ck.epoch}, level {ck.level}: {router_note(cfg, ck.level)}")
        if rep != name:
            print(f"not its isomorphism class's representative {rep}: routed and drawn as chosen, as scoring does")
        if blind:
            print(blind)
        try:
            fig = space.draw(cell, table, title=f"{name}\nepoch {ck.epoch}, level {ck.level}")
            display(fig)
            plt.close(fig)
        except NotImplementedError:
            pass                                # a space without a drawing: the table below carries the same
        drop = ["slot", "p"] + (["cell"] if table["cell"].nunique() == 1 else [])
        display(table.drop(columns=[c for c in drop if c in table]).round(3))
        use = R.usage_table(r, expected=usage == "expected")
        fig = plots.block_usage(use)
        fig.axes[0].set_title(f"{'expected' if usage == 'expected' else 'chosen'} blocks of {len(r.archs)} archs, "
                              f"epoch {ck.epoch}", fontsize=9)
        display(fig)
        plt.close(fig)
        line = (f"{len(r.archs)} archs: mean routing entropy {s['entropy']:.3f} nats "
                f"({s['entropy_norm']:.0%} of log L), {s['blocks_used']} of {s['level']} blocks chosen")
        change = None
        if index > 0:
            prev = self.ckpts.iloc[index - 1]
            change = R.routing_change(self.routes(index - 1), r)
            line += f"; vs epoch {prev.epoch} (L={prev.level}): {change['changed']:.1%} of " \
                    f"{change['pairs']:,} (arch, slot) assignments changed block"
        print(line)
        self.view = {"arch": name, "representative": rep, "epoch": int(ck.epoch), "level": int(ck.level),
                     "table": table, "usage": use, "summary": s, "change": change, "arch_blind": blind}
        if error is not None:
            self.view["error"] = error


def explorer(run_dir, archs="sample:200", arch_seed=0, truth=None):
    """A ``GateExplorer`` of the run under ``run_dir`` (a run's out_dir or a ``closekit batch`` job dir)."""
    return GateExplorer(run_dir, archs, arch_seed, truth)
