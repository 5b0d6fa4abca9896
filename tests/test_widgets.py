"""The GATE explorer headless: build it on a run directory, change each control, and check that the view it
draws (``.view``, its text and its widgets' values) changes, with one render per user action; that actions from
several threads (JupyterLab's comm subshells) render one at a time and draw every NB301 edge at its nodes; and
that a fixed-table router (NDS) is shown as its table, without GATE, Gumbel or entropy."""
import threading
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import closekit
from closekit import routing, widgets
from closekit.train import Trainer, snapshots
from closekit.widgets import CUSTOM, explorer
from conftest import tiny_cfg

SPACE = closekit.spaces.get("nb201")
ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG"


def tiny_run(path, **kw):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny_cfg(train_limit=256, **kw)
        _, data, net = closekit.build(cfg)
        closekit.train(net, data, cfg, out_dir=path, log=lambda *_: None, on_epoch_end=snapshots(every=1))
    finally:
        torch.set_num_threads(n)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Tiny CLOSENet, 4 epochs, levels 1, 2, 3, 3, a snapshot every epoch."""
    return tiny_run(tmp_path_factory.mktemp("run"), epochs=4, cl_schedule=(1, 2, 3))


@pytest.fixture
def ex(run_dir, capsys):
    archs = SPACE.sample_list(12, 0)
    truth = pd.DataFrame({"arch": [SPACE.canonical_str(a) for a in archs], "acc": range(12)})
    e = explorer(run_dir, archs=archs, truth=truth)
    capsys.readouterr()
    return e


def act(ex, capsys, fn):
    """Do one user action; (renders it caused, the view's text)."""
    before = ex.renders
    fn()
    assert capsys.readouterr().out == ""                                   # nothing printed: widgets updated
    return ex.renders - before, ex.view["text"]


def ops(arch):
    return SPACE.slots(arch)["op"].tolist()


def dropdowns(ex):
    return [w.value for w in ex.ops]


def test_builds_with_the_last_checkpoint(ex):
    assert ex.renders == 1 and ex.view["epoch"] == 4 and ex.view["level"] == 3
    assert ex.epoch.continuous_update is False and ex.arch.continuous_update is False
    assert [lbl for lbl, _ in ex.epoch.options] == ["1 (L=1)", "2 (L=2)", "3 (L=3)", "4 (L=3)"]
    assert [v for _, v in ex.level.options] == [1, 2, 3] and ex.level.value == 3
    assert ex.notable.value.startswith("best by truth") and ex.view["arch"] == ex.notables[ex.notable.value]
    assert dropdowns(ex) == ops(ex.view["arch"]) and [w.description for w in ex.ops] == SPACE.slots(
        ex.view["arch"])["label"].tolist()
    assert [len(row.children) for row in ex.op_box.children] == [3, 3]            # a few dropdowns per row
    assert list(ex.view["table"].columns[:7]) == ["cell", "slot", "label", "op", "live", "param", "block"]
    assert ex.view["usage"]["count"].sum() == 6 * 12 and ex.view["change"]["pairs"] == 6 * 12
    assert plt.get_fignums() == []                                       # every figure closed after drawing
    assert bytes(ex.drawing.value[:4]) == bytes(ex.heatmap.value[:4]) == PNG and "<table" in ex.table.value
    assert ex._repr_mimebundle_()["text/plain"].startswith("VBox")


def test_op_dropdown(ex, capsys):
    old = ex.view["arch"]
    new_op = "conv1x1" if ex.ops[0].value != "conv1x1" else "conv3x3"
    n, text = act(ex, capsys, lambda: setattr(ex.ops[0], "value", new_op))
    assert n == 1 and ex.view["arch"] != old and ex.notable.value == CUSTOM
    assert ex.arch.value == ex.view["arch"] and ex.view["table"]["op"][0] == new_op
    assert "epoch 4, level 3: node-level GATE" in text and "p0" in ex.table.value and "entropy" in ex.table.value


def test_non_representative_cell_is_drawn_as_chosen(ex, capsys):
    """Old behaviour: routed and drawn the class representative while the dropdowns showed the choice."""
    start = SPACE.coerce(ex.view["arch"])
    i, op = next((i, op) for i, (_, opts, _) in enumerate(SPACE.choices(start)) for op in opts
                 if SPACE.canonical(SPACE.edit(start, i, op)) != SPACE.edit(start, i, op))
    cell = SPACE.to_str(SPACE.edit(start, i, op))
    n, text = act(ex, capsys, lambda: setattr(ex.ops[i], "value", op))
    assert n == 1 and ex.view["arch"] == cell == ex.arch.value and ex.view["representative"] != cell
    assert ex.view["table"]["op"].tolist() == dropdowns(ex) == ops(cell)
    assert sum("representative" in line for line in text.splitlines()) == 1 and SPACE.canonical_str(cell) in text


def test_notable_dropdown_one_render_and_ops_follow(ex, capsys):
    label = next(k for k in ex.notables if k.startswith("worst"))
    n, text = act(ex, capsys, lambda: setattr(ex.notable, "value", label))
    assert n == 1 and ex.view["arch"] == ex.notables[label] == ex.arch.value
    assert dropdowns(ex) == ops(ex.notables[label])


def test_typed_arch_routed_as_given(ex, capsys):
    cell = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"    # dead convs: not canonical
    n, text = act(ex, capsys, lambda: setattr(ex.arch, "value", cell))
    assert n == 1 and "representative" in text and ex.view["arch"] == cell and "error" not in ex.view
    assert dropdowns(ex) == ops(cell) == ex.view["table"]["op"].tolist() and ex.notable.value == CUSTOM


def test_bad_arch_keeps_the_last_valid_one(ex, capsys):
    """Old behaviour: one error line replaced the whole view and the dropdowns stayed stale."""
    good = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    act(ex, capsys, lambda: setattr(ex.arch, "value", good))
    n, text = act(ex, capsys, lambda: setattr(ex.arch, "value", "not an arch"))
    lines = text.splitlines()
    assert n == 1 and lines[0].startswith("arch: bad NB201 architecture string") and lines[0].endswith(
        f"; showing {good}")
    assert sum(line.startswith("arch:") for line in lines) == 1 and "epoch 4, level 3" in text
    assert ex.view["arch"] == good and "error" in ex.view and dropdowns(ex) == ops(good)
    assert ex.view["table"]["op"].tolist() == ops(good) and ex.notable.value == CUSTOM
    n, _ = act(ex, capsys, lambda: setattr(ex.ops[5], "value", "pool3x3"))       # edits the arch on view
    assert n == 1 and ex.view["arch"] == good.replace("nor_conv_1x1~2", "avg_pool_3x3~2") and "error" not in ex.view


def test_epoch_slider_and_level_selector_follow_each_other(ex, capsys):
    usage3 = ex.view["usage"]
    n, text = act(ex, capsys, lambda: setattr(ex.epoch, "value", 1))
    assert n == 1 and ex.view["epoch"] == 2 and ex.view["level"] == 2 and ex.level.value == 2
    assert not ex.view["usage"].equals(usage3)
    assert {"p0", "p1"} <= set(ex.view["table"]) and "p2" not in ex.view["table"]
    assert "vs epoch 1 (L=1)" in text
    n, text = act(ex, capsys, lambda: setattr(ex.level, "value", 1))
    assert n == 1 and ex.epoch.value == 0 and ex.view["epoch"] == 1 and ex.view["change"] is None
    assert "level 1: every slot uses block 0" in text and (ex.view["table"]["p"] == 1).all()
    assert ex.view["arch_blind"] is None and "does not depend" not in text      # level 1: nothing to depend on
    n, _ = act(ex, capsys, lambda: setattr(ex.level, "value", 3))
    assert n == 1 and ex.epoch.value == 3 and ex.view["epoch"] == 4           # the last checkpoint of level 3


def test_usage_toggle(ex, capsys):
    n, _ = act(ex, capsys, lambda: setattr(ex.usage, "value", "expected"))
    u = ex.view["usage"]
    assert n == 1 and "expected" in u and u.groupby("position")["expected"].sum().round(4).eq(12).all()
    assert list(u.drop_duplicates("slot")["position"]) == SPACE.slots(ex.view["arch"])["label"].tolist()


def test_arch_blind_gate_is_reported(tmp_path, capsys):
    """A freshly initialised GATE at level 3 routes every architecture alike: the view says so."""
    cfg = tiny_cfg(cl_schedule=(1, 1, 1), train_limit=64)
    _, data, net = closekit.build(cfg)
    trainer = Trainer(net, data, cfg, out_dir=tmp_path, log=lambda *_: None)
    trainer.epoch_start(1)
    trainer.save()
    archs = SPACE.sample_list(12, 0)
    assert int(net.level) == 3 and routing.summary(routing.route_cfg(net, SPACE, archs, cfg))["arch_dependence"] < 0.01
    ex = explorer(tmp_path, archs=archs)
    text = ex.view["text"]
    assert "routing does not depend on the architecture: its spread across archs is" in text
    assert ex.view["arch_blind"].startswith("routing does not depend") and ex.view["level"] == 3


def test_vanilla_run(tmp_path, capsys):
    ex = explorer(tiny_run(tmp_path, supernet="vanilla", epochs=2), archs="sample:5")
    text = ex.view["text"]
    assert ex.view["level"] == 6 and [v for _, v in ex.level.options] == [6] and "vanilla: slot i" in text
    assert ex.view["table"]["block"].tolist() == list(range(6)) and (ex.view["table"]["p"] == 1).all()
    assert ex.usage.layout.display == "none" and "entropy" not in text      # a fixed table: no Gumbel, no entropy
    assert ex.view["summary"]["arch_dependence"] < 0.01                         # one-hot for every arch ...
    assert ex.view["arch_blind"] is None and "does not depend" not in text      # ... but there is no GATE


def test_nds_run_edits_stage_decisions(tmp_path, capsys):
    """NDS has no GATE and no per-slot ops: its dropdowns are the stages' depths and widths (aw_nas keys)."""
    nds = closekit.spaces.get("nds-resnet")
    cfg = closekit.RunConfig.from_yaml(ROOT / "params/nds/resnet-smoke.yaml", dataset="synthetic", image_size=8,
                                       train_limit=128, epochs=1, cl_schedule=(1, 1, 1), num_blocks=3, device="cpu")
    _, data, net = closekit.build(cfg)
    closekit.train(net, data, cfg, out_dir=tmp_path, log=lambda *_: None)
    ex = explorer(tmp_path, archs=["d1_2_3-w16_32_64", "d4_4_4-w64_64_64"])
    capsys.readouterr()
    assert [w.description for w in ex.ops] == [f"{k}.{s}" for k in ("depths", "widths") for s in range(3)]
    assert dropdowns(ex) == list(nds.coerce(ex.view["arch"]))
    start = nds.coerce(ex.view["arch"])
    n, _ = act(ex, capsys, lambda: setattr(ex.ops[0], "value", 6))                  # stage 1 depth -> 6
    assert n == 1 and nds.coerce(ex.view["arch"]) == (6, *start[1:]) and ex.arch.value == ex.view["arch"]
    assert int(ex.view["table"].query("cell == 'stage1'")["live"].sum()) == 5        # positions 2..6 of stage 1
    # a fixed split table: shown as its runs of positions, whole; no GATE, Gumbel, entropy or uncertainty
    text = ex.view["text"]
    assert "split table" in text and "GATE" not in text and "entropy" not in text
    assert ex.usage.layout.display == "none" and ex.heatmap.layout.display == "none"
    assert not any("uncertain" in k or "confident" in k for k in ex.notables)
    shown = ex.view["shown"]
    assert list(shown.columns) == ["cell", "from", "to", "block", "live"] and len(shown) < len(ex.view["table"]) / 3
    assert "<td>...</td>" not in ex.table.value and ex.table.value.count("<tr") == len(shown) + 1


def test_actions_from_threads_render_one_at_a_time(ex, capsys, monkeypatch):
    """JupyterLab handles widget messages on kernel subshells (threads): a second action waits for the first
    render (old behaviour: both drew at once through pyplot's shared state; edges came loose, titles clipped)."""
    inside, most, entered, release = [0], [0], threading.Event(), threading.Event()
    real = routing.summary

    def slow(*args):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        entered.set()
        release.wait(10)
        try:
            return real(*args)
        finally:
            inside[0] -= 1
    monkeypatch.setattr(routing, "summary", slow)
    before = ex.renders
    first = threading.Thread(target=setattr, args=(ex.epoch, "value", 1))
    second = threading.Thread(target=setattr, args=(ex.usage, "value", "expected"))
    first.start()
    assert entered.wait(10)
    second.start()
    second.join(1.0)                            # a second action while the first is rendering
    release.set()
    first.join(30)
    second.join(30)
    assert most[0] == 1 and ex.renders - before == 2
    assert ex.view["epoch"] == 2 and "expected" in ex.view["usage"]


def nb301_edges_at_nodes(fig, png):
    """Every edge of an NB301 drawing starts and ends inside a node marker, in the PNG's pixels (uncropped), and
    the title lies inside the image."""
    (ax,) = fig.axes
    w, h = (fig.get_size_inches() * widgets.DPI).round().astype(int)
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (w, h)
    fig.set_dpi(widgets.DPI)
    fig.canvas.draw()
    nodes = [(c.get_offset_transform().transform(c.get_offsets())[0], np.sqrt(c.get_sizes()[0]) / 2 * widgets.DPI / 72)
             for c in ax.collections]
    edges = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(nodes) == 12 and len(edges) == 16                          # 2 cells: 6 nodes, 8 edges each
    for line in edges:
        xy = line.get_transform().transform(line.get_xydata()[[0, -1]])
        for end in xy:
            assert min(np.hypot(*(end - c)) - r for c, r in nodes) < 0, f"edge end {end} at no node"
    title = ax.title.get_window_extent()
    assert ax.get_title() and title.x0 >= 0 and title.y0 >= 0 and title.x1 <= w and title.y1 <= h


@pytest.fixture(scope="module")
def nb301_run(tmp_path_factory):
    """The NB301 smoke CLOSENet on synthetic images, 3 epochs (levels 1, 2, 3), a snapshot every epoch."""
    cfg = closekit.RunConfig.from_yaml(ROOT / "params/nb301/smoke.yaml", dataset="synthetic", train_limit=128,
                                       device="cpu")
    out = tmp_path_factory.mktemp("nb301")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, data, net = closekit.build(cfg)
        closekit.train(net, data, cfg, out_dir=out, log=lambda *_: None, on_epoch_end=snapshots(every=1))
    finally:
        torch.set_num_threads(n)
    return out


def test_nb301_drawing_after_checkpoint_level_and_op_changes(nb301_run, monkeypatch):
    """The checkpoint, the level and an op changed at once from three threads, then one by one: every drawing
    sent has its edges at their nodes, its title whole and the PNG uncropped."""
    drawn, real = [], widgets.png
    monkeypatch.setattr(widgets, "png", lambda fig: drawn.append((fig, real(fig))) or drawn[-1][1])
    ex = explorer(nb301_run, archs="sample:6")
    op = next(o for o in ex.ops[0].options if o != ex.ops[0].value)
    actions = [(ex.epoch, "value", 0), (ex.level, "value", 2), (ex.ops[0], "value", op)]
    barrier = threading.Barrier(len(actions))
    threads = [threading.Thread(target=lambda a: barrier.wait() or setattr(*a), args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert ex.renders >= 2 and ex.view["arch"] == ex.arch.value              # some sets may meet equal values
    assert ex.view["epoch"] == ex.ckpts["epoch"][ex.epoch.value] and ex.level.value == ex.view["level"]
    for w in (ex.epoch, ex.level, ex.ops[0]):                            # one by one: each another value
        before = ex.renders
        w.value = next(v for v in ([v for _, v in w.options] if w is not ex.ops[0] else w.options) if v != w.value)
        assert ex.renders == before + 1
    cells = [(fig, data) for fig, data in drawn if len(fig.axes[0].lines) > 1]   # the cell drawings, not heatmaps
    assert len(cells) >= 4
    for fig, data in cells:
        nb301_edges_at_nodes(fig, data)
    assert bytes(ex.drawing.value) == next(d for f, d in reversed(cells))
