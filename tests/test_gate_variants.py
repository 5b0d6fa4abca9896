"""GATE variants beyond the paper (issue 14): gate_embed_norm, gate_gcn_init, gate_edge_op as RunConfig switches.

The defaults are the reference GATE, bit for bit: golden state-dict digests and logits captured from the code before
the switches existed (commit 55c718f). Each variant: shapes, what the MLP sees, the scale through the GCN layers,
curriculum growth in every mlp_growth mode (aw_nas_compat included), exact resume; refusals in one line.
"""
import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from closekit import RunConfig, Trainer, build, evaluate, spaces
from closekit.checkpoint import CKPT
from closekit.gates import CellGate, Gate
from closekit.spaces.nb201_arch import EDGES, parse, to_matrix
from conftest import tiny_cfg

ARCH = parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
GRAPH = torch.tensor([[[0, 1, 0, 2, 1, 3, 0, 4], [0, 1, 2, 3, 4, 5, 6, 0]],       # [cell, (source, op), connection]
                      [[1, 0, 2, 1, 3, 0, 4, 2], [6, 5, 4, 3, 2, 1, 0, 6]]])
SMALL = dict(gates_op_dim=8, gates_node_dim=8, gates_gcn_dims=(16, 16), mlp_hidden=(16,))
VARIANTS = {"layernorm": dict(gate_embed_norm="layernorm"), "l2": dict(gate_embed_norm="l2"),
            "norm_preserving": dict(gate_gcn_init="norm_preserving"), "edge_op": dict(gate_edge_op=True),
            "layernorm+norm_preserving+edge_op": dict(gate_embed_norm="layernorm", gate_gcn_init="norm_preserving",
                                                      gate_edge_op=True)}


def digest(sd):
    """sha256 (16 hex) of a state dict's names and raw tensor bytes."""
    h = hashlib.sha256()
    for k, v in sd.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def net_digest(sd):
    """``digest`` over the names sorted, read as before the Sharing object ("sharing.router.x" -> "router.x")."""
    return digest(dict(sorted((k.removeprefix("sharing."), v) for k, v in sd.items())))


def gate(kind, level="node", **kw):
    """A small NB201 Gate or NB301 CellGate (3 blocks) built after torch.manual_seed(0)."""
    torch.manual_seed(0)
    if kind == "nb201":
        return Gate(EDGES, 5, 4, 3, gate_level=level, gates_hidden=16, **SMALL, **kw)
    return CellGate(7, 3, gate_level=level, gates_hidden=8, **SMALL, **kw)


def gate_in(kind):
    return torch.tensor(to_matrix(ARCH)) if kind == "nb201" else GRAPH


# ---- defaults: the reference, bit for bit ----
GOLDEN_DIGEST = {("nb201", "node"): "631ed93964ef205e", ("nb201", "arch"): "831264b9878ab25c",
                 ("nb301", "node"): "7be3667925e8879e", ("nb301", "arch"): "520d8d17edbebfbe"}
GOLDEN_LOGITS = {   # first 6 logits (eval mode) of gate(kind, level) on gate_in(kind)
    ("nb201", "node"): [-0.16331545, -0.01556824, 0.26609042, -0.1590322, -0.01944717, 0.26299724],
    ("nb201", "arch"): [0.06872128, -0.20227362, -0.0436874, 0.16788447, -0.04720021, -0.01025099],
    ("nb301", "node"): [-0.20274442, 0.1099641, 0.20538548, -0.19326581, 0.0876247, 0.16167194],
    ("nb301", "arch"): [-0.08441257, 0.09751442, -0.12991634, -0.19743194, 0.15817496, -0.17124073]}
GOLDEN_NET = {"nb201": "b023e8f7a6d38169", "nb301": "c21ef57c1f606762"}   # net_digest; the code before the
# Sharing object (router and level at the top of the net) gives the same


@pytest.mark.parametrize("kind, level", list(GOLDEN_DIGEST))
def test_default_gate_is_the_reference_bit_for_bit(kind, level):
    g = gate(kind, level)
    assert digest(g.state_dict()) == GOLDEN_DIGEST[kind, level]
    explicit = gate(kind, level, gate_embed_norm="none", gate_gcn_init="uniform", gate_edge_op=False)
    assert digest(explicit.state_dict()) == GOLDEN_DIGEST[kind, level]
    with torch.no_grad():
        got = g.eval().logits(gate_in(kind)).flatten()[:6]
    assert torch.allclose(got, torch.tensor(GOLDEN_LOGITS[kind, level]), atol=1e-7, rtol=0)


@pytest.mark.parametrize("space", ["nb201", "nb301"])
def test_default_supernet_is_the_reference_bit_for_bit(space):
    cfg = tiny_cfg(space=space)
    assert cfg.gate_variant() == {}
    _, _, net = build(cfg)
    assert net_digest(net.state_dict()) == GOLDEN_NET[space]


