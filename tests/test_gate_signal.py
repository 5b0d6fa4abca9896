"""bench/gate_signal.py: the GATE-signal columns derived by hand for a GATE that routes by the edge's op, a trained
run's row (its ranking metrics = the run's own), and NB301 through the same protocol."""
import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

import closekit
from closekit import spaces
from conftest import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gate_signal", ROOT / "bench/gate_signal.py")
gs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gs)


def test_signal_of_a_gate_that_routes_by_op():
    # one Linear on [z_from; z_to; one_hot(op)] with weight 1 from op k to block k, else 0: logit[e, k] = [op_e == k]
    space = spaces.get("nb201")
    cfg = tiny_cfg(num_blocks=5, cl_schedule=(1, 2, 3, 4, 5), mlp_hidden=(), gate_edge_op=True)
    net = space.supernet(cfg, 3, 10)
    lin = net.router.mlp[-1]
    with torch.no_grad():
        lin.weight.zero_(), lin.bias.zero_()
        d = lin.in_features - 5
        for k in range(5):
            lin.weight[k, d + k] = 1.0
    archs = [space.coerce(a) for a in space.sample_list(40, 0)]
    got = gs.signal(net, archs)
    A, S = len(archs), 6
    modal = [Counter(a[s] for a in archs).most_common(1)[0][1] for s in range(S)]
    freq = [[sum(a[s] == k for a in archs) / A for k in range(5)] for s in range(S)]
    arch_sd = sum(math.sqrt(A / (A - 1) * f * (1 - f)) for row in freq for f in row) / (S * 5)
    p, q = math.e / (math.e + 4), 1 / (math.e + 4)
    assert got["level"] == 5                                        # level 0: all K blocks
    assert math.isclose(got["off_modal"], 1 - sum(modal) / (A * S), abs_tol=1e-6)
    assert math.isclose(got["block_sd"], math.sqrt(0.2), rel_tol=1e-6)           # std of a one-hot of 5
    assert math.isclose(got["arch_sd"], arch_sd, rel_tol=1e-5)
    assert math.isclose(got["ratio"], arch_sd / math.sqrt(0.2), rel_tol=1e-5)
    assert math.isclose(got["entropy"], -(p * math.log(p) + 4 * q * math.log(q)) / math.log(5), rel_tol=1e-5)
    assert got["off_modal"] > 0.5                                   # sampled ops differ: it routes by architecture


def test_trained_run_row_ranks_as_the_run(tmp_path):
    space = spaces.get("nb201")
    archs = space.sample_list(40, 3)
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"arch": [space.to_str(a) for a in archs], "acc": [0.01 * i for i in range(40)]}).to_csv(truth,
                                                                                                      index=False)
    cfg = tiny_cfg(epochs=2, train_limit=160, eval_max_batches=1, gate_embed_norm="l2", truth=str(truth),
                   archs="truth")
    closekit.run(cfg, tmp_path / "run", log=lambda *a, **k: None)
    (row,) = gs.run_rows([tmp_path / "run"], 10, 0)
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert row["variant"] == "a-l2" and row["when"] == "epoch 2" and row["level"] == 2
    for k in ("kendall", "p@top5%", "br@5%_rel"):
        assert row[k] == metrics[k] or (math.isnan(row[k]) and math.isnan(metrics[k]))
    text = gs.table([row])
    assert "| a-l2 | epoch 2 | 2 | 1 |" in text


def test_init_rows_of_nb301_go_through_the_protocol():
    rows = gs.init_rows(ROOT / "params/nb301/smoke.yaml", ["reference", "c-edge_op"], [0], 10, 0,
                        {"dataset": "synthetic", "image_size": 8, "train_limit": None})
    assert [r["variant"] for r in rows] == ["reference", "c-edge_op"] and all(r["level"] == 3 for r in rows)
    assert all(0 <= r["off_modal"] <= 1 and 0 < r["entropy"] <= 1 and r["ratio"] > 0 for r in rows)
