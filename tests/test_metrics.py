"""Tests for closekit.metrics; expected values are computed by hand in the comments."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from closekit.metrics import _pct, compare, join_scores, rank_metrics


def test_pct_format():
    got = [_pct(r) for r in (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)]
    assert got == ["0.1%", "0.5%", "1%", "5%", "10%", "20%", "50%", "100%"]


def test_small_example_by_hand():
    pred = [0.1, 0.4, 0.3, 0.5, 0.2]
    truth = [1, 3, 4, 5, 2]
    # pairs (i,j), sign(pred_i-pred_j) vs sign(truth_i-truth_j):
    # (0,1)C (0,2)C (0,3)C (0,4)C (1,2)D [0.4>0.3 but 3<4] (1,3)C (1,4)C (2,3)C (2,4)C (3,4)C
    # C=9, D=1 -> tau = (9-1)/10 = 0.8
    # ascending ranks: pred [1,4,3,5,2], truth [1,3,4,5,2]; d = [0,1,-1,0,0], sum d^2 = 2
    # rho = 1 - 6*2/(5*(25-1)) = 0.9
    # pearson: pred dev [-.2,.1,0,.2,-.1], truth dev [-2,0,1,2,-1]; cov 0.9, ss 0.1 and 10
    # r = 0.9 / sqrt(0.1*10) = 0.9
    m = rank_metrics(pred, truth)
    assert m["kendall"] == pytest.approx(0.8)
    assert m["spearman"] == pytest.approx(0.9)
    assert m["pearson"] == pytest.approx(0.9)
    p, t = np.array(pred), np.array(truth, dtype=float)
    dp, dt = p - p.mean(), t - t.mean()
    direct = (dp * dt).sum() / np.sqrt((dp ** 2).sum() * (dt ** 2).sum())
    assert m["pearson"] == pytest.approx(direct)
    assert m["mean_pred"] == pytest.approx(0.3)
    assert m["n"] == 5
    # true ranks (0 = best): truth 5,4,3,2,1 at idx 3,2,1,4,0 -> rt = [4,2,1,0,3]
    # predicted order: idx [3,1,2,4,0]
    # K=2 (50%): pred top {3,1} vs true top {3,2} -> 0.5; pred bottom {4,0} vs true bottom {4,0} -> 1
    assert m["p@top50%"] == 0.5 and m["p@bottom50%"] == 1.0
    # within pred top {3,1}: pred [.5,.4], truth [5,3] concordant -> 1; bottom {4,0}: [.2,.1],[2,1] -> 1
    assert m["kendall@top50%"] == 1.0 and m["kendall@bottom50%"] == 1.0
    assert m["p@top100%"] == 1.0 and m["kendall@top100%"] == pytest.approx(0.8)
    # 20% -> K=1: pred top {3} has true rank 0 -> 1-indexed 1
    assert (m["br@20%"], m["wr@20%"], m["br@20%_rel"], m["wr@20%_rel"]) == (1, 1, 0.2, 0.2)
    # N=5: only 20%, 50%, 100% have K >= 1
    expected = {"n", "kendall", "spearman", "pearson", "mean_pred"}
    for s in ("50%", "100%"):
        expected |= {f"p@top{s}", f"p@bottom{s}", f"kendall@top{s}", f"kendall@bottom{s}"}
    expected |= {"br@20%", "br@20%_rel", "wr@20%", "wr@20%_rel"}
    assert set(m) == expected


def test_perfect_and_reversed():
    truth = np.arange(20, dtype=float)
    m = rank_metrics(truth * 2 + 1, truth)
    assert m["kendall"] == 1.0 and m["spearman"] == pytest.approx(1.0)
    for s in ("5%", "10%", "50%", "100%"):
        assert m[f"p@top{s}"] == 1.0 and m[f"p@bottom{s}"] == 1.0
    for s, k in (("5%", 1), ("10%", 2), ("20%", 4)):
        assert m[f"br@{s}"] == 1 and m[f"wr@{s}"] == k

    r = rank_metrics(-truth, truth)
    assert r["kendall"] == -1.0 and r["spearman"] == pytest.approx(-1.0)
    for s in ("5%", "10%", "50%"):  # K <= N/2: the two top-K sets are disjoint
        assert r[f"p@top{s}"] == 0.0 and r[f"p@bottom{s}"] == 0.0
    assert r["p@top100%"] == 1.0
    for s, k in (("5%", 1), ("10%", 2), ("20%", 4)):
        assert r[f"br@{s}"] == 20 - k + 1 and r[f"wr@{s}"] == 20
        assert r[f"br@{s}_rel"] == (20 - k + 1) / 20


def test_ties_tau_b_by_hand():
    pred = [1, 2, 2, 3]
    truth = [1, 1, 2, 3]
    # (0,1) tie in truth only; (1,2) tie in pred only; (0,2)(0,3)(1,3)(2,3) concordant
    # C=4, D=0, n0=6, n1 (pred ties)=1, n2 (truth ties)=1
    # tau_b = 4 / sqrt((6-1)*(6-1)) = 0.8
    # average ranks: pred [1,2.5,2.5,4], truth [1.5,1.5,3,4]; both centred at 2.5
    # cov = 1.5*1 + 0 + 0 + 1.5*1.5 = 3.75; ss = 4.5 and 4.5 -> rho = 3.75/4.5 = 5/6
    m = rank_metrics(pred, truth, top_ratios=(), br_ratios=())
    assert m["kendall"] == pytest.approx(0.8)
    assert m["spearman"] == pytest.approx(5 / 6)


def test_stable_tie_break():
    # truth [0.9, 0.9, 0.5] -> true ranks [0, 1, 2]: the first 0.9 is best.
    # pred picks idx 1 as top-1 (K = int(3*0.5) = 1) -> its 1-indexed true rank is 2.
    m = rank_metrics([0.2, 0.8, 0.5], [0.9, 0.9, 0.5], top_ratios=(0.5,), br_ratios=(0.5,))
    assert m["br@50%"] == 2 and m["wr@50%"] == 2
    assert m["p@top50%"] == 0.0  # pred top {1}, true top {0}
    # tied predictions: pred [0.7, 0.7, 0.1] -> predicted order [0, 1, 2];
    # truth [1, 2, 3] -> true ranks [2, 1, 0] -> predicted top-1 (idx 0) has rank 3
    m = rank_metrics([0.7, 0.7, 0.1], [1, 2, 3], top_ratios=(0.5,), br_ratios=(0.5,))
    assert m["br@50%"] == 3
    # predicted bottom-1 is idx 2 (the true best) -> p@bottom = 0
    assert m["p@bottom50%"] == 0.0


def test_k_below_one_skipped():
    x = np.arange(10, dtype=float)
    m = rank_metrics(x, x)
    assert "p@top5%" not in m and "kendall@top5%" not in m and "p@bottom5%" not in m
    assert m["p@top10%"] == 1.0  # K = 1
    assert math.isnan(m["kendall@top10%"])  # K = 1 < 2
    assert "br@0.1%" not in m and "br@5%" not in m and "wr@5%_rel" not in m
    assert m["br@10%"] == 1


def test_n20_hand_case():
    # truth[i] = 20 - i -> true rank of idx i is i (1-indexed i+1)
    truth = 20.0 - np.arange(20)
    order = [3, 0, 7, 12, 2, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 1]
    pred = np.empty(20)
    pred[order] = 20.0 - np.arange(20)  # j-th in `order` gets the j-th best score
    m = rank_metrics(pred, truth, top_ratios=(0.1, 0.2), br_ratios=(0.05, 0.1, 0.2))
    # K=2: pred top {3,0} vs true top {0,1} -> 1/2; pred bottom {19,1} vs true bottom {18,19} -> 1/2
    assert m["p@top10%"] == 0.5 and m["p@bottom10%"] == 0.5
    # K=4: pred top {3,0,7,12} vs {0,1,2,3} -> 2/4; pred bottom {17,18,19,1} vs {16..19} -> 3/4
    assert m["p@top20%"] == 0.5 and m["p@bottom20%"] == 0.75
    # 1-indexed true ranks of pred top-K: K=1 {4}; K=2 {4,1}; K=4 {4,1,8,13}
    assert (m["br@5%"], m["wr@5%"], m["br@5%_rel"]) == (4, 4, 0.2)
    assert (m["br@10%"], m["wr@10%"], m["br@10%_rel"], m["wr@10%_rel"]) == (1, 4, 0.05, 0.2)
    assert (m["br@20%"], m["wr@20%"], m["wr@20%_rel"]) == (1, 13, 0.65)


def test_kendall_at_top_bottom_by_hand():
    pred = np.arange(10, 0, -1, dtype=float)  # predicted order is idx 0..9
    truth = [5, 3, 4, 1, 2, -4, -3, -2, -1, 0]
    # pred top-5 truth (pred descending): 5,3,4,1,2
    # pairs: 5>3,5>4,5>1,5>2 C; 3<4 D; 3>1,3>2 C; 4>1,4>2 C; 1<2 D -> C=8, D=2, tau = 6/10
    # pred bottom-5 truth -4,-3,-2,-1,0 increasing while pred decreases -> all discordant, tau = -1
    m = rank_metrics(pred, truth, top_ratios=(0.5,), br_ratios=())
    assert m["kendall@top50%"] == pytest.approx(0.6)
    assert m["kendall@bottom50%"] == pytest.approx(-1.0)
    assert m["p@top50%"] == 1.0 and m["p@bottom50%"] == 1.0
    # constant truth inside the predicted top-2 -> NaN
    m = rank_metrics([4, 3, 2, 1], [7, 7, 1, 2], top_ratios=(0.5,), br_ratios=())
    assert math.isnan(m["kendall@top50%"])
    assert m["kendall@bottom50%"] == -1.0  # pred [2,1] vs truth [1,2]


def test_series_input_and_json():
    pred = pd.Series([0.3, 0.1, 0.2], index=[10, 20, 30])
    truth = pd.Series([3.0, 1.0, 2.0], index=["a", "b", "c"])
    m = rank_metrics(pred, truth)
    assert m["kendall"] == 1.0
    json.dumps(m)
    big = rank_metrics(np.arange(1000.0), np.arange(1000.0))
    assert all(type(v) in (int, float) for v in big.values())


def test_all_default_keys_n1000():
    x = np.arange(1000, dtype=float)
    m = rank_metrics(x, x)
    for s in ("0.1%", "0.5%", "1%", "5%", "10%", "50%", "100%"):
        assert m[f"p@top{s}"] == 1.0 and m[f"p@bottom{s}"] == 1.0
    for s, k in (("0.1%", 1), ("0.5%", 5), ("1%", 10), ("5%", 50), ("10%", 100), ("20%", 200)):
        assert m[f"br@{s}"] == 1 and m[f"wr@{s}"] == k and m[f"wr@{s}_rel"] == k / 1000
    json.dumps(m)


@pytest.mark.parametrize("pred, truth, msg", [
    ([1, 2, 3], [1, 2], "differ in length: 3 vs 2"),
    ([1], [1], "need at least 2 architectures to rank, got 1"),
    ([1, float("nan"), 3], [1, 2, 3], "NaN in input: 1 in pred, 0 in truth"),
    ([1, 2, 3], [1, 2, np.nan], "NaN in input: 0 in pred, 1 in truth"),
])
def test_bad_input_names_what_is_wrong(pred, truth, msg):
    with pytest.raises(ValueError, match=msg):
        rank_metrics(pred, truth)


def test_join_scores_reorders_and_compare():
    scores = pd.DataFrame({"arch": ["b", "a", "c"], "acc": [0.1, 0.2, 0.3]})
    truth = pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [90.0, 80.0, 70.0, 60.0]})
    pred, true, archs = join_scores(scores, truth)
    assert archs == ["a", "b", "c"]  # canonical order: sorted by arch
    assert list(pred) == [0.2, 0.1, 0.3] and list(true) == [90.0, 80.0, 70.0]
    m = compare(scores, truth)
    assert m["n"] == 3
    # pairs (b,a): pred +, truth + C; (b,c): pred -, truth + D; (a,c): pred -, truth + D -> tau = -1/3
    assert m["kendall"] == pytest.approx(-1 / 3)
    s2 = scores.rename(columns={"acc": "score"})
    t2 = truth.rename(columns={"acc": "test_acc"})
    m2 = compare(s2, t2, score_col="score", truth_col="test_acc")
    assert m2["kendall"] == pytest.approx(-1 / 3)


def test_join_scores_missing():
    scores = pd.DataFrame({"arch": ["a", "x", "y"], "acc": [0.1, 0.2, 0.3]})
    truth = pd.DataFrame({"arch": ["a", "b"], "acc": [90.0, 80.0]})
    with pytest.raises(ValueError, match=r"2 of 3") as e:
        join_scores(scores, truth)
    assert "'x'" in str(e.value) and "\n" not in str(e.value)


def test_join_scores_duplicate_scores():
    scores = pd.DataFrame({"arch": ["a", "b", "a", "a"], "acc": [0.1, 0.2, 0.3, 0.4]})
    truth = pd.DataFrame({"arch": ["a", "b"], "acc": [90.0, 80.0]})
    with pytest.raises(ValueError, match=r"2 duplicate architectures in scores") as e:
        compare(scores, truth)
    assert "'a'" in str(e.value) and "\n" not in str(e.value)


def test_pred_tiebreak():
    # pred [0.7, 0.7, 0.1] tie between idx 0 and 1; tiebreak prefers idx 1 -> order [1, 0, 2]
    # truth [1, 2, 3] -> true ranks [2, 1, 0]: predicted top-1 (idx 1) has 1-indexed rank 2
    kw = dict(top_ratios=(0.5,), br_ratios=(0.5,))
    m = rank_metrics([0.7, 0.7, 0.1], [1, 2, 3], pred_tiebreak=[0, 1, 0], **kw)
    assert m["br@50%"] == 2 and m["p@bottom50%"] == 0.0
    # without a tie the tiebreak is ignored: pred order [0, 1, 2] -> top-1 idx 0 has rank 3
    m = rank_metrics([0.7, 0.6, 0.1], [1, 2, 3], pred_tiebreak=[0, 5, 0], **kw)
    assert m["br@50%"] == 3
    with pytest.raises(ValueError, match="pred_tiebreak"):
        rank_metrics([1, 2, 3], [1, 2, 3], pred_tiebreak=[1, 2])


def test_compare_ties_broken_by_loss_then_arch():
    # a, b, c tie on acc; rows deliberately out of arch order
    scores = pd.DataFrame({"arch": ["d", "c", "b", "a"], "acc": [0.1, 0.5, 0.5, 0.5],
                           "loss": [2.0, 0.7, 0.9, 1.1]})
    truth = pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [70.0, 80.0, 90.0, 60.0]})
    kw = dict(top_ratios=(0.25, 0.5), br_ratios=(0.25, 0.5))
    # by loss: predicted order c, b, a, d; true order c, b, a, d -> every P@K is 1
    m = compare(scores, truth, **kw)
    assert m["p@top25%"] == 1.0 and m["p@top50%"] == 1.0 and m["p@bottom50%"] == 1.0
    assert (m["br@25%"], m["wr@50%"]) == (1, 2)
    # no loss column: tied predictions go by arch -> predicted order a, b, c, d
    # top-1 {a} (true rank 3) -> p@top25% = 0, br@25% = 3; top-2 {a,b} vs {c,b} -> 0.5, br/wr = 2/3
    m = compare(scores.drop(columns="loss"), truth, **kw)
    assert (m["p@top25%"], m["br@25%"]) == (0.0, 3)
    assert (m["p@top50%"], m["br@50%"], m["wr@50%"]) == (0.5, 2, 3)
    # loss equal too -> arch decides as well
    m = compare(scores.assign(loss=1.0), truth, **kw)
    assert (m["p@top25%"], m["br@25%"]) == (0.0, 3)


def _disagreeing():
    """One-shot accuracy orders a, b, c, d as the truth does; the loss orders them a, c, d, b."""
    scores = pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [.4, .3, .2, .1], "loss": [1.0, 1.3, 1.1, 1.2]})
    return scores, pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [90.0, 80.0, 70.0, 60.0]})


def test_compare_ranks_the_score_column():
    scores, truth = _disagreeing()
    assert compare(scores.assign(score=scores["acc"]), truth)["kendall"] == pytest.approx(1.0)
    # -loss: a, c, d, b; pairs (b,c) and (b,d) discordant, the other 4 concordant -> tau = (4 - 2) / 6
    assert compare(scores.assign(score=-scores["loss"]), truth)["kendall"] == pytest.approx(1 / 3)


def test_a_scores_file_without_a_score_column_ranks_by_acc(tmp_path):
    scores, truth = _disagreeing()
    scores.to_csv(tmp_path / "scores.csv", index=False)              # as written before RunConfig.score
    old = pd.read_csv(tmp_path / "scores.csv")
    assert "score" not in old and compare(old, truth) == compare(scores.assign(score=scores["acc"]), truth)
    assert compare(old, truth)["kendall"] == pytest.approx(1.0)


def test_loss_ranks_break_ties_by_higher_acc():
    # a and b tie on loss; b has the higher accuracy and is truly best
    scores = pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [.2, .3, .1, .4], "loss": [.5, .5, .9, 1.0]})
    truth = pd.DataFrame({"arch": ["a", "b", "c", "d"], "acc": [80.0, 90.0, 70.0, 60.0]})
    kw = dict(top_ratios=(0.25,), br_ratios=(0.25,))
    m = compare(scores.assign(score=-scores["loss"]), truth, **kw)
    assert (m["p@top25%"], m["br@25%"]) == (1.0, 1)                  # predicted top-1: b
    m = compare(scores.drop(columns="acc").assign(score=-scores["loss"]), truth, **kw)
    assert (m["p@top25%"], m["br@25%"]) == (0.0, 2)                  # no acc: the tie goes by arch, a


def test_compare_true_ties_broken_by_arch():
    # truth ties a == b; arch "a" gets the better true rank whatever the row order
    truth = pd.DataFrame({"arch": ["b", "a", "c"], "acc": [90.0, 90.0, 50.0]})
    scores = pd.DataFrame({"arch": ["c", "b", "a"], "acc": [0.1, 0.9, 0.5]})
    # predicted top-1 = b, whose true rank is 2 (1-indexed)
    for t in (truth, truth.iloc[::-1]):
        m = compare(scores, t, top_ratios=(0.5,), br_ratios=(0.5,))
        assert m["br@50%"] == 2 and m["p@top50%"] == 0.0


def _tied_run(seed=0, n=300):
    """One-shot accuracies on 2,400 images (steps of 1/2400) vs truth rounded to 0.1: many exact ties."""
    rng = np.random.default_rng(seed)
    archs = [f"arch-{v:06x}" for v in rng.choice(16 ** 6, n, replace=False)]
    true = np.round(rng.normal(90, 2, n), 1)
    acc = rng.binomial(2400, 0.5 + (true - 90) / 200) / 2400
    loss = np.round(rng.normal(1.0, 0.05, n), 2)
    return (pd.DataFrame({"arch": archs, "acc": acc, "loss": loss}),
            pd.DataFrame({"arch": archs, "acc": true}))


def _same(a, b):
    return set(a) == set(b) and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_tied_data_is_order_sensitive_without_tiebreak():
    scores, truth = _tied_run()
    assert scores["acc"].duplicated(keep=False).sum() > 150 and truth["acc"].duplicated(keep=False).sum() > 150
    pred, true = scores["acc"].to_numpy(), truth["acc"].to_numpy()
    raw = [rank_metrics(pred[p], true[p]) for p in
           (np.random.default_rng(s).permutation(len(pred)) for s in range(4))]
    keys = [k for k in raw[0] if k.startswith("p@")]
    assert any(r[k] != raw[0][k] for r in raw[1:] for k in keys)


@pytest.mark.parametrize("with_loss", [True, False])
def test_compare_independent_of_row_order(with_loss):
    scores, truth = _tied_run()
    if not with_loss:
        scores = scores.drop(columns="loss")
    ref = compare(scores, truth)
    assert ref["n"] == 300 and "p@top5%" in ref
    for seed in range(5):
        rng = np.random.default_rng(seed)
        s = scores.iloc[rng.permutation(len(scores))]
        t = truth.iloc[rng.permutation(len(truth))].reset_index(drop=True)
        assert _same(compare(s, t), ref)