@pytest.mark.parametrize("space", ["nb201", "nb301"])
def test_variants_keep_the_rng_stream(space):
    """A variant draws the same random numbers at construction: the banks are the reference's, the GATE's op
    embeddings and MLP too, and norm_preserving's GCN weights are the reference's scaled per layer."""
    _, _, ref = build(tiny_cfg(space=space))
    _, _, var = build(tiny_cfg(space=space, gate_gcn_init="norm_preserving", gate_embed_norm="layernorm"))
    r, v = ref.state_dict(), var.state_dict()
    for k in r:
        if ".weights." in k:                                      # GCN layer weights: one factor per layer
            factor = v[k].norm() / r[k].norm()
            assert factor > 1 and torch.allclose(v[k], r[k] * factor, atol=1e-6), k
        else:
            assert torch.equal(r[k], v[k]), k


# ---- shapes and what the MLP sees ----
def mlp_input(g, x):
    """The tensor the GATE's MLP gets for input ``x`` (eval mode)."""
    seen = []
    h = g.mlp[0].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        g.eval().logits(x)
    h.remove()
    return seen[0]


@pytest.mark.parametrize("kind", ["nb201", "nb301"])
@pytest.mark.parametrize("level", ["node", "arch"])
@pytest.mark.parametrize("norm", ["layernorm", "l2"])
def test_embed_norm_normalises_every_node_embedding(kind, level, norm):
    g = gate(kind, level, gate_embed_norm=norm)
    x = mlp_input(g, gate_in(kind))
    d = 16                                                      # the last GCN width
    parts = x.reshape(-1, d) if not (kind == "nb301" and level == "arch") else None
    if parts is None:                                           # pooled: mean of normalised step-node embeddings
        z = g.normed(g.encoder(GRAPH))
        assert torch.allclose(x, z[:, 2:].mean(1).reshape(-1), atol=1e-6)
        parts = z.reshape(-1, d)
    parts = parts[parts.abs().sum(-1) > 0]                       # a node without live input stays zero under l2
    assert len(parts) > 0
    if norm == "l2":
        assert torch.allclose(parts.norm(dim=-1), torch.full((len(parts),), math.sqrt(d)), atol=1e-4)
    else:                                                       # LayerNorm at init: weight 1, bias 0
        assert torch.allclose(parts.mean(-1), torch.zeros(len(parts)), atol=1e-5)
        assert torch.allclose(parts.var(-1, unbiased=False), torch.ones(len(parts)), atol=1e-3)
    names = {n for n, _ in g.named_parameters()}
    assert ("norm.weight" in names) == (norm == "layernorm")


@pytest.mark.parametrize("kind", ["nb201", "nb301"])
def test_edge_op_feeds_each_edge_its_own_op(kind):
    g = gate(kind, "node", gate_edge_op=True)
    num_ops = 5 if kind == "nb201" else 7
    assert g.mlp_args[0] == 2 * 16 + num_ops == g.mlp[0].in_features
    x = mlp_input(g, gate_in(kind))
    onehot = x[..., -num_ops:]
    want = torch.tensor(ARCH) if kind == "nb201" else GRAPH[:, 1]   # NB201 arch tuples are in EDGES order
    assert torch.equal(onehot, F.one_hot(want, num_ops).float())
    ref = gate(kind, "node")
    assert torch.allclose(x[..., :-num_ops], mlp_input(ref, gate_in(kind)))   # the same embeddings beside it
    assert g.logits(gate_in(kind)).shape == ref.logits(gate_in(kind)).shape


def test_edge_op_with_arch_level_is_refused():
    with pytest.raises(ValueError, match="gate_edge_op=true needs gate_level: node"):
        tiny_cfg(gate_level="arch", gate_edge_op=True)
    with pytest.raises(ValueError, match="edge_op=True needs level='node'"):
        gate("nb201", "arch", gate_edge_op=True)


@pytest.mark.parametrize("key, value", [("gate_embed_norm", "batchnorm"), ("gate_gcn_init", "xavier"),
                                        ("gate_edge_op", "yes")])
def test_bad_variant_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"config {key}="):
        RunConfig(**{key: value})


@pytest.mark.parametrize("key, value", [("gate_embed_norm", "l2"), ("gate_gcn_init", "norm_preserving"),
                                        ("gate_edge_op", True)])
def test_nds_refuses_the_variant_keys(key, value):
    space = spaces.get("nds-resnet")
    cfg = RunConfig(space="nds-resnet", channels_init=1, num_blocks=3, cl_schedule=(1, 2, 3), **{key: value})
    with pytest.raises(ValueError, match=f"config {key}=.* does not apply to nds-resnet"):
        space.supernet(cfg, 3, 10)


