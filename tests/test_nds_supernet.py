"""NDS supernets: the reference's split tables, WIT, golden parameter counts, ordinal slicing, group conv, refusals."""
import copy

import pytest
import torch
import torch.nn.functional as F

from closekit import RunConfig, spaces
from closekit.groundtruth.minibench import Recipe
from closekit.sharing import split_table
from closekit.spaces.nds_ops import GroupConv

RESNET_CL = (1,) * 9 + (201, 201, 401, 401, 601, 601, 801, 801)         # cl-9-22446688
RESNEXTA_CL = (1,) * 9 + (201, 401, 601, 801)                           # cl-9-2468


def cfg(space, supernet="close", **kw):
    K, sched = (17, RESNET_CL) if space == "nds-resnet" else (13, RESNEXTA_CL)
    base = dict(space=space, supernet=supernet, channels_init=16, num_blocks=K, cl_schedule=sched,
                weight_decay=5e-5, grad_clip=None)
    return RunConfig(**{**base, **kw})


@pytest.mark.parametrize("space, first, final", [
    ("nds-resnet", [0, 4, 3, 5, 6, 2, 8, 8, 7, 7, 7] + [1] * 12,
     [0, 4, 3, 5, 6, 2, 8, 9, 7, 10, 11, 1, 14, 15, 13, 16, 16] + [12] * 6),
    ("nds-resnexta", [0, 3, 4, 2, 6, 5, 7, 1, 1, 1, 1, 8, 8, 8, 8],
     [0, 3, 4, 2, 6, 5, 7, 1, 10, 9, 11, 8, 8, 12, 12])])
def test_reference_split_tables_at_epoch_1_and_the_end(space, first, final):
    # the tables of reference/close-algorithm.md §4, reached through the supernet's curriculum (tiny widths)
    net = spaces.get(space).supernet(cfg(space, channels_init=1), 3, 10)
    log = net.epoch_start(1).log
    assert net.router.table(int(net.level)) == first and int(net.level) == 9 and len(log) == 9          # 8 splits before any step
    for e in (201, 401, 601, 801):
        net.epoch_start(e)
    assert net.router.table(int(net.level)) == final and int(net.level) == net.num_blocks
    r = net.route(spaces.get(space).sample(None))
    assert list(r) == ["stage1", "stage2", "stage3"] and all(torch.equal(v.argmax(1), torch.tensor(final))
                                                           for v in r.values())


def test_max_criterion_splits_the_first_longest_group():
    # 8 positions: [0,8) -> [0,4) [4,8)=1 -> group 0: [0,2) [2,4)=2 -> group 1: [4,6) [6,8)=3
    assert split_table(8, 4, "max")[0] == [0, 0, 2, 2, 1, 1, 3, 3]
    # pre: the shallowest group longer than 1 each time: [0,8) -> [0,4),[4,8) -> [0,2),[2,4) -> [0,1),[1,2)
    assert split_table(8, 4, "pre", 4)[0] == [0, 3, 2, 2, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="cannot split"):
        split_table(2, 3, "max")


@pytest.mark.parametrize("buffers", [True, False])
def test_wit_adds_the_split_block_to_the_new_one(buffers):
    c = cfg("nds-resnet", channels_init=1, num_blocks=3, cl_schedule=(1, 1, 2), wit_buffers=buffers)
    net = spaces.get("nds-resnet").supernet(c, 3, 10)
    net.epoch_start(1)                                          # level 2: split of group 0, WIT 0 -> 1
    bank = net.banks[1]
    for m in bank.blocks[0].modules():                          # give block 0 non-trivial BN stats
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(3.0)
            m.running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in bank.blocks[2].state_dict().items()}
    parent = {k: v.clone() for k, v in bank.blocks[0].state_dict().items()}
    assert net.router.splits[1] == (0, 2, 5, 11)        # pre: group 0 ([0, 11), start < K + 1) splits again
    net.epoch_start(2)
    after = bank.blocks[2].state_dict()
    for k, v in after.items():
        summed = "running" in k or "num_batches" in k
        want = before[k] + parent[k] if (buffers or not summed) else before[k]
        assert torch.equal(v, want), k
    assert any("running_var" in k for k in after)


def test_gate_forward_and_gate_routers_are_refused_in_one_line():
    for bad in (dict(gate_forward="all"), dict(router="gate"), dict(gate_level="arch"), dict(fewshot_edge=1)):
        with pytest.raises(ValueError) as e:
            spaces.get("nds-resnexta").supernet(cfg("nds-resnexta", channels_init=1, **bad), 3, 10)
        assert "\n" not in str(e.value) and str(list(bad)[0]) in str(e.value)
    with pytest.raises(ValueError, match="num_blocks=16 must be in 1..15"):
        spaces.get("nds-resnexta").supernet(cfg("nds-resnexta", channels_init=1, num_blocks=16,
                                                cl_schedule=(1,) * 16), 3, 10)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


