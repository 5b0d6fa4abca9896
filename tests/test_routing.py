"""GATE routing views (closekit.routing): probabilities, usage, entropy, sharing extent, changes between
checkpoints; per-level snapshots written during training and read back from a run or batch job directory."""
import json
import math
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import closekit
from closekit import plots, routing, sharing
from closekit.evaluate import block_usage
from closekit.spaces.nb201_arch import CONVS, live_edges, to_matrix
from closekit.train import chain, snapshots
from conftest import tiny_cfg

A = 40   # architectures per set
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """A tiny CLOSENet trained 4 epochs (levels 1, 2, 3, 3) with snapshots at level ends, and a probe alongside."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(epochs=4, cl_schedule=(1, 2, 3), train_limit=256, out_dir=str(out))
    space, data, net = closekit.build(cfg)
    seen = []
    closekit.train(net, data, cfg, out_dir=out, log=lambda *_: None,
                   on_epoch_end=chain(lambda t, e: seen.append(e) or {"x": e}, snapshots()))
    return dict(out=out, cfg=cfg, space=space, net=net, seen=seen, archs=space.sample_list(A, 3))


def grown(space, **kw):
    """An untrained supernet at its last level (every curriculum event applied)."""
    cfg = tiny_cfg(**kw)
    net = space.supernet(cfg, 3, 10)
    net.epoch_start(cfg.cl_schedule[-1])
    return net


def test_snapshots_at_level_ends_and_checkpoints_table(run):
    out = run["out"]
    assert run["seen"] == [1, 2, 3, 4]                                   # chain calls every callback
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["epoch-0001.pt", "epoch-0002.pt", "epoch-0004.pt"]
    ck = routing.checkpoints(out)
    assert ck["epoch"].tolist() == [1, 2, 4] and ck["level"].tolist() == [1, 2, 3]
    assert ck["kind"].tolist() == ["snapshot"] * 3                     # checkpoint.pt (epoch 4) is a duplicate
    net, cfg, epoch = routing.load_net(ck["path"].iloc[-1])
    assert epoch == 4 and cfg == run["cfg"] and not net.training
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), run["net"].state_dict().values()))
    # a batch job dir holding the run below it, or naming it in results.json, leads to the same checkpoints
    job = out.parent / "job"
    shutil.copytree(out, job / "runs" / "x")
    assert routing.checkpoints(job)["epoch"].tolist() == [1, 2, 4]
    other = out.parent / "job2"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"config": {"out_dir": str(out)}}))
    assert routing.checkpoints(other)["path"].tolist() == ck["path"].tolist()


def test_snapshots_every_and_vanilla(tmp_path, space, one_thread):
    cfg = tiny_cfg(supernet="vanilla", epochs=3, train_limit=128)
    _, data, net = closekit.build(cfg)
    closekit.train(net, data, cfg, out_dir=tmp_path, log=lambda *_: None, on_epoch_end=snapshots(every=2))
    ck = routing.checkpoints(tmp_path)
    assert ck["epoch"].tolist() == [2, 3] and ck["level"].tolist() == [6, 6]
    assert not list(tmp_path.rglob("*.tmp"))                          # atomic writes leave no temp files
    vnet = routing.load_net(ck["path"].iloc[-1])[0]
    r = routing.route(vnet, space, space.sample_list(5, 0))
    assert torch.equal(r.probs, torch.eye(6).expand(5, 6, 6)) and torch.equal(r.chosen, torch.arange(6).expand(5, 6))
    assert routing.summary(r)["entropy"] == 0 and routing.sharing_extent(r)["slots"].tolist() == [5] * 6


def test_checkpoints_errors(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="not found"):
        routing.checkpoints(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt"):
        routing.checkpoints(tmp_path)
    for name in ("a", "b"):
        shutil.copytree(run["out"], tmp_path / name)
    with pytest.raises(ValueError, match="holds 2 runs"):
        routing.checkpoints(tmp_path)


def test_route_probabilities_shapes_determinism(run):
    space, archs = run["space"], run["archs"]
    net = routing.load_net(routing.checkpoints(run["out"])["path"].iloc[-1])[0].train()
    r = routing.route(net, space, archs)
    assert r.probs.shape == (A, 6, 3) and r.chosen.shape == (A, 6) and r.level == 3
    assert torch.allclose(r.probs.sum(-1), torch.ones(A, 6)) and (r.probs >= 0).all()
    assert torch.equal(r.chosen, r.probs.argmax(-1)) and net.training   # train mode restored
    assert r.archs == [space.canonical_str(a) for a in archs]
    again = routing.route(net, space, archs)
    assert torch.equal(again.probs, r.probs) and torch.equal(again.chosen, r.chosen)
    g1, g2 = (routing.route(net, space, archs, routing="gumbel", seed=7) for _ in range(2))
    assert torch.equal(g1.chosen, g2.chosen) and torch.equal(g1.probs, r.probs)
    # the same as the GATE one architecture at a time, and as the supernet's own routing
    net.eval()
    with torch.no_grad():
        for i, a in enumerate(archs[:5]):
            logits = net.router.logits(torch.tensor(to_matrix(a)))[:, :3]
            assert torch.allclose(r.probs[i], F.softmax(logits, -1), atol=1e-6)
            assert torch.equal(net.route(a, sample=False)["cell"].argmax(1), r.chosen[i])
    with pytest.raises(ValueError, match="argmax, gumbel"):
        routing.route(net, space, archs, routing="soft")


@pytest.mark.parametrize("kw", [dict(router="gate"), dict(gate_level="arch"), dict(router="random"),
                                dict(router="gate", aw_nas_compat=True)], ids=str)
def test_route_matches_block_usage_loop(space, kw):
    """route gives the choices of net.route per arch (the old block_usage loop), argmax and seeded gumbel."""
    net, archs = grown(space, **kw), space.sample_list(A, 1)
    for mode in ("argmax", "gumbel"):
        gen, ref = torch.Generator().manual_seed(5), torch.zeros(6, 3, dtype=torch.long)
        net.eval()
        for a in archs:
            ref[torch.arange(6), net.route(a, sample=mode == "gumbel", generator=gen)["cell"].argmax(1)] += 1
        net.train()
        usage = block_usage(net, space, archs, routing=mode, seed=5)     # evaluate's API, now routing's
        assert usage.pivot(index="slot", columns="block", values="count").to_numpy().tolist() == ref.tolist()
    r = routing.route(net, space, archs)
    if kw.get("router") == "random":
        assert torch.allclose(r.probs, torch.full((A, 6, 3), 1 / 3)) and math.isclose(
            routing.summary(r)["entropy_norm"], 1, rel_tol=1e-6)


def test_level_zero_and_one(space):
    net = space.supernet(tiny_cfg(), 3, 10)
    with pytest.raises(RuntimeError, match="no active block yet"):
        routing.route(net, space, space.sample_list(3, 0))
    net.sharing.grow(1, None)
    r = routing.route(net, space, space.sample_list(3, 0))
    assert r.probs.shape == (3, 6, 1) and (r.probs == 1).all() and (r.chosen == 0).all()
    assert routing.entropy(r.probs).eq(0).all() and not routing.entropy(r.probs).signbit().any()
    s = routing.summary(r)
    assert math.isnan(s.pop("arch_dependence")) and s == {"level": 1, "archs": 3, "entropy": 0.0, "entropy_norm": 0.0,
                                                          "blocks_used": 1, "blocks_per_arch": 1.0}
    assert routing.routing_change(r, r)["changed"] == 0


def test_usage_entropy_sharing_add_up(run):
    space, archs = run["space"], run["archs"]
    r = routing.route(run["net"], space, archs)
    counts = routing.usage_counts(r)
    assert counts.shape == (6, 3) and counts.sum() == 6 * A and counts.sum(1).eq(A).all()
    t = routing.usage_table(r)
    assert len(t) == 18 and t["count"].sum() == 6 * A and (t["level"] == 3).all()
    assert t.equals(block_usage(run["net"], space, archs))
    e = routing.usage_table(r, expected=True)
    assert e.groupby("slot")["expected"].sum().round(4).eq(A).all()
    ent = routing.entropy(r.probs)
    assert ent.shape == (A, 6) and (ent >= 0).all() and (ent <= math.log(3) + 1e-6).all()
    et = routing.entropy_table(r)
    assert et["position"].tolist() == ["0→1", "0→2", "1→2", "0→3", "1→3", "2→3"]
    assert et["entropy"].tolist() == pytest.approx(ent.mean(0).tolist())
    sh = routing.sharing_extent(r)
    n_param = sum(lv and op in CONVS for a in archs for lv, op in zip(live_edges(a), a))
    assert sh["slots"].sum() == 6 * A and sh["param_slots"].sum() == n_param and sh["share"].sum() == pytest.approx(1)
    assert sh["archs"].tolist() == [int((r.chosen == k).any(1).sum()) for k in range(3)]
    assert (sh["param_archs"] <= sh["archs"]).all() and sh["slots"].tolist() == counts.sum(0).tolist()
    s = routing.summary(r)
    assert s["blocks_used"] == int((counts.sum(0) > 0).sum()) and 1 <= s["blocks_per_arch"] <= 3


def test_routing_change_and_over_checkpoints(run):
    space, archs = run["space"], run["archs"]
    ck = routing.checkpoints(run["out"])
    routes, summary = routing.over_checkpoints(ck, space, archs)
    assert list(routes) == [1, 2, 4] and summary["level"].tolist() == [1, 2, 3] and len(summary) == 3
    assert math.isnan(summary["changed_vs_prev"][0])
    a, b = routes[2], routes[4]
    ch = routing.routing_change(a, b)
    t = ch["transition"]
    assert t.shape == (2, 3) and int(t.to_numpy().sum()) == 6 * A and ch["pairs"] == 6 * A
    off = int(t.to_numpy().sum() - sum(t.iloc[k, k] for k in range(2)))
    assert ch["changed"] == pytest.approx(off / (6 * A)) == summary["changed_vs_prev"][2]
    assert ch["changed_by_slot"] == pytest.approx((a.chosen != b.chosen).float().mean(0).tolist())
    assert t.sum(axis=1).tolist() == routing.usage_counts(a).sum(0).tolist()     # rows: old blocks' usage
    same = routing.routing_change(b, b)
    diag = torch.diag(routing.usage_counts(b).sum(0)).numpy()
    assert same["changed"] == 0 and (same["transition"].to_numpy() == diag).all()
    with pytest.raises(ValueError, match="same architectures"):
        routing.routing_change(a, routing.route(run["net"], space, archs[:-1]))


def test_arch_table_notables_and_plots(run):
    space, net = run["space"], run["net"]
    one = routing.route(net, space, ["|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"])
    tab = routing.arch_table(one, space)
    assert len(tab) == 6 and tab["op"].tolist()[:3] == ["conv3x3", "none", "conv3x3"]   # routed as given
    assert tab["live"].tolist() == [False, False, False, True, False, False]
    assert (tab["p"] == [row[f"p{row['block']}"] for _, row in tab.iterrows()]).all()
    assert tab[["p0", "p1", "p2"]].sum(axis=1).round(6).eq(1).all()
    r = routing.route(net, space, run["archs"])
    truth = pd.DataFrame({"arch": r.archs, "acc": range(A)})
    notable = routing.notable_archs(r, space, truth)
    assert notable[f"best by truth ({A - 1})"] == r.archs[-1] and notable["worst by truth (0)"] == r.archs[0]
    assert all(space.to_str(space.parse(a)) == a for a in notable.values()) and "ResNet-like" in notable
    assert not any(k.startswith("best") for k in routing.notable_archs(r, space))
    figs = [space.draw(one.archs[0], tab, title="t"),
            plots.routing_entropy(routing.over_checkpoints(routing.checkpoints(run["out"]), space, r.archs[:5])[1]),
            plots.transitions([("a", routing.routing_change(r, r)["transition"])])]
    assert [len(f.axes) for f in figs] == [1, 1, 1]
    labels = [t.get_text() for t in figs[0].axes[0].texts]
    assert len(figs[0].axes[0].get_legend().get_texts()) == 3 and labels.count("none") == 3
    assert [x for x in labels if "p=" in x and "dead" not in x] == [f"skip\nB{tab['block'][3]} p={tab['p'][3]:.2f}"]
    assert sum("(dead)" in x for x in labels) == 2                        # the two convs on dead edges
    for f in figs:
        plt.close(f)


class LabelledRouter(sharing.Router):
    """A router that says what it is: ``describe`` reads its attributes, not its class."""
    label, stochastic = "my router", False


def test_describe_every_router(space, one_thread):
    """One place knows the routers: learned / sampled ones are stochastic, fixed tables are not."""
    nds = closekit.spaces.get("nds-resnet")
    ndscfg = closekit.RunConfig.from_yaml(ROOT / "params/nds/resnet-smoke.yaml", device="cpu")
    cases = [(dict(), ("node-level GATE", True)), (dict(gate_level="arch"), ("arch-level GATE", True)),
             (dict(router="random"), (sharing.RandomRouter.label, True)),
             (dict(supernet="vanilla"), (sharing.OwnRouter.label, False)),
             (dict(router="oneblock", num_blocks=1, cl_schedule=(1,)), (sharing.OneBlockRouter.label, False))]
    for kw, want in cases:
        assert routing.describe(space.supernet(tiny_cfg(**kw), 3, 10)) == want
    net = nds.supernet(ndscfg, 3, 10)
    label, stochastic = routing.describe(net)
    assert label.startswith("split table") and not stochastic
    net.sharing.router = LabelledRouter()
    assert routing.describe(net) == ("my router", False)
    net.sharing.router = torch.nn.Identity()
    with pytest.raises(TypeError, match="unknown router Identity"):
        routing.describe(net)


def test_fixed_table_runs_and_notables(one_thread):
    """NDS's split table in short, and no routing-uncertainty picks where routing is a fixed table."""
    nds = closekit.spaces.get("nds-resnet")
    cfg = closekit.RunConfig.from_yaml(ROOT / "params/nds/resnet-smoke.yaml", device="cpu")
    net = nds.supernet(cfg, 3, 10)
    net.epoch_start(2)                                                  # level 4: 3 splits
    archs = ["d1_2_3-w16_32_64", "d4_4_4-w64_64_64", "d12_1_1-w16_16_16"]      # 1, 2 and 3 blocks in use
    r = routing.route(net, nds, archs)
    table = routing.arch_table(r, nds, 1)
    runs = routing.block_runs(table)
    assert sorted(runs["block"].unique()) == list(range(r.level)) and len(runs) < len(table) / 3
    assert runs.groupby("cell")["live"].sum().tolist() == [3, 3, 3]              # d4_4_4: 3 live positions each
    for row in runs.itertuples():                                                 # every run is one block
        part = table[(table["cell"] == row.cell)].set_index("label").loc[row._2:row.to]
        assert (part["block"] == row.block).all()
    notable = routing.notable_archs(r, nds, stochastic=False)
    assert notable["most blocks in use"] == archs[2]
    assert not any("uncertain" in k or "confident" in k for k in notable)