# ---- the scale through the GCN layers ----
def scale_ratio(kind, init, seed):
    """Mean over 50 sampled archs of std(node embeddings after the last GCN layer) / std(its input node features),
    at the reference widths (the constructors' defaults)."""
    space = spaces.get(kind)
    archs = space.sample_list(50, seed)
    torch.manual_seed(seed)
    if kind == "nb201":
        enc = Gate(EDGES, 5, 4, 5, gate_gcn_init=init).encoder
        y0 = enc.x_hidden(torch.cat([enc.input_node[None], enc.other_nodes]))
        xs = [torch.tensor(to_matrix(a))[None] for a in archs]
    else:
        enc = CellGate(7, 5, gate_gcn_init=init).encoder
        y0 = enc.x_hidden(torch.cat([enc.init_nodes, enc.step_node.expand(-1, enc.num_steps, -1)], 1))
        net = space.supernet(tiny_cfg(space="nb301"), 3, 10)
        xs = [net.gate_input(a) for a in archs]
    with torch.no_grad():
        return sum(float(enc(x).std()) for x in xs) / len(xs) / float(y0.std())


@pytest.mark.parametrize("kind", ["nb201", "nb301"])
def test_norm_preserving_init_keeps_the_embedding_scale(kind):
    for seed in (0, 1):
        ref, kept = scale_ratio(kind, "uniform", seed), scale_ratio(kind, "norm_preserving", seed)
        assert ref < 0.1                                         # the reference shrinks it (~0.45x per layer)
        assert 0.5 < kept < 2, kept


# ---- growth, routing and resume with the variants on ----
@pytest.mark.parametrize("space", ["nb201", "nb301"])
@pytest.mark.parametrize("variant", ["l2", "layernorm+norm_preserving+edge_op"])
@pytest.mark.parametrize("growth, compat", [(g, c) for g in ("inherit", "only_last", "full") for c in (False, True)])
def test_growth_in_every_mode(space, variant, growth, compat):
    cfg = tiny_cfg(space=space, mlp_growth=growth, aw_nas_compat=compat, **VARIANTS[variant])
    sp = spaces.get(space)
    net = sp.supernet(cfg, 3, 10).eval()
    arch = sp.sample(torch.Generator().manual_seed(0))
    x = net.gate_input(arch)
    norm = getattr(net.router, "norm", None)
    for level in (1, 2, 3):
        before = net.router.logits(x).detach()
        net.epoch_start(level)
        g = net.router
        assert g.mlp[0].in_features == g.mlp_args[0] and g.mlp[-1].out_features == 3
        assert getattr(g, "norm", None) is norm                   # growth touches the MLP only
        after = g.logits(x).detach()
        assert after.shape == before.shape
        if growth == "inherit" and level > 1:                    # new row += the previous row (logits add up)
            assert torch.allclose(after[..., level - 1], before[..., level - 1] + before[..., level - 2], atol=1e-5)
        r, p = net.route(arch, sample=False), net.route_probs(arch)
        for c in net.cell_types:
            assert r[c].shape == p[c].shape == (len(sp.slots(arch).query("cell == @c")), level)
            assert torch.equal(r[c].sum(-1), torch.ones(len(r[c])))


@pytest.mark.parametrize("space, router", [("nb201", "node"), ("nb201", "arch"), ("nb301", "node"),
                                           ("nb301", "arch")])
def test_gate_logits_are_what_route_probs_softmaxes(space, router):
    sp = spaces.get(space)
    net = sp.supernet(tiny_cfg(space=space, gate_level=router, gate_embed_norm="l2"), 3, 10).eval()
    for e in (1, 2):
        net.epoch_start(e)
    arch = sp.sample(torch.Generator().manual_seed(1))
    logits, probs = net.gate_logits(arch), net.route_probs(arch)
    assert tuple(logits) == tuple(net.cell_types)
    for c in net.cell_types:
        assert logits[c].shape[-1] == 3
        assert torch.allclose(F.softmax(logits[c][:, :2], -1), probs[c], atol=1e-6)


def _train(cfg, out, epochs=None, resume=False):
    space, data, net = build(cfg)
    tr = Trainer(net, data, cfg, out_dir=out, log=lambda *_: None)
    if resume:
        tr.load(out / CKPT)
    tr.fit(epochs)
    return space, data, tr


@pytest.mark.parametrize("space, variant", [("nb201", "layernorm+norm_preserving+edge_op"), ("nb201", "l2"),
                                            ("nb301", "layernorm+norm_preserving+edge_op")])
def test_resume_is_exact_with_the_variant(tmp_path, space, variant):
    cfg = tiny_cfg(space=space, epochs=3, train_limit=160, eval_max_batches=1, **VARIANTS[variant])
    sp, data, straight = _train(cfg, tmp_path / "a")
    _train(cfg, tmp_path / "b", epochs=1)                        # stopped before the level-2 event
    _, _, resumed = _train(cfg, tmp_path / "b", resume=True)
    for (n, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), n
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    archs = sp.sample_list(4, 0)
    score = lambda tr: evaluate(tr.net, sp, archs, data, eval_batch_size=64, progress=False)   # noqa: E731
    assert score(straight).equals(score(resumed))
