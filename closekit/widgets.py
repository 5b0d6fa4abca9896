"""GATE explorer (CLOSE §3.3-3.4): a thin ipywidgets shell over ``closekit.routing`` for one run directory.

Pick an architecture (one op per edge, a typed arch string, or a notable one), a checkpoint with the epoch
slider or a curriculum level (the last checkpoint of that level); see the cell DAG with each edge coloured by
its GLOW block, the GATE's probability table, and the block usage of an architecture set (chosen blocks, or the
expected counts under training's Gumbel sampling) with the change from the previous checkpoint.
"""
import contextlib

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display

from . import plots, routing as R, spaces
from .config import RunConfig
from .evaluate import arch_list
from .spaces.nb201_arch import EDGES, OPS, coerce, to_str

CUSTOM = "(custom)"
ROUTERS = {"node": "node-level GATE", "arch": "arch-level GATE",
           "random": "random router: uniform probabilities, the chosen block is a seeded draw"}


def router_note(cfg, level):
    """One line on how this run routes (vanilla, level 1, GATE kind)."""
    if cfg.supernet == "vanilla":
        return "vanilla supernet: edge i always uses block i (no GATE, no curriculum)"
    return ROUTERS[cfg.router] + (" (level 1: every edge uses block 0)" if level == 1 else "")


class GateExplorer:
    """The explorer of one run: ``.widget`` (a VBox; the object displays as it), ``.view`` (the last rendered data)."""

    def __init__(self, run_dir, archs="sample:200", arch_seed=0, truth=None):
        self.ckpts = R.checkpoints(run_dir)
        self.cfg = RunConfig.from_dict(R.read_checkpoint(self.ckpts["path"].iloc[-1])["config"])
        self.space = spaces.get(self.cfg.space)
        self.archs = arch_list(self.space, archs, arch_seed, truth) if isinstance(archs, str) else list(archs)
        self._routes, self._net, self._syncing, self.renders, self.view = {}, (None, None, None), False, 0, {}
        self.notables = R.notable_archs(self.routes(len(self.ckpts) - 1), self.space, truth)
        first = next(iter(self.notables))
        # controls
        self.notable = W.Dropdown(options=[CUSTOM, *self.notables], value=first, description="notable",
                                  layout=W.Layout(width="420px"))
        self.ops = [W.Dropdown(options=[(R.SHORT[o], o) for o in OPS], description=f"{s}→{d}",
                               layout=W.Layout(width="160px"), style={"description_width": "36px"})
                    for d, s in EDGES]
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
        self._set_ops(self.arch.value)
        self.notable.observe(self._on_notable, "value")
        self.arch.observe(self._on_arch, "value")
        for w in self.ops:
            w.observe(self._on_op, "value")
        self.epoch.observe(self._on_epoch, "value")
        self.level.observe(self._on_level, "value")
        self.out = W.interactive_output(self.render, {"arch": self.arch, "index": self.epoch, "usage": self.usage})
        self.widget = W.VBox([W.HBox([self.notable, self.level]), W.HBox(self.ops[:3]), W.HBox(self.ops[3:]),
                              self.arch, W.HBox([self.epoch, self.usage]), self.out])

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    # ---- data (cached per checkpoint) ----
    def net(self, index):
        """(supernet, RunConfig) of checkpoint ``index`` (the last one loaded is kept)."""
        path = self.ckpts["path"].iloc[index]
        if self._net[0] != path:
            net, cfg, _ = R.load_net(path)
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
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _label(self, arch):
        return next((k for k, v in self.notables.items() if v == arch), CUSTOM)

    def _set_ops(self, text):
        try:
            arch = coerce(text)
        except ValueError:
            return
        for w, op in zip(self.ops, arch):
            w.value = OPS[op]

    def _on_notable(self, change):
        if not self._syncing and change["new"] != CUSTOM:
            with self._hold():
                self.arch.value = self.notables[change["new"]]
                self._set_ops(self.arch.value)

    def _on_arch(self, change):                 # typed by the user
        if not self._syncing:
            with self._hold():
                self._set_ops(change["new"])
                self.notable.value = self._label(change["new"])

    def _on_op(self, change):
        if not self._syncing:
            with self._hold():
                self.arch.value = to_str([OPS.index(w.value) for w in self.ops])
                self.notable.value = self._label(self.arch.value)

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
        """Draw the view for an arch string, a checkpoint index and a usage mode; keeps its data in ``.view``."""
        self.renders += 1
        try:
            cell = coerce(arch)
        except ValueError as e:
            print(f"arch: {e}")
            self.view = {"error": str(e)}
            return
        ck, (net, cfg) = self.ckpts.iloc[index], self.net(index)
        one = R.route_cfg(net, self.space, [cell], cfg)
        rep, table = one.archs[0], R.arch_table(one)
        print(f"epoch {ck.epoch}, level {ck.level}: {router_note(cfg, ck.level)}")
        if to_str(cell) != rep:
            print(f"shown as its isomorphism-class representative {rep} (what scoring routes)")
        fig = plots.cell_routing(table, one.level, title=f"{rep}\nepoch {ck.epoch}, level {ck.level}")
        display(fig)
        plt.close(fig)
        probs = table[["edge", "op", "live", "block", *[f"p{b}" for b in range(one.level)], "entropy"]].round(3)
        display(probs)
        r = self.routes(index)
        use = R.usage_table(r, expected=usage == "expected")
        fig = plots.block_usage(use)
        fig.axes[0].set_title(f"{'expected' if usage == 'expected' else 'chosen'} blocks of {len(r.archs)} archs, "
                              f"epoch {ck.epoch}", fontsize=9)
        display(fig)
        plt.close(fig)
        s = R.summary(r)
        line = (f"{len(r.archs)} archs: mean routing entropy {s['entropy']:.3f} nats "
                f"({s['entropy_norm']:.0%} of log L), {s['blocks_used']} of {s['level']} blocks chosen")
        change = None
        if index > 0:
            prev = self.ckpts.iloc[index - 1]
            change = R.routing_change(self.routes(index - 1), r)
            line += f"; vs epoch {prev.epoch} (L={prev.level}): {change['changed']:.1%} of " \
                    f"{change['pairs']:,} (arch, edge) assignments changed block"
        print(line)
        self.view = {"arch": rep, "epoch": int(ck.epoch), "level": int(ck.level), "table": table, "usage": use,
                     "summary": s, "change": change}


def explorer(run_dir, archs="sample:200", arch_seed=0, truth=None):
    """A ``GateExplorer`` of the run under ``run_dir`` (a run's out_dir or a ``closekit batch`` job dir)."""
    return GateExplorer(run_dir, archs, arch_seed, truth)
