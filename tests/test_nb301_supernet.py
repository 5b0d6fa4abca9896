"""NB301 supernets and stand-alone DARTS nets: golden parameter counts derived by hand from the layer shapes, the
DARTS layout, the stride-2 bank of reduction cells, vanilla edge blocks, WIT in both banks, the two-cell GATE."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from closekit import RunConfig, Trainer
from closekit.gates import CellGate
from closekit.groundtruth.minibench import Recipe
from closekit.spaces import get
from closekit.spaces.nb301 import DARTS_V2, Standalone
from conftest import batch

SPACE = get("nb301")
PAPER = dict(space="nb301", channels_init=16, cells_per_stage=2, num_blocks=5, cl_schedule=(1, 201, 401, 601, 801),
             gates_op_dim=32, gates_node_dim=32, gates_hidden=32, gates_gcn_dims=(64, 64, 64, 64))
TINY = dict(space="nb301", dataset="synthetic", channels_init=4, cells_per_stage=1, num_blocks=3, cl_schedule=(1, 2, 3),
            gates_op_dim=8, gates_node_dim=8, gates_hidden=8, gates_gcn_dims=(16, 16), mlp_hidden=(16,),
            batch_size=16, truth=None, archs="sample:4", device="cpu")
# the 8-layer DARTS macro at C=16: (C_prev_prev, C_prev, C, reduction) per cell; stem 3C = 48; concat 4C out
LAYOUT = [(48, 48, 16, False), (48, 64, 16, False), (64, 64, 32, True), (64, 128, 32, False),
          (128, 128, 32, False), (128, 128, 64, True), (128, 256, 64, False), (256, 256, 64, False)]
STEM = 3 * 48 * 9 + 2 * 48                   # conv3x3 3->48, affine BN
HEAD = 256 * 10 + 10


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def opset(C, stride):
    """Non-affine op-set: sep_k 2(kkC + C^2), dil_k kkC + C^2, pools 0 (non-affine BN), skip 0 or FactorizedReduce
    C^2 at stride 2."""
    sep = sum(2 * (k * k * C + C * C) for k in (3, 5))
    dil = sum(k * k * C + C * C for k in (3, 5))
    return sep + dil + (C * C if stride == 2 else 0)


def pre(cpp, cp, C):
    return cpp * C + cp * C                  # ReLU-Conv1x1 or FactorizedReduce (two c_in x C/2 convs): c_in * C each


def test_golden_param_count_vanilla_reference_scale():
    # normal: 14 stride-1 op-sets; reduce: the 8 edges out of nodes 0, 1 stride 2 (2+2+2+2), the other 6 stride 1
    cells = sum(pre(a, b, C) + (8 * opset(C, 2) + 6 * opset(C, 1) if red else 14 * opset(C, 1))
                for a, b, C, red in LAYOUT)
    net = SPACE.supernet(RunConfig(**PAPER, supernet="vanilla"), 3, 10)
    assert n_params(net) == STEM + cells + HEAD == 1_930_618
    assert [len(c.bank.blocks) for c in net.cells] == [14] * 8 and all(c.bank2 is None for c in net.cells)


def test_golden_param_count_close_reference_scale():
    # K = 5 GLOW blocks per normal cell, 5 stride-1 + 5 stride-2 per reduction cell
    banks = sum(5 * opset(C, 1) + (5 * opset(C, 2) if red else 0) for _, _, C, red in LAYOUT)
    pres = sum(pre(a, b, C) for a, b, C, _ in LAYOUT)
    # GATE: init nodes 2 cells x 2 x 32, step node 2 x 32, 7 op embeddings x 32 (the zero row is a buffer),
    # Linear 32->32, GCN weights 32x64 + 3 x 64x64, op attention 4 x (32*64 + 64); MLP 128-200-200-200-5
    encoder = 128 + 64 + 224 + (32 * 32 + 32) + (32 * 64 + 3 * 64 * 64) + 4 * (32 * 64 + 64)
    mlp = (128 * 200 + 200) + 2 * (200 * 200 + 200) + (200 * 5 + 5)
    net = SPACE.supernet(RunConfig(**PAPER, supernet="close"), 3, 10)
    assert sum(n_params(b) for c in net.cells for b in c.banks()) == banks == 867_520
    assert n_params(net.router.encoder) == encoder == 24_256 and n_params(net.router.mlp) == mlp == 107_205
    assert n_params(net) == STEM + pres + banks + HEAD + encoder + mlp == 1_098_431


def test_golden_param_count_standalone_darts_v2():
    # affine BN: sep_k 2(kkC + C^2) + 4C, dil_k kkC + C^2 + 2C; preprocessing c_in*C + 2C each; bare pools.
    # DARTS-V2 normal: 5 sep3 + dil3 + 2 skips; reduce: max pools from the inputs and skips from node 2: 0 params
    sep3, dil3 = (lambda C: 2 * (9 * C + C * C) + 4 * C), (lambda C: 9 * C + C * C + 2 * C)
    cells = sum(pre(a, b, C) + 4 * C + (0 if red else 5 * sep3(C) + dil3(C)) for a, b, C, red in LAYOUT)
    net = SPACE.standalone(DARTS_V2, Recipe(space="nb301", C=16, N=2), 3, 10)
    assert n_params(net) == STEM + cells + HEAD == 246_106
    # the DARTS paper's 3.3M for DARTS-V2 at C=36, 20 cells (no auxiliary head)
    assert n_params(Standalone(DARTS_V2, 36, 6, 3, 10)) == 3_349_342


def test_darts_layout():
    net = SPACE.supernet(RunConfig(**PAPER, supernet="vanilla"), 3, 10)
    assert [c.reduction for c in net.cells] == [r for *_, r in LAYOUT]              # reductions at 2 and 5
    assert [type(c.pre0).__name__ for c in net.cells] == ["ReLUConvBN"] * 3 + ["FactorizedReduce"] + \
        ["ReLUConvBN"] * 2 + ["FactorizedReduce", "ReLUConvBN"]
    assert all(not m.affine for c in net.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net5 = SPACE.supernet(RunConfig(**{**PAPER, "cells_per_stage": 5}, supernet="vanilla"), 3, 10)
    assert [i for i, c in enumerate(net5.cells) if c.reduction] == [5, 11] and len(net5.cells) == 17
    assert net(torch.randn(2, 3, 16, 16), DARTS_V2).shape == (2, 10)
    assert net(torch.randn(2, 3, 12, 12), DARTS_V2).shape == (2, 10)                   # odd sizes after reductions


def grads(net):
    return {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_vanilla_connection_uses_its_edge_block():
    net = SPACE.supernet(RunConfig(**TINY, supernet="vanilla"), 3, 10)
    arch = SPACE.parse(DARTS_V2)
    r = net.route(arch)
    # normal node 5 <- (skip, 0), (dil3, 2): edges 9 + 0 and 9 + 2
    assert r["normal"].argmax(1).tolist() == [0, 1, 2, 3, 6, 5, 9, 11]
    x, y = batch(n=4)
    F.cross_entropy(net(x, arch), y).backward()
    g = grads(net)
    assert any(n.startswith("layers.0.bank.blocks.11.dil_conv_3x3") for n in g)
    assert not any(n.startswith("layers.0.bank.blocks.10.") for n in g)
    # reduction cell (layer 1): node 3 <- (skip, 2) stride 1 identity, (max, 1) stride 2; reduce edge 0 is stride 2
    assert net.cells[1].bank.blocks[0]["sep_conv_3x3"][1].stride == (2, 2)
    assert net.cells[1].bank.blocks[4]["sep_conv_3x3"][1].stride == (1, 1)


def test_close_reduce_cell_uses_the_stride2_bank_for_input_edges():
    cfg = RunConfig(**TINY, supernet="close", router="random")
    net = SPACE.supernet(cfg, 3, 10)
    net.epoch_start(1)
    arch = SPACE.parse("Genotype(normal=[" + ", ".join(["('sep_conv_3x3', 0)", "('sep_conv_3x3', 1)"] * 4) +
                       "], normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 0), ('dil_conv_3x3', 1), "
                       "('sep_conv_3x3', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
                       "('sep_conv_3x3', 4), ('sep_conv_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
    x, y = batch(n=4)
    F.cross_entropy(net(x, arch), y).backward()
    g = grads(net)
    red = net.cells[1]
    assert red.reduction and red.bank2.blocks[0]["sep_conv_5x5"][1].stride == (2, 2)
    assert any(n.startswith("layers.1.bank2.blocks.0.sep_conv_5x5") for n in g)       # from node 0: stride 2
    assert not any(n.startswith("layers.1.bank.blocks.0.sep_conv_5x5") for n in g)
    assert any(n.startswith("layers.1.bank.blocks.0.sep_conv_3x3") for n in g)        # from node 2: stride 1


def test_wit_applies_to_both_banks():
    net = SPACE.supernet(RunConfig(**TINY, supernet="close"), 3, 10)
    net.epoch_start(1)
    red = net.cells[1]
    before = {b: [p.detach().clone() for p in bank.blocks[1].parameters()] for b, bank in (("s1", red.bank),
                                                                                             ("s2", red.bank2))}
    parents = {b: [p.detach().clone() for p in bank.blocks[0].parameters()] for b, bank in (("s1", red.bank),
                                                                                              ("s2", red.bank2))}
    net.epoch_start(2)
    for b, bank in (("s1", red.bank), ("s2", red.bank2)):
        for new, old, par in zip(bank.blocks[1].parameters(), before[b], parents[b]):
            assert torch.allclose(new, old + par)                                     # own init + parent, per bank


@pytest.mark.parametrize("router", ["node", "arch"])
def test_gate_routes_both_cells_and_grows(router):
    net = SPACE.supernet(RunConfig(**TINY, supernet="close", gate_level=router), 3, 10)
    for e in (1, 2, 3):
        net.epoch_start(e)
    net.eval()                                             # MLP dropout off
    arch = SPACE.sample(torch.Generator().manual_seed(0))
    r, p = net.route(arch, sample=False), net.route_probs(arch)
    assert set(r) == {"normal", "reduce"} and r["normal"].shape == (8, 3) == p["reduce"].shape
    assert isinstance(net.router, CellGate)
    assert net.router.mlp[-1].out_features == (3 if router == "node" else 24)
    if router == "arch":                                   # the reference's arch-level gate: the same for both cells
        assert torch.equal(p["normal"], p["reduce"])
    if router == "arch":
        return
    # swapping the two inputs of a node permutes its two connections' routing (the GATE reads (from, to) pairs)
    swapped = [list(c) for c in arch]
    swapped[0][6], swapped[0][7] = swapped[0][7], swapped[0][6]
    q = net.route_probs(swapped)["normal"]
    assert torch.allclose(q[[0, 1, 2, 3, 4, 5, 7, 6]], p["normal"], atol=1e-6)


def test_gate_forward_modes_give_the_same_gradients():
    cfgs = [RunConfig(**TINY, supernet="close", gate_forward=g, dropout=0.0, mlp_dropout=0.0)
            for g in ("all", "others_no_grad")]
    x, y = batch(n=8)
    out = []
    for cfg in cfgs:
        torch.manual_seed(0)
        net = SPACE.supernet(cfg, 3, 10)
        for e in (1, 2, 3):
            net.epoch_start(e)
        arch = SPACE.sample(torch.Generator().manual_seed(1))
        routing = net.route(arch, generator=torch.Generator().manual_seed(2))
        F.cross_entropy(net(x, arch, routing), y).backward()
        net.after_backward()
        out.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    assert out[0].keys() == out[1].keys()
    for n in out[0]:
        assert torch.allclose(out[0][n], out[1][n], atol=1e-5), n


KINDS = [dict(supernet="vanilla")] + [dict(supernet="close", gate_level=r, gate_forward=g, aw_nas_compat=c,
                                           mlp_growth=m)
                                      for r, g, c, m in itertools.product(("node", "arch"), ("all", "selected"),
                                                                          (False, True), ("inherit", "full"))] + \
    [dict(supernet="close", router="random", wit_from="random")]


@pytest.mark.parametrize("kw", KINDS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_smoke_every_supernet_kind(kw):
    cfg = RunConfig(**{**TINY, **kw})
    net = SPACE.supernet(cfg, 3, 10)
    for e in ((1, 2, 3) if kw["supernet"] == "close" else (1,)):
        net.epoch_start(e)
    tr = Trainer(net, None, cfg, space=SPACE, log=lambda *_: None)
    x, y = batch(n=8)
    loss, logits = tr.step(x, y)
    assert torch.isfinite(loss) and logits.shape == (8, 10)


def test_standalone_drop_path():
    recipe = Recipe(space="nb301", C=4, N=1)
    net = Standalone(DARTS_V2, 4, 1, 3, 10, drop_path=0.5)
    x = torch.randn(4, 3, 8, 8)
    net.eval()
    assert torch.equal(net(x), net(x))                                         # no drop-path at evaluation
    net.train()
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, net(x))
    assert SPACE.standalone(DARTS_V2, recipe, 3, 10)(x).shape == (4, 10)
