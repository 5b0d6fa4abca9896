"""The GATE of CLOSE (§3.3): a GATES encoder of the sampled architecture (Ning et al., ECCV 2020: node features
flow along the DAG, each message gated by a sigmoid of its edge's op embedding), an MLP giving one logit per active
GLOW block for every edge (node level: from [z_from; z_to]; arch level: from one embedding of the whole arch), and
Gumbel-softmax straight-through routing. The GATE is a router (closekit.sharing) that grows its MLP with the bank.

Variants beyond the paper (RunConfig keys, the defaults are the reference): ``gate_embed_norm`` normalises the node
embeddings before the MLP, ``gate_gcn_init: norm_preserving`` keeps their scale through the GCN layers,
``gate_edge_op`` gives the node-level MLP the edge's own op beside [z_from; z_to].
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import CHOICES
from .sharing import Router, register, same_block

EMBED_NORMS, GCN_INITS = CHOICES["gate_embed_norm"], CHOICES["gate_gcn_init"]


def gcn_weights(dims, init="uniform", messages=2.0):
    """GCN layer weights [in, out] for widths ``dims``, each drawn U(-a, a) (the same draws in either init).

    uniform (reference): a = 1/sqrt(out), so each layer shrinks the embedding ~0.4x. norm_preserving: a node sums
    ``messages`` gated messages (gate ~ 1/2) that add nearly coherently, so Var(W) = gain / (in (messages/2)^2)
    (gain 2 behind a ReLU, 1 for the first layer) keeps E[y^2]; a = sqrt(3 Var(W)).
    """
    if init not in GCN_INITS:
        raise ValueError(f"GATE gcn_init={init!r} is not one of {', '.join(GCN_INITS)}")

    def bound(layer, i, o):
        if init == "uniform":
            return 1 / math.sqrt(o)
        return math.sqrt(3 * (1 if layer == 0 else 2) / i) / (messages / 2)
    return nn.ParameterList(nn.Parameter(torch.empty(i, o).uniform_(-bound(k, i, o), bound(k, i, o)))
                            for k, (i, o) in enumerate(zip(dims[:-1], dims[1:])))


class GatesEncoder(nn.Module):
    """GATES encoder: op matrix [B, V, V] (adj[b, j, i] = op on edge i->j, 0 = none) -> node embeddings [B, V, D]."""

    def __init__(self, num_ops, num_nodes, op_dim=48, node_dim=48, hidden=96, gcn_dims=(128,) * 5,
                 residual_only=1, gcn_init="uniform", messages=2.0):
        super().__init__()
        self.residual_only = residual_only
        self.input_node = nn.Parameter(torch.randn(node_dim))                    # learned input-node feature
        self.register_buffer("other_nodes", torch.zeros(num_nodes - 1, node_dim))  # fixed zeros
        self.x_hidden = nn.Linear(node_dim, hidden)
        self.op_emb = nn.Embedding(num_ops, op_dim)
        dims = (hidden,) + tuple(gcn_dims)
        self.weights = gcn_weights(dims, gcn_init, messages)
        self.attn = nn.ModuleList(nn.Linear(op_dim, o) for o in dims[1:])
        self.out_dim = dims[-1]

    def forward(self, adj):
        b, v, _ = adj.shape
        y = self.x_hidden(torch.cat([self.input_node[None], self.other_nodes]))[None].expand(b, v, -1)
        op = F.one_hot(adj, self.op_emb.num_embeddings).float() @ self.op_emb.weight   # [B, V, V, op_dim]
        mask = (adj != 0).unsqueeze(-1).float()                  # no message along a none edge
        for layer, (w, attn) in enumerate(zip(self.weights, self.attn)):
            s = y @ w                                            # [B, V, out]
            gate = torch.sigmoid(attn(op)) * mask                # [B, V(to), V(from), out]
            y = (gate * s.unsqueeze(1)).sum(2)                   # sum of gated messages into each node
            y = torch.cat([y[:, :self.residual_only] + s[:, :self.residual_only], y[:, self.residual_only:]], 1)
            if layer < len(self.weights) - 1:
                y = F.relu(y)
        return y


class FlowEncoder(nn.Module):
    """GATES encoder of several cell graphs (NB301 normal and reduce, aw_nas GCNFlowArchEmbedder): graph [C, 2, E]
    long (source node and 0-based op id of each chosen connection, two per step node) -> node embeddings [C, V, D].
    GCN weights and op embeddings are shared by the cells, the initial node features are per cell type; a step node
    sums its two gated messages, the input nodes keep s = y W as residual; op ids shift by one behind a zero row."""

    def __init__(self, num_ops, num_cells=2, num_init=2, num_steps=4, op_dim=32, node_dim=32, hidden=32,
                 gcn_dims=(64,) * 4, gcn_init="uniform"):
        super().__init__()
        self.num_init, self.num_steps = num_init, num_steps
        self.init_nodes = nn.Parameter(torch.randn(num_cells, num_init, node_dim))   # per cell type, normal init
        self.step_node = nn.Parameter(torch.zeros(num_cells, 1, node_dim))           # per cell type, trainable
        self.op_emb = nn.Parameter(torch.randn(num_ops, op_dim))
        self.register_buffer("none_emb", torch.zeros(1, op_dim))                     # fixed zero row (id 0)
        self.register_buffer("to_idx", torch.arange(num_init, num_init + num_steps).repeat_interleave(2),
                             persistent=False)
        self.x_hidden = nn.Linear(node_dim, hidden)
        dims = (hidden,) + tuple(gcn_dims)
        self.weights = gcn_weights(dims, gcn_init, messages=2.0)           # two chosen inputs per step node
        self.attn = nn.ModuleList(nn.Linear(op_dim, o) for o in dims[1:])
        self.node_dim_out = dims[-1]
        self.out_dim = num_cells * dims[-1]            # pooled embedding: step-node mean per cell, concatenated

    def forward(self, graph):
        src, ops = graph[:, 0], graph[:, 1]                                     # [C, E]
        x = torch.cat([self.init_nodes, self.step_node.expand(-1, self.num_steps, -1)], 1)[:graph.shape[0]]
        y = self.x_hidden(x)                                                    # [C, V, hidden]
        emb = torch.cat([self.none_emb, self.op_emb])[ops + 1]                  # [C, E, op_dim]
        for layer, (w, attn) in enumerate(zip(self.weights, self.attn)):
            s = y @ w                                                           # [C, V, out]
            msg = torch.sigmoid(attn(emb)) * s.gather(1, src[..., None].expand(-1, -1, s.shape[-1]))
            agg = torch.zeros_like(s).index_add(1, self.to_idx, msg)            # sum of messages into each node
            y = torch.cat([agg[:, :self.num_init] + s[:, :self.num_init], agg[:, self.num_init:]], 1)
            if layer < len(self.weights) - 1:
                y = F.relu(y)
        return y

    def pooled(self, z):
        """[C, V, D] -> [C * D]: mean over the step nodes, cells concatenated (the arch-level embedding)."""
        return z[:, self.num_init:].mean(1).reshape(-1)


def mlp(d_in, hidden, d_out, dropout):
    """(Linear -> ReLU -> Dropout) per hidden width, then Linear to d_out."""
    layers, d = [], d_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, d_out))


def gumbel_straight_through(logits, temperature, generator=None):
    """One-hot Gumbel-max sample per row; gradients flow through softmax((logits + g) / T)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device if generator is None else "cpu")
    g = -torch.log(-torch.log(u.to(logits.device) + 1e-20) + 1e-20)
    soft = F.softmax((logits + g) / temperature, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


# the RunConfig keys a GATE is built from (its constructor's keyword arguments, so no adapter is needed)
ARGS = ("gate_level", "gates_op_dim", "gates_node_dim", "gates_hidden", "gates_gcn_dims", "mlp_hidden", "mlp_dropout",
        "gumbel_temperature", "gate_embed_norm", "gate_gcn_init", "gate_edge_op", "mlp_growth", "mlp_parent",
        "aw_nas_compat")


@register("gate")
class Gate(Router):
    """GATE router of one cell graph (NB201): arch -> routing [E, L] over the L active GLOW blocks."""
    keys, needs = ARGS + ("gate_forward", "gate_lr_scale", "gate_weight_decay", "wit_from"), ("gate_input", "make_gate")
    stochastic = True

    def __init__(self, edges, num_ops, num_nodes, num_blocks, *, gates_op_dim=48, gates_node_dim=48, gates_hidden=96,
                 gates_gcn_dims=(128,) * 5, gate_gcn_init="uniform", **head):
        super().__init__()
        self.register_buffer("to_idx", torch.tensor([j for j, _ in edges]), persistent=False)
        self.register_buffer("from_idx", torch.tensor([i for _, i in edges]), persistent=False)
        encoder = GatesEncoder(num_ops, num_nodes, gates_op_dim, gates_node_dim, gates_hidden, gates_gcn_dims,
                               gcn_init=gate_gcn_init, messages=len(edges) / (num_nodes - 1))
        self._head(encoder, edges, num_ops, num_blocks, encoder.out_dim, encoder.out_dim, **head)

    def _head(self, encoder, edges, num_ops, num_blocks, node_dim, arch_dim, *, gate_level="node",
              mlp_hidden=(200, 200, 200), mlp_dropout=0.1, gumbel_temperature=5.0, gate_embed_norm="none",
              gate_edge_op=False, mlp_growth="inherit", mlp_parent="prev", aw_nas_compat=False):
        """Every GATE past its encoder: the embedding norm, the MLP head and how it grows."""
        if gate_embed_norm not in EMBED_NORMS:
            raise ValueError(f"GATE embed_norm={gate_embed_norm!r} is not one of {', '.join(EMBED_NORMS)}")
        if gate_edge_op and gate_level != "node":
            raise ValueError("GATE edge_op=True needs level='node': the arch-level GATE has no per-edge input")
        self.encoder, self.edges, self.num_blocks, self.level_kind = encoder, tuple(edges), num_blocks, gate_level
        self.temperature, self.label = gumbel_temperature, f"{gate_level}-level GATE"
        self.mlp_growth, self.mlp_parent, self.compat = mlp_growth, mlp_parent, aw_nas_compat
        self.embed_norm, self.edge_op_dim = gate_embed_norm, num_ops if gate_edge_op else 0
        if gate_embed_norm == "layernorm":
            self.norm = nn.LayerNorm(node_dim, eps=1e-12)    # eps: the reference's embeddings' variance is ~3e-5
        node = gate_level == "node"
        self.mlp_args = (2 * node_dim + self.edge_op_dim if node else arch_dim, mlp_hidden,
                         num_blocks if node else len(self.edges) * num_blocks, mlp_dropout)
        self.mlp = mlp(*self.mlp_args)

    @classmethod
    def build(cls, cfg, net, K):
        return net.make_gate(K, **{k: getattr(cfg, k) for k in ARGS})

    def by_cell(self, net, x):
        """[..., E, L] (one routing, or one per cell type) -> {cell type: [E, L]}."""
        return dict(zip(net.cell_types, x.reshape(-1, *x.shape[-2:]).expand(len(net.cell_types), -1, -1)))

    def route(self, net, arch, level, sample=True, generator=None):
        if level == 1 and not self.compat:         # the reference skips the GATE while one block is active
            return same_block(net, arch, 1, 0)
        return self.by_cell(net, self(net.gate_input(arch), level, sample=sample, generator=generator))

    def probs(self, net, arch, level):
        if level == 1 and not self.compat:
            return same_block(net, arch, 1, 0)
        return self.by_cell(net, F.softmax(self.logits(net.gate_input(arch))[..., :level], -1))

    def grow(self, banks, new_level, parent):
        """WIT in the banks and the MLP's growth; returns the re-initialised GATE params (optimizer state reset)."""
        reset = []
        if new_level > 1 or self.mlp_growth != "inherit":
            reset = self.grow_mlp(new_level, new_level - 2 if self.mlp_parent == "prev" else parent)
        return super().grow(banks, new_level, parent)[0], reset

    @torch.no_grad()
    def grow_mlp(self, new_level, parent):
        """New block's row += ``parent``'s (inherit), or the last / every layer re-initialised; the params reset."""
        last = self.mlp[-1]
        layers = [m for m in self.mlp if isinstance(m, nn.Linear)] if self.mlp_growth == "full" else [last]
        if self.compat:            # aw_nas: the grown layers become new Parameter objects the optimizer loses
            for m in layers:
                m.weight, m.bias = nn.Parameter(m.weight.clone()), nn.Parameter(m.bias.clone())
        if self.mlp_growth == "inherit":           # rows of block k: one per edge (arch level) or one
            w, b = last.weight.view(-1, self.num_blocks, last.in_features), last.bias.view(-1, self.num_blocks)
            w[:, new_level - 1] += w[:, parent]
            b[:, new_level - 1] += b[:, parent]
            return []
        for m in layers:
            m.reset_parameters()
        return [] if self.compat else [p for m in layers for p in m.parameters()]

    def normed(self, z):
        """Node embeddings [..., D] as the MLP sees them: as they are, LayerNorm, or l2 to LayerNorm's norm sqrt(D)."""
        if self.embed_norm == "layernorm":
            return self.norm(z)
        if self.embed_norm == "l2":
            return F.normalize(z, dim=-1) * math.sqrt(z.shape[-1])
        return z

    def logits(self, adj):
        """adj [V, V] long -> logits [E, K] over all K blocks."""
        z = self.normed(self.encoder(adj[None])[0])                       # [V, D]
        if self.level_kind == "node":
            x = [z[self.from_idx], z[self.to_idx]]
            if self.edge_op_dim:                                          # the edge's own op, none included
                x.append(F.one_hot(adj[self.to_idx, self.from_idx], self.edge_op_dim).to(z.dtype))
            return self.mlp(torch.cat(x, -1))
        return self.mlp(z[-1]).view(len(self.edges), self.num_blocks)

    def forward(self, x, level, *, sample=True, generator=None):
        """Routing [..., E, level]: Gumbel straight-through sample, or a deterministic argmax one-hot."""
        logits = self.logits(x)[..., :level]
        if sample:
            return gumbel_straight_through(logits, self.temperature, generator)
        return F.one_hot(logits.argmax(-1), level).to(logits.dtype)


class CellGate(Gate):
    """GATE over the chosen connections of several cell types (NB301): a FlowEncoder, one MLP for all cell types."""

    def __init__(self, num_ops, num_blocks, *, num_cells=2, num_init=2, num_steps=4, gates_op_dim=32,
                 gates_node_dim=32, gates_hidden=32, gates_gcn_dims=(64,) * 4, gate_gcn_init="uniform", **head):
        Router.__init__(self)
        encoder = FlowEncoder(num_ops, num_cells, num_init, num_steps, gates_op_dim, gates_node_dim, gates_hidden,
                              gates_gcn_dims, gate_gcn_init)
        self._head(encoder, range(2 * num_steps), num_ops, num_blocks, encoder.node_dim_out, encoder.out_dim, **head)

    def logits(self, graph):
        """graph [C, 2, E] -> logits [C, E, K] (arch level: [1, E, K])."""
        z = self.normed(self.encoder(graph))                                     # [C, V, D]
        if self.level_kind == "node":
            x = [z.gather(1, graph[:, 0, :, None].expand(-1, -1, z.shape[-1])), z[:, self.encoder.to_idx]]
            if self.edge_op_dim:                                                 # the connection's own op
                x.append(F.one_hot(graph[:, 1], self.edge_op_dim).to(z.dtype))
            return self.mlp(torch.cat(x, -1))
        return self.mlp(self.encoder.pooled(z)).view(1, len(self.edges), self.num_blocks)
