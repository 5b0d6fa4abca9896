"""bench/ranking.py: the stretched schedule, the table's rows (size baseline, ceilings), what a cached row keys on."""
import sys
from pathlib import Path

import pandas as pd
import pytest

from closekit import groundtruth, spaces
from closekit.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ranking  # noqa: E402


def test_stretch_moves_every_epoch_of_the_schedule():
    cfg = RunConfig.from_yaml(ROOT / "params/nb201/mini-close.yaml")
    s = ranking.stretched(cfg, 3)
    assert (s.epochs, s.cl_schedule, s.srt_epochs, s.plateau_patience) == (90, (1, 19, 37, 55, 73), (37,), 9)
    assert ranking.stretched(cfg, 1) is cfg
    # the stretched run is another run directory (another config hash), the same code version
    a, b = ranking.job_dir("/o", "close", 0, {}), ranking.job_dir("/o", "close", 0, {}, stretch=3)
    assert a[1] != b[1] and a[1].name.split("-")[-1] == b[1].name.split("-")[-1]


def test_size_row_is_the_parameter_count_baseline():
    truth = groundtruth.load("mini-nb201", spaces.get("nb201"))
    row = ranking.size_row(truth, spaces.get("nb201"))
    # golden: the 300 mini NB201 architectures ranked by their stand-alone nets' parameter count
    assert row["kendall"] == pytest.approx(0.25302, abs=1e-5)
    assert row["p@top5%"] == pytest.approx(1 / 15) and row["br@5%_rel"] == pytest.approx(13 / 300)
    assert ranking.size_row(truth.drop(columns="params"), spaces.get("nb201")) is None   # no size, no row


def test_table_rows_have_the_header_width():
    rows = [{"variant": v, "seed": s, "kendall": k, "p@top5%": 0.1, "br@5%_rel": 0.2, "train_seconds": 10.0,
             "train_acc": a}
            for v, s, k, a in (("vanilla", 0, 0.1, 0.4), ("vanilla", 1, 0.3, 0.5), ("close", 0, 0.5, 0.6))]
    ceiling = {"kendall": 0.5, "bootstrap_std": 0.02, "pairs": [0.5, 0.6], "seed_mean": {"n_seeds": 2,
                                                                                     "tau_vs_noise_free": 0.7}}
    size = {"variant": "parameter count alone (no supernet)", "kendall": 0.25, "p@top5%": 0.0, "br@5%_rel": 0.5}
    lines = ranking.table(rows, ceiling, size).splitlines()
    assert {line.count("|") for line in lines} == {lines[0].count("|")}
    assert lines[2].startswith("| vanilla | 2 | 0.200 ± 0.141 |")
    assert lines[2].endswith("| 45.0 ± 7.1 | 10 |") and lines[3].endswith("| 60.0 | 10 |")   # train acc % at the end
    assert lines[4] == "| parameter count alone (no supernet) | | 0.250 | 0.000 | 0.500 | | | | | |"
    assert len(lines) == 8
    rows[2]["kendall"] = float("nan")                           # constant scores: Kendall undefined, not hidden
    rows.append({**rows[2], "seed": 1, "kendall": 0.4})
    close = ranking.table(rows, ceiling).splitlines()[3]
    assert close.startswith("| close | 2 | 0.400 (1 of 2 seeds undefined: constant scores) | 0.100 ± 0.000 |")


def test_truth_key_changes_with_any_row():
    truth = pd.DataFrame({"arch": ["a", "b"], "acc": [0.5, 0.6]})
    truth.attrs["version"] = "v"
    grown = pd.concat([truth, pd.DataFrame({"arch": ["c"], "acc": [0.7]})])
    grown.attrs["version"] = "v"
    changed = truth.assign(acc=[0.5, 0.61])
    changed.attrs["version"] = "v"
    keys = {ranking.truth_key(t) for t in (truth, grown, changed)}
    assert len(keys) == 3 and ranking.truth_key(truth.iloc[::-1]) == ranking.truth_key(truth)


def test_figure_draws_each_run_once(tmp_path, monkeypatch):
    probes = pd.DataFrame({"epoch": [6, 12] * 2, "level": [1, 2] * 2, "probe_kendall": [0.1, 0.2, 0.3, 0.4],
                           "variant": ["close"] * 4, "seed": [0, 0, 1, 1], "budget": ["x1: 12 epochs"] * 4})
    probes.to_csv(tmp_path / "probes.csv", index=False)
    probes.to_csv(tmp_path / "probes-e6.csv", index=False)          # the same runs saved under a second name
    seen = []
    import closekit.plots
    monkeypatch.setattr(closekit.plots, "probe_curves",
                        lambda p: seen.append(p) or closekit.plots.plt.figure())
    ranking.figure(tmp_path)
    assert len(seen[0]) == 4 and (tmp_path / "probes.png").is_file()
    assert closekit.plots.plt.get_fignums() == []                       # the figure is closed once saved


@pytest.mark.slow
def test_a_split_table_run_has_no_gate_columns(tmp_path):
    """NDS routes by a fixed table: the row has the block share, and no GATE entropy, arch dependence or Gumbel."""
    extra = {"truth": "mini-nds-resnet", "archs": "truth", "epochs": 1, "train_limit": 256, "num_blocks": 9,
             "cl_schedule": [1] * 9, "srt_epochs": [], "eval_every": 0}
    row = ranking.run_one(("close", 0, str(tmp_path), extra, "nds-resnet", 1, "key", True))
    shipped = groundtruth.load("mini-nds-resnet", spaces.get("nds-resnet"))
    assert row["n"] == len(shipped) and 0 < row["top_block_share"] < 1
    assert not {"entropy_ratio", "arch_dependence", "gumbel"} & set(row)


def test_gaps_give_the_mean_difference_and_welch_standard_error():
    rows = [{"variant": v, "seed": s, "kendall": k, "p@top5%": 0.1, "br@5%_rel": 0.0}
            for v, ks in (("a", (0.5, 0.7)), ("b", (0.1, 0.2, 0.3))) for s, k in enumerate(ks)]
    rows.append({"variant": "a, scored eval_routing=gumbel", "seed": 0, "kendall": 9.0, "p@top5%": 0, "br@5%_rel": 0})
    line = ranking.gaps(rows).splitlines()[2]
    # a: mean 0.6, var 0.02 over 2; b: mean 0.2, var 0.01 over 3 -> +0.400 ± sqrt(0.01 + 0.01/3) = 0.115
    assert line.startswith("| a − b | +0.400 ± 0.115 | +0.000 ± 0.000 |")
    assert ranking.gaps(rows[:2]) == ""                      # one variant: no pair to compare
