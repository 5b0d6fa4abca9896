"""The GATE of CLOSE (§3.3): a GATES graph encoder of the sampled architecture, an MLP head giving one logit
per active GLOW block for every edge, and Gumbel-softmax straight-through routing.

GATES (Ning et al., ECCV 2020): node features flow along the DAG; each message is gated by a sigmoid of
the op embedding of its edge. Node-level gating scores edge i->j from [z_i; z_j]; arch-level gating maps
the output-node embedding to all edges at once.

The GATE is a router (closekit.sharing): it routes, and grows its MLP with the bank. Variants beyond the paper
(RunConfig keys; the defaults are the reference): ``gate_embed_norm`` normalises the node
embeddings before the MLP (layernorm, or l2: z / ||z|| * sqrt(D)), ``gate_gcn_init: norm_preserving`` scales the GCN
weights so the embedding keeps its scale through the layers (see ``gcn_weights``), ``gate_edge_op`` gives the
node-level MLP the edge's own op (one-hot) beside [z_from; z_to].
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .sharing import Router, register


EMBED_NORMS = ("none", "layernorm", "l2")
GCN_INITS = ("uniform", "norm_preserving")


def gcn_weights(dims, init="uniform", messages=2.0):
    """GCN layer weights [in, out] for widths ``dims``, each drawn U(-a, a) (the same draws in either init).

    uniform (reference): a = 1/sqrt(out); every layer then shrinks the embedding ~0.4x. norm_preserving: a node
    sums ``messages`` gated messages (gate ~ 1/2) that add nearly coherently (positive ReLU inputs, one W), so
    E[y'^2] ~ (messages/2)^2 * in * Var(W) * E[y^2]; Var(W) = gain / (in (messages/2)^2), gain 2 behind a ReLU
    (1 for the first layer), keeps it; a = sqrt(3 Var(W)).
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
    """GATE router: arch -> routing [E, L] over the L active GLOW blocks (straight-through one-hot). It grows its
    MLP with the bank (``mlp_growth``: the new block's row inherits from ``mlp_parent``'s, or layers re-initialised;
    ``aw_nas_compat``: grown layers become new Parameter objects the optimizer loses, and the GATE already routes
    at level 1)."""
    keys, needs = ARGS + ("gate_forward", "gate_lr_scale", "gate_weight_decay", "wit_from"), ("gate_input", "make_gate")
    stochastic = True

    def __init__(self, edges, num_ops, num_nodes, num_blocks, *, gate_level="node", gates_op_dim=48,
                 gates_node_dim=48, gates_hidden=96, gates_gcn_dims=(128,) * 5, mlp_hidden=(200, 200, 200),
                 mlp_dropout=0.1, gumbel_temperature=5.0, gate_embed_norm="none", gate_gcn_init="uniform",
                 gate_edge_op=False, mlp_growth="inherit", mlp_parent="prev", aw_nas_compat=False):
        super().__init__()
        self._setup(edges, num_blocks, gate_level, gumbel_temperature, mlp_growth, mlp_parent, aw_nas_compat)
        self.register_buffer("to_idx", torch.tensor([j for j, _ in edges]), persistent=False)
        self.register_buffer("from_idx", torch.tensor([i for _, i in edges]), persistent=False)
        self.encoder = GatesEncoder(num_ops, num_nodes, gates_op_dim, gates_node_dim, gates_hidden, gates_gcn_dims,
                                    gcn_init=gate_gcn_init, messages=len(self.edges) / (num_nodes - 1))
        self._variant(self.encoder.out_dim, num_ops, gate_embed_norm, gate_edge_op)
        d = self.encoder.out_dim
        self.mlp_args = (2 * d + self.edge_op_dim if gate_level == "node" else d, mlp_hidden,
                         num_blocks if gate_level == "node" else len(edges) * num_blocks, mlp_dropout)
        self.mlp = mlp(*self.mlp_args)

    @classmethod
    def build(cls, cfg, net, K):
        return net.make_gate(K, **{k: getattr(cfg, k) for k in ARGS})

    def _setup(self, edges, num_blocks, level, temperature, mlp_growth, mlp_parent, compat):
        self.edges, self.num_blocks, self.level_kind, self.temperature = tuple(edges), num_blocks, level, temperature
        self.label = f"{level}-level GATE"
        self.mlp_growth, self.mlp_parent, self.compat = mlp_growth, mlp_parent, compat

    def by_cell(self, net, x):
        """[..., E, L] (one routing, or one per cell type) -> {cell type: [E, L]}."""
        return dict(zip(net.cell_types, x.reshape(-1, *x.shape[-2:]).expand(len(net.cell_types), -1, -1)))

    def gated(self, level):
        """The GATE is skipped while one block is active (the reference), unless aw_nas_compat."""
        return level > 1 or self.compat

    def route(self, net, arch, level, sample=True, generator=None):
        if not self.gated(level):
            return {c: torch.ones(len(ids), 1, device=net.level.device) for c, ids in net.own_blocks(arch).items()}
        return self.by_cell(net, self(net.gate_input(arch), level, sample=sample, generator=generator))

    def probs(self, net, arch, level):
        if not self.gated(level):
            return self.route(net, arch, level, sample=False)
        return self.by_cell(net, F.softmax(self.logits(net.gate_input(arch))[..., :level], -1))

    def grow(self, banks, new_level, parent):
        """WIT in the banks and the MLP's growth; returns the re-initialised GATE params (optimizer state reset)."""
        reset, row_parent = [], new_level - 2 if self.mlp_parent == "prev" else parent
        if new_level > 1 or self.mlp_growth != "inherit":
            if self.compat:
                self.replace_grown(new_level, self.mlp_growth, row_parent)
            else:
                reset = self.grow_mlp(new_level, self.mlp_growth, row_parent)
        return super().grow(banks, new_level, parent)[0], reset

    def _variant(self, d, num_ops, embed_norm, edge_op):
        """Check and record the variant keys; a LayerNorm(d) for ``embed_norm: layernorm`` (no RNG drawn; eps 1e-12:
        the reference's embeddings have a variance ~3e-5, of the order of LayerNorm's default eps 1e-5)."""
        if embed_norm not in EMBED_NORMS:
            raise ValueError(f"GATE embed_norm={embed_norm!r} is not one of {', '.join(EMBED_NORMS)}")
        if edge_op and self.level_kind != "node":
            raise ValueError("GATE edge_op=True needs level='node': the arch-level GATE has no per-edge input")
        self.embed_norm, self.edge_op_dim = embed_norm, num_ops if edge_op else 0
        if embed_norm == "layernorm":
            self.norm = nn.LayerNorm(d, eps=1e-12)

    def normed(self, z):
        """Node embeddings [..., D] as the MLP sees them: as they are, LayerNorm, or l2 to norm sqrt(D)
        (sqrt(D): unit mean square per coordinate, the scale LayerNorm gives and nn.Linear's init expects)."""
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

    def forward(self, adj, level, *, sample=True, generator=None):
        """Routing [E, level]: Gumbel straight-through sample, or a deterministic argmax one-hot."""
        logits = self.logits(adj)[:, :level]
        if sample:
            return gumbel_straight_through(logits, self.temperature, generator)
        return F.one_hot(logits.argmax(-1), level).to(logits.dtype)

    @torch.no_grad()
    def grow_mlp(self, new_level, mode, parent):
        """Curriculum step to ``new_level`` blocks: the MLP changes in place; returns the re-initialised params."""
        last = self.mlp[-1]
        if mode == "inherit":                      # new block's row += parent's row (the reference's default)
            k = new_level - 1
            w = last.weight.view(len(self.edges), self.num_blocks, -1) if self.level_kind == "arch" else \
                last.weight.view(1, self.num_blocks, -1)
            b = last.bias.view(w.shape[0], self.num_blocks)
            w[:, k] += w[:, parent]
            b[:, k] += b[:, parent]
            return []
        modules = [last] if mode == "only_last" else [m for m in self.mlp if isinstance(m, nn.Linear)]
        for m in modules:
            m.reset_parameters()
        return [p for m in modules for p in m.parameters()]

    def replace_grown(self, new_level, mode, parent):
        """aw_nas behaviour: the grown layers become brand-new Parameter objects (the optimizer loses them)."""
        if mode == "full":
            self.mlp = mlp(*self.mlp_args).to(self.to_idx.device)
            return
        if mode == "only_last":
            old = self.mlp[-1]
            self.mlp[-1] = nn.Linear(old.in_features, old.out_features).to(old.weight.device)
            return
        last = self.mlp[-1]
        w, b = last.weight.detach().clone(), last.bias.detach().clone()
        last.weight, last.bias = nn.Parameter(w), nn.Parameter(b)
        self.grow_mlp(new_level, "inherit", parent)


class FlowEncoder(nn.Module):
    """GATES encoder of several cell graphs (NB301: normal and reduce, aw_nas GCNFlowArchEmbedder): each cell has
    ``num_init`` input nodes and ``num_steps`` step nodes with two chosen inputs each; GCN weights and op
    embeddings are shared by the cells, the initial node features are per cell type.

    Input: graph [C, 2, E] long, graph[c, 0] = source node of each chosen connection, graph[c, 1] = its op id
    (0-based), connections in step-node order (two per node). Output: node embeddings [C, V, D].
    Layer: s = y W; the message of a connection is sigmoid(P opemb + q) * s_from; a step node sums its two
    messages (what the reference computes for one architecture); the input nodes keep s as residual
    (residual_only = num_init); ReLU between layers. Op ids are shifted by one behind a fixed zero row.
    """

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
        c = graph.shape[0]
        x = torch.cat([self.init_nodes, self.step_node.expand(-1, self.num_steps, -1)], 1)[:c]   # [C, V, node_dim]
        y = self.x_hidden(x)
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


class CellGate(Gate):
    """GATE over the chosen connections of several cell types (NB301, CLOSE §3.3): the FlowEncoder of the cell
    graphs; node-level: MLP([z_from; z_to]) per chosen connection, one MLP shared by the cell types; arch-level:
    MLP(pooled embedding) -> [positions, K], the same gate for every cell type. Routing [C, E, level]."""

    def __init__(self, num_ops, num_blocks, *, num_cells=2, num_init=2, num_steps=4, gate_level="node",
                 gates_op_dim=32, gates_node_dim=32, gates_hidden=32, gates_gcn_dims=(64,) * 4,
                 mlp_hidden=(200, 200, 200), mlp_dropout=0.1, gumbel_temperature=5.0, gate_embed_norm="none",
                 gate_gcn_init="uniform", gate_edge_op=False, mlp_growth="inherit", mlp_parent="prev",
                 aw_nas_compat=False):
        Router.__init__(self)
        positions = 2 * num_steps
        self._setup(range(positions), num_blocks, gate_level, gumbel_temperature, mlp_growth, mlp_parent,
                    aw_nas_compat)
        self.encoder = FlowEncoder(num_ops, num_cells, num_init, num_steps, gates_op_dim, gates_node_dim,
                                   gates_hidden, gates_gcn_dims, gate_gcn_init)
        self.register_buffer("to_idx", self.encoder.to_idx.clone(), persistent=False)
        d = self.encoder.node_dim_out
        self._variant(d, num_ops, gate_embed_norm, gate_edge_op)
        self.mlp_args = (2 * d + self.edge_op_dim if gate_level == "node" else self.encoder.out_dim, mlp_hidden,
                         num_blocks if gate_level == "node" else positions * num_blocks, mlp_dropout)
        self.mlp = mlp(*self.mlp_args)

    def logits(self, graph):
        """graph [C, 2, E] -> logits [C, E, K] (arch-level: [1, E, K], shared by the cell types)."""
        z = self.normed(self.encoder(graph))                                     # [C, V, D]
        if self.level_kind == "node":
            src = graph[:, 0]
            x = [z.gather(1, src[..., None].expand(-1, -1, z.shape[-1])), z[:, self.to_idx]]
            if self.edge_op_dim:                                                 # the connection's own op
                x.append(F.one_hot(graph[:, 1], self.edge_op_dim).to(z.dtype))
            return self.mlp(torch.cat(x, -1))
        return self.mlp(self.encoder.pooled(z)).view(1, len(self.edges), self.num_blocks)

    def forward(self, graph, level, *, sample=True, generator=None):
        """Routing [C, E, level]: Gumbel straight-through sample, or a deterministic argmax one-hot."""
        logits = self.logits(graph)[..., :level]
        if sample:
            out = gumbel_straight_through(logits, self.temperature, generator)
        else:
            out = F.one_hot(logits.argmax(-1), level).to(logits.dtype)
        return out.expand(graph.shape[0], -1, -1)
