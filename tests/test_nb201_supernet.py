"""NB201 supernets: golden parameter counts, shapes, live-edge computation, registry-parametrised smoke runs."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from closekit import RunConfig, Trainer
from closekit.gates import Gate
from closekit.groundtruth.minibench import Recipe
from closekit.spaces import get
from closekit.spaces.nb201_arch import OPS
from conftest import batch, tiny_cfg


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def grown(cfg, space, level=None, in_ch=3):
    net = space.supernet(cfg, in_ch, 10)
    net.epoch_start(cfg.cl_schedule[level - 1] if level else 1)
    return net


def test_registry(space):
    assert get("nb201") is space
    with pytest.raises(KeyError, match="unknown search space 'nb301x'"):
        get("nb301x")


def test_golden_param_count_vanilla_paper_scale(space):
    # stem 3*16*9 + BN 2*16 = 464; cells 6 op-sets x 10C^2 x 5 cells at C = 16, 32, 64: 1,612,800;
    # res blocks 16->32: 4,608+64 + 9,216+64 + 512 = 14,464; 32->64: 18,432+128 + 36,864+128 + 2,048 = 57,600;
    # head BN 128 + linear 64*10+10 = 778.  Total 1,686,106.
    net = space.supernet(RunConfig(supernet="vanilla", channels_init=16, cells_per_stage=5), 3, 10)
    assert n_params(net) == 1_686_106
    assert sum(n_params(c.bank) for c in net.cells) == 1_612_800


def test_golden_param_count_close_paper_scale(space):
    # 5 GLOW blocks: 5/6 of the vanilla cell params (1,344,000) + the same 73,306 outside cells + GATE:
    # GATES 48 + (48*96+96) + 5*48 + (96*128 + 4*128*128) + 5*(48*128+128) = 114,176;
    # MLP (256*200+200) + 2*(200*200+200) + (200*5+5) = 132,805.  Total 1,664,287.
    net = space.supernet(RunConfig(supernet="close", channels_init=16, cells_per_stage=5), 3, 10)
    assert sum(n_params(c.bank) for c in net.cells) == 1_344_000
    assert n_params(net.router.encoder) == 114_176
    assert n_params(net.router.mlp) == 132_805
    assert n_params(net) == 1_664_287


def test_macro_shapes(space):
    cfg = RunConfig(supernet="vanilla", channels_init=4, cells_per_stage=2, dropout=0.0)
    net = space.supernet(cfg, 1, 7)
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Cell"] * 2 + ["ResBlock"] + ["Cell"] * 2 + ["ResBlock"] + ["Cell"] * 2
    assert net(torch.randn(2, 1, 16, 16), "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|").shape == (2, 7)
    # cell BN non-affine, reduction BN affine
    assert all(not m.affine for c in net.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.affine for m in net.layers[2].modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_dead_output_gives_constant_logits(space):
    net = space.supernet(RunConfig(supernet="vanilla", channels_init=4, cells_per_stage=1, dropout=0.0), 3, 10).eval()
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    out = net(torch.randn(4, 3, 8, 8), dead)
    assert torch.allclose(out, out[:1].expand_as(out))      # the cell output is zero whatever the input


def test_only_live_edges_receive_gradient(space):
    net = space.supernet(RunConfig(supernet="vanilla", channels_init=4, cells_per_stage=1), 3, 10)
    # edge 0 (0->1) conv3x3 feeds node 1 which reaches nothing; edge 3 (0->3) conv1x1 is live
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    x, y = batch()
    F.cross_entropy(net(x, arch), y).backward()
    cell = net.cells[0]
    assert cell.bank.blocks[0]["nor_conv_3x3"][1].weight.grad is None      # dead edge never ran
    assert cell.bank.blocks[3]["nor_conv_1x1"][1].weight.grad is not None   # vanilla: edge 3 -> block 3
    assert all(cell.bank.blocks[k]["nor_conv_1x1"][1].weight.grad is None for k in (0, 1, 2, 4, 5))


KINDS = [dict(supernet="vanilla"), dict(supernet="close", router="random"),
         dict(supernet="close", router="random", wit_from="random")] + [
    dict(supernet="close", router="gate", gate_level=lv, gate_forward=g, aw_nas_compat=c, mlp_growth=m)
    for lv, g, c, m in itertools.product(("node", "arch"), ("all", "others_no_grad", "selected"),
                                         (False, True), ("inherit", "only_last", "full"))]


@pytest.mark.parametrize("kw", KINDS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_smoke_every_supernet_kind(space, kw):
    cfg = tiny_cfg(**kw)
    net = grown(cfg, space, level=cfg.num_blocks if kw["supernet"] == "close" else None)
    tr = Trainer(net, None, cfg, space=space, log=lambda *_: None)
    x, y = batch()
    for _ in range(2):
        loss, _ = tr.step(x, y)
    assert torch.isfinite(loss)
    net.eval()
    gates = net.route(space.sample(tr.arch_gen), sample=False)["cell"]
    assert gates.shape == (6, net.num_blocks if kw["supernet"] == "vanilla" else cfg.num_blocks)
    assert torch.equal(gates.sum(1), torch.ones(6))
    if isinstance(net.router, Gate):
        assert net.router.mlp[-1].out_features == (3 if kw["gate_level"] == "node" else 18)


def test_golden_param_count_standalone(space):
    # three live conv3x3 edges per cell, affine BN: 3 * (9C^2 + 2C) at C = 16, 32, 64, 5 cells each
    # = 35,040 + 139,200 + 554,880 = 729,120, plus the 73,306 outside the cells: 802,426
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert n_params(space.standalone(arch, Recipe(C=16, N=5), 3, 10)) == 802_426
    # a conv on a dead edge is not built: node 1 feeds nothing that reaches the output
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    net = space.standalone(dead, Recipe(C=4, N=1), 3, 10)
    assert list(net.layers[0].ops) == ["3"]
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_standalone_matches_vanilla_path(space):
    # a vanilla supernet running one arch and a stand-alone net holding the same weights compute the same function
    # (fresh affine BN is weight 1, bias 0: the same as the supernet's non-affine BN)
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    sup = space.supernet(RunConfig(supernet="vanilla", channels_init=4, cells_per_stage=1, dropout=0.0), 3, 10)
    alone = space.standalone(arch, Recipe(C=4, N=1), 3, 10)
    state = {k: v for k, v in sup.state_dict().items() if "bank" not in k}
    for i, layer in enumerate(alone.layers):
        for e in getattr(layer, "ops", {}):
            block = sup.layers[i].bank.blocks[int(e)][OPS[arch[int(e)]]]   # vanilla: edge e uses block e
            state.update({f"layers.{i}.ops.{e}.{k}": v for k, v in block.state_dict().items()})
    missing = alone.load_state_dict(state, strict=False).missing_keys
    assert all(k.endswith((".2.weight", ".2.bias")) for k in missing)   # only the affine BN params are new
    x = torch.randn(4, 3, 8, 8)
    assert torch.allclose(sup.train()(x, arch), alone.train()(x), atol=1e-5)