def test_golden_parameter_counts_of_the_reference_supernets():
    W, C = 256, 10
    stem = 3 * 16 * 9 + 2 * 16                                  # conv3x3 3->16, affine BN
    fc = W * C + C                                              # 1x1-conv FC with bias
    # ResNet: basic blocks (two 3x3 convs), non-affine BN (no params); first blocks carry a 1x1 projection
    basic = 2 * 9 * W * W
    first = (9 * 16 * W + 9 * W * W + 16 * W) + 2 * (2 * 9 * W * W + W * W)
    want = {"vanilla": stem + first + 3 * 23 * basic + fc, "close": stem + first + 3 * 17 * basic + fc}
    for sn, n in want.items():
        assert nparams(spaces.get("nds-resnet").supernet(cfg("nds-resnet", sn), 3, C)) == n
    assert want == {"vanilla": 84_519_898, "close": 63_286_234}
    # ResNeXt-A: bottleneck 1x1 (W->W_b), dense 3x3 (searchable groups), 1x1 (W_b->W); max W_b = W
    bott = W * W + 9 * W * W + W * W
    first = (16 * W + 9 * W * W + W * W + 16 * W) + 2 * (bott + W * W)
    want = {"vanilla": stem + first + 3 * 15 * bott + fc, "close": stem + first + 3 * 13 * bott + fc}
    for sn, n in want.items():
        assert nparams(spaces.get("nds-resnexta").supernet(cfg("nds-resnexta", sn), 3, C)) == n
    assert want == {"vanilla": 34_679_770, "close": 30_354_394}


