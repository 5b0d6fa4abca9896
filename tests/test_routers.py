"""The router protocol (closekit/sharing.py): every router on every space that supports it, the few-shot router's
split, and a new router written as one class in a test file."""
import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from closekit import RunConfig, Trainer, build, sharing, spaces
from closekit.sharing import Router, register

ROOT = Path(__file__).resolve().parents[1]
FEWSHOT_SPLIT = 3                       # the split epoch of the few-shot tests


def schedule(router, sp):
    """num_blocks and cl_schedule each router needs (few-shot: one block per op; one block: one)."""
    if router == "fewshot":
        n = sp.supernet_cls.num_ops
        return dict(num_blocks=n, cl_schedule=[1] + [FEWSHOT_SPLIT] * (n - 1))
    if router == "oneblock":
        return dict(num_blocks=1, cl_schedule=[1])
    return {}


def cfg_for(name, router, **kw):
    """The space's smoke config on synthetic data with ``router`` (own: the vanilla supernet)."""
    sp = spaces.get(name)
    over = dict(dataset="synthetic", image_size=8, train_limit=256, device="cpu", truth=None, archs="sample:4",
                eval_max_batches=1, eval_batch_size=64, batch_size=64, epochs=FEWSHOT_SPLIT + 1)
    over.update({"supernet": "vanilla"} if router == "own" else {"router": router, **schedule(router, sp)})
    return RunConfig.from_yaml(ROOT / "params" / sp.params_file("smoke"), **{**over, **kw})


CASES = [(name, r) for name in sorted(spaces.SPACES) for r in spaces.get(name).supernet_cls.routers()
         if not r.startswith("test-")]


@pytest.mark.parametrize("name, router", CASES, ids=lambda v: str(v))
def test_every_router_routes_grows_trains_and_resumes(name, router, tmp_path):
    cfg = cfg_for(name, router)
    space, data, net = build(cfg)
    assert net.sharing.router.name == router and set(router_keys(net)) <= set(net.applies())
    tr = Trainer(net, data, cfg, space=space, out_dir=tmp_path, log=lambda *_: None)
    tr.fit(cfg.epochs)
    arch = space.sample(torch.Generator().manual_seed(3))
    level = net.active_level()
    assert level == net.num_blocks                                 # every router reaches its full bank
    for routes in (net.route(arch, sample=False), net.route_probs(arch)):
        assert tuple(routes) == tuple(net.cell_types)
        for c, r in routes.items():
            assert r.shape == (len(space.slots(arch).query("cell == @c")), level)
            assert torch.allclose(r.sum(-1), torch.ones(len(r)))
    tr.save()
    _, _, again = build(cfg)
    Trainer(again, data, cfg, space=space, out_dir=tmp_path, log=lambda *_: None).load()
    seeded = [m.eval().route(arch, sample=False, generator=torch.Generator().manual_seed(0)) for m in (net, again)]
    for c in net.cell_types:                                       # exact resume of the routing
        assert torch.equal(seeded[0][c], seeded[1][c])


def router_keys(net):
    return type(net.sharing.router).keys


def test_a_router_a_space_does_not_support_is_refused_in_one_line():
    with pytest.raises(ValueError, match="router='gate' does not apply to nds-resnet; use one of "):
        build(cfg_for("nds-resnet", "gate"))
    with pytest.raises(ValueError, match="fewshot_edge=2 does not apply to nds-resnet"):
        build(cfg_for("nds-resnet", "table", fewshot_edge=2))


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_router_own_on_a_close_supernet_is_refused_in_one_line(name):
    """router: own is the vanilla supernet's; on supernet: close it would silently build one block per slot."""
    with pytest.raises(ValueError, match="router='own' is the vanilla supernet's; set supernet: vanilla"):
        build(dataclasses.replace(cfg_for(name, "gate"), supernet="close", router="own"))


def weights(net):
    return {k: v.clone() for k, v in net.state_dict().items() if ".blocks.0." in k or "blocks" not in k}


def test_fewshot_trains_bitwise_like_one_block_before_the_split_then_copies_it():
    """Before the split the few-shot supernet is the one-block control, bit for bit (its other blocks are built off
    the RNG); at the split every block is an exact copy of block 0."""
    runs = {}
    for router in ("oneblock", "fewshot"):
        cfg = cfg_for("nb201", router, epochs=FEWSHOT_SPLIT - 1)
        space, data, net = build(cfg)
        tr = Trainer(net, data, cfg, space=space, log=lambda *_: None)
        runs[router] = tr, tr.fit().train_loss.tolist(), weights(net)
    (_, loss1, w1), (few, loss2, w2) = runs["oneblock"], runs["fewshot"]
    assert loss1 == loss2
    assert w1.keys() - w2.keys() == set()
    assert all(torch.equal(w1[k], w2[k]) for k in w1 if "level" not in k)
    few.epoch_start(FEWSHOT_SPLIT)
    bank = few.net.cells[0].bank
    for k in range(1, few.net.num_blocks):
        assert all(torch.equal(v, bank.blocks[0].state_dict()[n]) for n, v in bank.blocks[k].state_dict().items())


@pytest.mark.parametrize("name, edge", [("nb201", 2), ("nb301", 3)])
def test_after_the_split_an_architecture_uses_only_its_ops_block(name, edge):
    cfg = cfg_for(name, "fewshot", fewshot_edge=edge)
    space, _, net = build(cfg)
    for e in range(1, FEWSHOT_SPLIT + 1):
        net.epoch_start(e)
    net.eval()
    x, trained = torch.randn(8, 3, 8, 8), copy.deepcopy(net.state_dict())
    for arch in space.sample_list(3, seed=1):
        net.load_state_dict(trained)
        k = [o for ops in net.slot_ops(arch).values() for o in ops][edge]    # the op on the split slot picks the block
        assert all(r.argmax(1).tolist() == [k] * len(r) for r in net.route(arch).values())
        before = net(x, arch)
        with torch.no_grad():
            for bank in net.sharing.banks:                                    # perturb every other sub-supernet
                for j, block in enumerate(bank.blocks):
                    if j != k:
                        for p in block.parameters():
                            p.add_(1.0)
        assert torch.equal(net(x, arch), before)


@register("test-alternate")
class AlternateRouter(Router):
    """A new sharing idea as one class: slot i uses block i mod level (grows by WIT from the previous block)."""

    def route(self, net, arch, level, sample=True, generator=None):
        return {c: sharing.one_hot([i % level for i in range(len(ids))], level) for c, ids in
                net.own_blocks(arch).items()}


def test_a_new_router_is_one_class():
    """Registering the class above is all it takes: every space offering ``own_blocks`` runs it."""
    assert all("test-alternate" in spaces.get(n).supernet_cls.routers() for n in spaces.SPACES)
    cfg = cfg_for("nb201", "test-alternate", epochs=3)
    space, data, net = build(cfg)
    hist = Trainer(net, data, cfg, space=space, log=lambda *_: None).fit()
    assert net.active_level() == 3 and torch.isfinite(torch.tensor(hist.train_loss.tolist())).all()
    assert net.route(space.sample(None))["cell"].argmax(1).tolist() == [0, 1, 2, 0, 1, 2]
