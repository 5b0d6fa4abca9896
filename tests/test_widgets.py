"""The GATE explorer headless: build it on a run directory, change each control, and check that the view it
draws (``.view``, and the text it prints without a kernel) changes, with one render per user action."""
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

import closekit
from closekit.train import snapshots
from closekit.widgets import CUSTOM, explorer
from conftest import tiny_cfg


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
    space = closekit.spaces.get("nb201")
    archs = space.sample_list(12, 0)
    truth = pd.DataFrame({"arch": [space.canonical_str(a) for a in archs], "acc": range(12)})
    e = explorer(run_dir, archs=archs, truth=truth)
    capsys.readouterr()
    return e


def act(ex, capsys, fn):
    """Do one user action; (renders it caused, text it printed)."""
    before = ex.renders
    fn()
    return ex.renders - before, capsys.readouterr().out


def test_builds_with_the_last_checkpoint(ex):
    assert ex.renders == 1 and ex.view["epoch"] == 4 and ex.view["level"] == 3
    assert ex.epoch.continuous_update is False and ex.arch.continuous_update is False
    assert [lbl for lbl, _ in ex.epoch.options] == ["1 (L=1)", "2 (L=2)", "3 (L=3)", "4 (L=3)"]
    assert [v for _, v in ex.level.options] == [1, 2, 3] and ex.level.value == 3
    assert ex.notable.value.startswith("best by truth") and ex.view["arch"] == ex.notables[ex.notable.value]
    assert [w.value for w in ex.ops] == [o for o in _ops(ex.view["arch"])]
    assert list(ex.view["table"].columns[:6]) == ["edge", "src", "dst", "op", "live", "block"]
    assert ex.view["usage"]["count"].sum() == 6 * 12 and ex.view["change"]["pairs"] == 6 * 12
    assert plt.get_fignums() == []                                       # every figure closed after drawing
    assert ex._repr_mimebundle_()["text/plain"].startswith("VBox")


def _ops(arch):
    from closekit.spaces.nb201_arch import OPS, parse
    return [OPS[i] for i in parse(arch)]


def test_op_dropdown(ex, capsys):
    old = ex.view["arch"]
    new_op = "nor_conv_1x1" if ex.ops[0].value != "nor_conv_1x1" else "nor_conv_3x3"
    n, text = act(ex, capsys, lambda: setattr(ex.ops[0], "value", new_op))
    assert n == 1 and ex.view["arch"] != old and ex.notable.value == CUSTOM
    assert ex.arch.value.startswith(f"|{new_op}~0|") and ex.view["table"]["op"][0] in ("conv1x1", "conv3x3", "none")
    assert "epoch 4, level 3: node-level GATE" in text and "p0" in text and "entropy" in text


def test_notable_dropdown_one_render_and_ops_follow(ex, capsys):
    label = next(k for k in ex.notables if k.startswith("worst"))
    n, text = act(ex, capsys, lambda: setattr(ex.notable, "value", label))
    assert n == 1 and ex.view["arch"] == ex.notables[label] == ex.arch.value
    assert [w.value for w in ex.ops] == _ops(ex.notables[label])


def test_typed_arch_canonical_and_bad(ex, capsys):
    cell = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"    # dead convs: not canonical
    n, text = act(ex, capsys, lambda: setattr(ex.arch, "value", cell))
    assert n == 1 and "representative" in text and ex.view["arch"] != cell
    assert [w.value for w in ex.ops] == _ops(cell) and ex.notable.value == CUSTOM
    n, text = act(ex, capsys, lambda: setattr(ex.arch, "value", "not an arch"))
    assert n == 1 and "bad NB201 architecture string" in text and "error" in ex.view


def test_epoch_slider_and_level_selector_follow_each_other(ex, capsys):
    usage3 = ex.view["usage"]
    n, text = act(ex, capsys, lambda: setattr(ex.epoch, "value", 1))
    assert n == 1 and ex.view["epoch"] == 2 and ex.view["level"] == 2 and ex.level.value == 2
    assert not ex.view["usage"].equals(usage3)
    assert {"p0", "p1"} <= set(ex.view["table"]) and "p2" not in ex.view["table"]
    assert "vs epoch 1 (L=1)" in text
    n, text = act(ex, capsys, lambda: setattr(ex.level, "value", 1))
    assert n == 1 and ex.epoch.value == 0 and ex.view["epoch"] == 1 and ex.view["change"] is None
    assert "level 1: every edge uses block 0" in text and (ex.view["table"]["p"] == 1).all()
    n, _ = act(ex, capsys, lambda: setattr(ex.level, "value", 3))
    assert n == 1 and ex.epoch.value == 3 and ex.view["epoch"] == 4           # the last checkpoint of level 3


def test_usage_toggle(ex, capsys):
    n, _ = act(ex, capsys, lambda: setattr(ex.usage, "value", "expected"))
    u = ex.view["usage"]
    assert n == 1 and "expected" in u and u.groupby("edge")["expected"].sum().round(4).eq(12).all()


def test_vanilla_run(tmp_path, capsys):
    ex = explorer(tiny_run(tmp_path, supernet="vanilla", epochs=2), archs="sample:5")
    text = capsys.readouterr().out
    assert ex.view["level"] == 6 and [v for _, v in ex.level.options] == [6] and "vanilla supernet" in text
    assert ex.view["table"]["block"].tolist() == list(range(6)) and (ex.view["table"]["p"] == 1).all()