def test_golden_parameter_counts_of_standalone_nets():
    bn = lambda c: 2 * c                                        # noqa: E731  affine BN in stand-alone nets
    r16 = Recipe(space="nds-resnet", C=16)
    # ResNet d1_1_1-w16_16_16: stage 1 keeps 16 channels at stride 1 (no projection); stages 2, 3 project
    block = 2 * (9 * 16 * 16 + bn(16))
    want = (27 * 16 + bn(16)) + block + 2 * (block + 16 * 16 + bn(16)) + 16 * 10 + 10
    assert nparams(spaces.get("nds-resnet").standalone("d1_1_1-w16_16_16", r16, 3, 10)) == want == 15_226
    # ResNeXt-A d2_1_1-w64_128_16-b0.25_0.5_1-g2_1_4: w_b = 16, 64, 16
    def bott(w_in, w, wb, g, proj):
        return (w_in * wb + bn(wb)) + (9 * wb * wb // g + bn(wb)) + (wb * w + bn(w)) + \
            ((w_in * w + bn(w)) if proj else 0)
    want = (27 * 16 + bn(16)) + bott(16, 64, 16, 2, True) + bott(64, 64, 16, 2, False) + \
        bott(64, 128, 64, 1, True) + bott(128, 16, 16, 4, True) + 16 * 10 + 10
    got = nparams(spaces.get("nds-resnexta").standalone("d2_1_1-w64_128_16-b0.25_0.5_1-g2_1_4",
                                                        Recipe(space="nds-resnexta", C=16), 3, 10))
    assert got == want


def test_ordinal_slicing_matches_a_standalone_net_holding_the_slices():
    # the supernet's output for an arch = a stand-alone net of that arch whose convs hold the first channels
    space = spaces.get("nds-resnet")
    net = space.supernet(cfg("nds-resnet", "vanilla", channels_init=4), 3, 10)
    arch = space.coerce("d2_1_3-w24_16_40")
    solo = space.standalone(arch, Recipe(space="nds-resnet", C=4), 3, 10)
    with torch.no_grad():
        solo.stem.load_state_dict(net.stem.state_dict())
        for s, blocks in enumerate(solo.stages):
            sources = [net.first[s]] + [net.banks[s].blocks[p]["block"] for p in range(len(blocks) - 1)]
            for dst, src in zip(blocks, sources):
                for name, conv in dst.named_modules():
                    if isinstance(conv, torch.nn.Conv2d):
                        w = src.get_submodule(name).weight
                        conv.weight.copy_(w[:conv.out_channels, :conv.in_channels])
        solo.fc.weight.copy_(net.fc.weight[:, :solo.fc.in_features, 0, 0])
        solo.fc.bias.copy_(net.fc.bias)
    x = torch.randn(8, 3, 8, 8)
    net.train(), solo.train()                                      # batch-statistics BN in both
    assert torch.allclose(net(x, arch), solo(x), atol=1e-5)
    assert torch.allclose(net(x, arch, net.route(arch)), solo(x), atol=1e-5)


def test_searchable_group_conv_reads_the_block_diagonal_of_its_group_at_max_width():
    conv = GroupConv(8, 8, 3)
    x = torch.randn(2, 6, 5, 5)
    y = conv(x, groups=2)                                            # 6 channels, 2 groups of 3; max groups of 4
    W = conv.weight
    for o in range(6):
        g_in = o // 3                                               # its input group at 6 channels
        base = (o // 4) * 4                                         # its group at max width 8 (rows 0-3 | 4-7)
        ref = F.conv2d(x[:, 3 * g_in:3 * g_in + 3], W[o:o + 1, base:base + 3], padding=1)
        assert torch.allclose(y[:, o:o + 1], ref, atol=1e-5), o
    assert torch.allclose(conv(x, groups=1), F.conv2d(x, W[:6, :6], padding=1), atol=1e-6)


def test_close_runs_one_block_per_position_like_vanilla():
    space = spaces.get("nds-resnexta")
    calls = {}
    for sn in ("vanilla", "close"):
        net = space.supernet(cfg("nds-resnexta", sn, channels_init=1), 3, 10)
        net.epoch_start(1)
        n = [0]
        hooks = [m.register_forward_hook(lambda *_: n.__setitem__(0, n[0] + 1))
                 for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        net(torch.randn(2, 3, 8, 8), "d16_4_2-w32_64_16-b1_0.5_0.25-g4_2_1")
        calls[sn] = n[0]
        for h in hooks:
            h.remove()
    # stem + per block 3 convs (+1 projection in each first block) + FC
    assert calls["vanilla"] == calls["close"] == 1 + 3 * (16 + 4 + 2) + 3 + 1


@pytest.mark.parametrize("name", ["nds-resnet", "nds-resnexta"])
def test_analytic_complexity_counts_the_standalone_params_and_its_convs(name):
    space, g = spaces.get(name), torch.Generator().manual_seed(0)
    for _ in range(5):
        a = space.sample(g)
        for C in (16, 4):
            net = space.standalone(a, Recipe(space=name, C=C), 3, 10)
            params, flops = space.complexity(a, 3, 10, image_size=8, scale=C / 16)
            assert params == nparams(net)
            macs = [0]
            def hook(m, inp, out):
                macs[0] += m.weight.numel() * out.shape[2] * out.shape[3]
            hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
            net.eval()(torch.randn(1, 3, 8, 8))
            for h in hooks:
                h.remove()
            assert flops == macs[0] + 10 * net.fc.in_features + 10


def test_head_norm_mean_centres_the_pooled_features_batch_or_running():
    """head_norm: mean subtracts the batch mean of the pooled features (running mean in eval) and adds no parameter;
    the logits then sum to the FC bias over the batch; the cell spaces refuse it."""
    space, arch = spaces.get("nds-resnet"), "d2_1_3-w24_16_40"
    plain = space.supernet(cfg("nds-resnet", "vanilla", channels_init=4), 3, 10)
    torch.manual_seed(0)
    net = space.supernet(cfg("nds-resnet", "vanilla", channels_init=4, head_norm="mean"), 3, 10)
    assert nparams(net) == nparams(plain) and plain.head_norm is None
    x = torch.randn(16, 3, 8, 8)
    net.train()
    out = net(x, arch)                                              # [16, 10]
    assert torch.allclose(out.mean(0), net.fc.bias, atol=1e-5)      # centred features: mean logit = bias
    w3 = space.coerce(arch)[5] // 4
    running = net.head_norm.running_mean
    assert running[:w3].abs().sum() > 0 and running[w3:].abs().sum() == 0     # only the used channels tracked
    net.eval()
    assert not torch.allclose(net(x, arch).mean(0), net.fc.bias, atol=1e-3)   # eval: the running mean instead
    for name in ("nb201", "nb301"):
        with pytest.raises(ValueError, match="head_norm='mean' does not apply to .*; remove it"):
            spaces.get(name).supernet(RunConfig(space=name, head_norm="mean", channels_init=2, cells_per_stage=1),
                                      3, 10)


def test_sandwich_sampler_sums_the_gradients_of_the_largest_smallest_and_sampled_nets():
    """sampler: sandwich trains the largest and the smallest configuration beside the sampled one each step, their
    gradients summed (the sampled one's loss is reported); the extremes are the ends of every decision by weights
    (more groups = fewer weights); the cell spaces refuse the key in one line."""
    from closekit.train import Trainer
    space = spaces.get("nds-resnexta")
    assert space.extremes() == ((16,) * 3 + (256,) * 3 + (1.0,) * 3 + (1,) * 3,
                                (1,) * 3 + (16,) * 3 + (0.25,) * 3 + (4,) * 3)
    c = cfg("nds-resnexta", "vanilla", channels_init=1, sampler="sandwich")
    torch.manual_seed(0)
    net = space.supernet(c, 3, 10)
    ref = copy.deepcopy(net)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8)
    arch = space.sample(torch.Generator().manual_seed(3))
    for a in (*space.extremes(), arch):
        ref_loss = F.cross_entropy(ref(x, a), y)
        ref_loss.backward()
    trainer = Trainer(net, None, c, space)                               # data: only fit reads it
    trainer.opt.step = lambda: None                                     # keep the gradients to compare
    loss, _ = trainer.step(x, y, arch)
    assert torch.allclose(loss, ref_loss.detach(), atol=1e-6)           # the sampled net's loss
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    with pytest.raises(ValueError, match="sampler='sandwich' does not apply to nb201.*; remove it"):
        spaces.get("nb201").supernet(RunConfig(space="nb201", sampler="sandwich", channels_init=2), 3, 10)
