"""Sharing machinery: WIT, Gumbel straight-through, GATE growth, curriculum, and the reference quirks as switches."""
import copy

import pytest
import torch
import torch.nn.functional as F

from closekit import sharing
from closekit.gates import GatesEncoder, gumbel_straight_through
from closekit.spaces.nb201_arch import EDGES, parse, to_matrix
from closekit.train import make_optimizer
from conftest import batch, tiny_cfg

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def grown(space, level, **kw):
    net = space.supernet(tiny_cfg(**kw), 3, 10)
    for k in range(1, level + 1):
        net.sharing.grow(k, k - 2 if k > 1 else None)
    return net


def test_wit_adds_parent_to_own_init_including_bn_buffers(space):
    net = space.supernet(tiny_cfg(), 3, 10)
    bank = net.cells[0].bank
    bank.blocks[0]["nor_conv_3x3"][2].running_var.fill_(2.0)
    before = {k: v.clone() for k, v in bank.blocks[1].state_dict().items()}
    parent = {k: v.clone() for k, v in bank.blocks[0].state_dict().items()}
    net.sharing.grow(1, None)
    net.sharing.grow(2, 0)
    after = bank.blocks[1].state_dict()
    for k in before:
        assert torch.equal(after[k], before[k] + parent[k]), k
    assert torch.equal(after["nor_conv_3x3.2.running_var"], torch.full_like(before["nor_conv_3x3.2.running_var"], 3.0))
    assert not torch.equal(after["nor_conv_3x3.1.weight"], parent["nor_conv_3x3.1.weight"])  # add, not copy


def test_gumbel_straight_through_forward_one_hot_backward_soft():
    logits = torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    g = gumbel_straight_through(logits, 5.0, torch.Generator().manual_seed(0))
    assert set(g.detach().flatten().tolist()) <= {0.0, 1.0} and torch.equal(g.detach().sum(1), torch.ones(2))
    (g * torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_gumbel_max_samples_categorical():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(20000, 3)
    g = gumbel_straight_through(logits, 5.0, torch.Generator().manual_seed(1))
    freq = g.mean(0)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.015)


def test_gates_encoder_none_edges_carry_no_message():
    enc = GatesEncoder(5, 4, op_dim=4, node_dim=4, hidden=6, gcn_dims=(5, 5))
    adj = torch.tensor(to_matrix(parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")))[None]
    z = enc(adj)
    assert z.shape == (1, 4, 5)
    assert torch.allclose(z[0, 1:], torch.zeros(3, 5))   # no incoming messages and no residual for nodes 1..3


def test_mlp_inherit_row(space):
    net = grown(space, 1)
    last = net.router.mlp[-1]
    w0, b0 = last.weight.detach().clone(), last.bias.detach().clone()
    net.sharing.grow(2, 0)
    assert torch.equal(last.weight[1], w0[1] + w0[0]) and torch.equal(last.bias[1], b0[1] + b0[0])
    assert torch.equal(last.weight[0], w0[0]) and torch.equal(last.weight[2], w0[2])


@pytest.mark.parametrize("mlp_parent, row", [("prev", 1), ("wit", 0)])
def test_mlp_row_parent_switch(space, mlp_parent, row):
    """With a random WIT parent (block 0 for block 2), the new MLP row inherits from the previous block's row as
    the reference does (mlp_parent: prev), or from the WIT parent's (mlp_parent: wit)."""
    net = grown(space, 2, wit_from="random", mlp_parent=mlp_parent)
    last = net.router.mlp[-1]
    w = last.weight.detach().clone()
    net.sharing.grow(3, 0)
    assert torch.equal(last.weight[2], w[2] + w[row])


def test_arch_level_inherit_row_per_edge(space):
    net = grown(space, 1, gate_level="arch")
    w0 = net.router.mlp[-1].weight.detach().clone().view(6, 3, -1)
    net.sharing.grow(2, 0)
    w1 = net.router.mlp[-1].weight.view(6, 3, -1)
    assert torch.equal(w1[:, 1], w0[:, 1] + w0[:, 0]) and torch.equal(w1[:, 0], w0[:, 0])


def _train_steps(net, space, steps=3, seed=0, lr=0.1, arch=None):
    opt, _ = make_optimizer(net.parameters(), tiny_cfg(lr=lr))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = batch()
    for _ in range(steps):
        arch = arch or space.sample(gen)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, arch), y).backward()
        sharing.fill_zero_grads(net.touched)
        net.touched.clear()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
    return net


def test_others_no_grad_gives_the_same_updates_as_all(space):
    base = grown(space, 3, gate_forward="all")
    fast = copy.deepcopy(base)
    fast.gate_forward = "others_no_grad"
    init = copy.deepcopy(base)
    _train_steps(base, space)
    _train_steps(fast, space)
    for (n, a), (_, b) in zip(base.state_dict().items(), fast.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), rtol=0, atol=1e-6), n
    # every active block ran conv3x3 on ARCH's edges, so each moves (at least by weight decay via a zero grad)
    _train_steps(fast, space, steps=1, arch=ARCH)
    _train_steps(init, space, steps=0)
    for k in range(3):
        w = lambda net: net.cells[0].bank.blocks[k]["nor_conv_3x3"][1].weight
        assert not torch.equal(w(fast), w(init)), k


def test_selected_is_a_different_estimator(space):
    base = grown(space, 3, gate_forward="all")
    single = copy.deepcopy(base)
    single.gate_forward = "selected"
    _train_steps(base, space)
    _train_steps(single, space)
    diff = max((a - b).abs().max().item() for a, b in zip(base.parameters(), single.parameters()))
    assert diff > 1e-4


def test_level1_gate_gets_zero_grad_in_compat_and_none_otherwise(space):
    x, y = batch()
    for compat in (True, False):
        net = grown(space, 1, aw_nas_compat=compat)
        F.cross_entropy(net(x, ARCH), y).backward()
        grads = [p.grad for p in net.router.parameters()]
        if compat:   # softmax over one logit: exactly zero gradient, but weight decay will still act
            assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)
        else:        # the GATE is skipped while L = 1: no gradient, SGD leaves it alone
            assert all(g is None for g in grads)


def test_level2_gate_gets_gradient(space):
    net = grown(space, 2)
    x, y = batch()
    F.cross_entropy(net(x, ARCH), y).backward()
    assert sum(p.grad.abs().sum() for p in net.router.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("growth", ["inherit", "only_last", "full"])
def test_compat_orphans_grown_gate_params(space, growth):
    for compat in (True, False):
        net = grown(space, 1, aw_nas_compat=compat, mlp_growth=growth)
        opt, _ = make_optimizer(net.parameters(), tiny_cfg())
        tracked = {id(p) for p in opt.param_groups[0]["params"]}
        net.sharing.grow(2, 0)
        last = net.router.mlp[-1]
        assert (id(last.weight) in tracked) is (not compat)
        assert all(id(p) in tracked for p in net.cells[0].parameters())


def test_routing_shared_by_all_cells_and_own_router(space):
    net = grown(space, 3, cells_per_stage=2)
    gates = net.route(ARCH)["cell"]
    assert gates.shape == (len(EDGES), 3)
    vanilla = space.supernet(tiny_cfg(supernet="vanilla"), 3, 10)
    assert torch.equal(vanilla.route(ARCH)["cell"], torch.eye(6))


def test_route_before_first_level_raises(space):
    net = space.supernet(tiny_cfg(), 3, 10)
    with pytest.raises(RuntimeError, match="no active block"):
        net.route(ARCH)
