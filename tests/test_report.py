"""closekit.report and its figures, without a notebook: what a reader sees must hold for every space (levels with
nothing to show are named, fixed routing becomes one table, size axes carry readable ticks, long architecture
strings are not cut, a failed training is flagged first)."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from closekit import plots, report
from conftest import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]


def test_report_module_imports_no_plotting_library():
    code = "import sys, closekit.report; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("schedule, epochs, shown, missing", [
    ((1, 1, 1, 2), 2, {3, 4}, {1: "the next level starts at the same epoch, 1", 2: "the same epoch, 1"}),
    ((1, 2, 5), 3, {1, 2}, {3: "starts at epoch 5, after the last (3)"}),
    ((1, 2, 3), 3, {1, 2, 3}, {}),
])
def test_every_curriculum_level_is_shown_or_named(schedule, epochs, shown, missing):
    cfg = tiny_cfg(num_blocks=len(schedule), cl_schedule=schedule, epochs=epochs)
    got = report.missing_levels(cfg, shown)
    assert set(got) == set(missing) and all(missing[k] in got[k] for k in missing)
    assert report.missing_levels(tiny_cfg(supernet="vanilla"), set()) == {}


def usage(rows):
    """A block-usage table from (level, position, block, count) rows, slots numbered by first appearance."""
    df = pd.DataFrame(rows, columns=["level", "position", "block", "count"])
    df["slot"] = df["position"].map({p: i for i, p in enumerate(dict.fromkeys(df["position"]))})
    return df


def test_fixed_routing_becomes_one_table_and_mixed_routing_does_not():
    fixed = usage([(1, "a", 0, 4), (1, "b", 0, 4), (2, "a", 0, 4), (2, "a", 1, 0), (2, "b", 1, 4)])
    table = report._fixed_table(fixed)
    assert table.index.tolist() == [1, 2] and table.columns.tolist() == ["a", "b"]
    assert table.to_numpy().tolist() == [[0, 0], [0, 1]]
    assert report._fixed_table(usage([(1, "a", 0, 3), (1, "a", 1, 1)])) is None   # a position split over 2 blocks
    fig = plots.routing_table(table, title="stage1")
    assert [t.get_text() for t in fig.axes[0].texts] == ["0", "0", "0", "1"]
    plt.close(fig)


def visible_labels(ax):
    """The drawn, non-empty x tick labels of ``ax`` (after a draw)."""
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [(t, v) for t, v in zip(ax.xaxis.get_majorticklabels() + ax.xaxis.get_minorticklabels(),
                                    list(ax.get_xticks()) + list(ax.get_xticks(minor=True))) if lo <= v <= hi]
    return [t for t, _ in ticks if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("sizes", [np.geomspace(3e5, 4.5e5, 8), np.geomspace(2e5, 3e7, 8)], ids=["narrow", "wide"])
def test_size_axes_label_without_overlap(sizes):
    fig = plots.against_size(pd.DataFrame({"params": sizes, "flops": sizes * 100}), np.linspace(.1, .2, len(sizes)))
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = visible_labels(ax)
        assert len(labels) >= 2
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]
    plt.close(fig)


def test_architecture_strings_are_shown_whole():
    long = [f"Genotype(normal=[('sep_conv_3x3', 0)] * 12, reduce=[('skip_connect', {i})])" for i in range(3)]
    html = report._arch_table(pd.DataFrame({"arch": long, "acc": [.5, .4, .3], "loss": [1.0, 1.1, 1.2]})).data
    assert all(a.replace("'", "&#x27;") in html or a in html for a in long)
    assert html.index("acc") < html.index("arch")                       # numbers first, strings last


def fake_result(history, metrics, supernet="close"):
    return SimpleNamespace(cfg=tiny_cfg(supernet=supernet), space=SimpleNamespace(name="nb201"), history=history,
                           metrics=metrics, scores=pd.DataFrame({"arch": ["a"], "acc": [.1], "loss": [2.0]}),
                           data=SimpleNamespace(num_classes=10), out_dir=Path("runs/x"))


def test_headline_names_the_space_and_warns_first_when_training_failed():
    rising = pd.DataFrame({"epoch": [1, 2], "train_loss": [4.5, 5.6], "train_acc": [.1, .08]})
    m = {"n_scored": 8, "oneshot_acc_mean": .1, "oneshot_acc_std": .02}
    text = report.headline_markdown(fake_result(rising, m))
    assert text.startswith("# CLOSE supernet on nb201\n## Result\n**8 architectures scored")
    assert "Warning:" in text and "4.50 -&gt; 5.60" in text       # HTML-escaped inside the box
    learning = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.3, 1.2], "train_acc": [.3, .6]})
    m = {"n": 20, "kendall": .5, "spearman": .6, "p@top5%": 0, "br@5%_rel": .1, "truth": "mini-nb201"}
    text = report.headline_markdown(fake_result(learning, m, supernet="vanilla"))
    assert text.startswith("# Vanilla one-shot supernet on nb201\nRanked against `mini-nb201`.")
    assert "kendall 0.500" in text and "Warning" not in text


def test_a_loss_ranking_says_so_in_the_headline_and_the_scatter():
    learning = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.3, 1.2], "train_acc": [.3, .6]})
    m = {"n": 3, "kendall": 1.0, "truth": "mini-nb201"}
    result = fake_result(learning, m)
    result.cfg = result.cfg.replace(score="loss")
    assert "\nRanked by the negated one-shot loss against `mini-nb201`." in report.headline_markdown(result)
    scores = pd.DataFrame({"arch": ["a", "b", "c"], "acc": [.1, .2, .3], "loss": [3.0, 2.0, 1.0]})
    fig = plots.score_vs_truth(scores.assign(score=-scores["loss"]), pd.DataFrame({"arch": ["a", "b", "c"],
                               "acc": [70.0, 80.0, 90.0]}), m, "loss")
    assert fig.axes[0].get_ylabel() == "negated one-shot loss"
    assert list(fig.axes[0].collections[0].get_offsets()[:, 1]) == [-3.0, -2.0, -1.0]     # the score, not acc
    plt.close(fig)


def test_record_dir_is_passed_else_the_run(monkeypatch):
    result = fake_result(None, {})
    monkeypatch.setenv("CLOSEKIT_RECORD_DIR", "/jobs/1")                 # the environment is not read
    assert report.record_dir(None, result) == Path("runs/x")            # a hand run: next to its run, not the cwd
    assert report.record_dir("/jobs/1", result) == Path("/jobs/1")      # closekit batch passes its job directory


def test_log_keeps_every_line_and_prints_outside_a_notebook(capsys):
    log = report.Log()
    for i in range(5):
        log(f"epoch {i}")
    assert log.lines == [f"epoch {i}" for i in range(5)] and capsys.readouterr().out.count("epoch") == 5


def test_plots_without_optional_columns():
    figs = [plots.trajectory(pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "train_acc": [.1, .3]})),
            plots.block_usage(pd.DataFrame({"edge": [0, 1], "block": [0, 0], "count": [3, 3]})),
            plots.scores_by_config(pd.DataFrame({"acc": [.1, .2, .3], "config": ["a", "a", "b"]})),
            plots.by_config(pd.DataFrame({"config": ["a", "b"], "kendall": [.1, np.nan]}), ["kendall", "p@top5%"])]
    for fig in figs:
        assert fig.axes
        plt.close(fig)


def test_probe_curves_one_panel_per_budget_with_the_seed_spread():
    probes = pd.DataFrame({"epoch": [6, 12, 6, 12, 18, 36, 18, 36], "probe_kendall": [.1, .3, .2, .5, .0, .4, .2, .6],
                           "variant": ["close"] * 8, "seed": [0, 0, 1, 1, 0, 0, 1, 1],
                           "budget": ["x1"] * 4 + ["x3"] * 4})
    fig = plots.probe_curves(probes)
    assert [ax.get_title() for ax in fig.axes] == ["budget = x1", "budget = x3"]
    (line,) = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]   # (the other: a legend handle)
    assert list(line.get_xdata()) == [6, 12] and list(line.get_ydata()) == pytest.approx([.15, .4])   # seed means
    assert fig.axes[0].collections                                    # the ± sd band
    plt.close(fig)


def ref_lines(ax):
    """(y, label, linestyle) of the labelled horizontal lines of ``ax``."""
    return [(ln.get_ydata()[0], ln.get_label(), ln.get_linestyle()) for ln in ax.get_lines()
            if not ln.get_label().startswith("_") and ln.get_ydata()[0] == ln.get_ydata()[-1]]


def test_by_config_draws_labelled_reference_lines():
    table = pd.DataFrame({"config": ["a", "a", "b"], "kendall": [.3, .4, .5], "p@top5%": [.1, .2, .3]})
    fig = plots.by_config(table, ["kendall", "p@top5%"],
                          lines={"kendall": [(.8, "best reachable", "-"), (.6, "seed-to-seed", "--")]})
    kendall, top = fig.axes
    assert ref_lines(kendall) == [(.8, "best reachable", "-"), (.6, "seed-to-seed", "--")]
    assert [t.get_text() for t in kendall.get_legend().get_texts()] == ["best reachable", "seed-to-seed"]
    assert kendall.get_ylim()[1] >= .8                                       # the ceiling is in view
    assert ref_lines(top) == [] and top.get_legend() is None
    plt.close(fig)
