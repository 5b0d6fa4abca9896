"""Sharing as routing (CLOSE §3.2, §3.4): a Bank of op-sets (GLOW blocks) per cell, WIT between blocks, and the
fixed routers that map each edge of the sampled architecture to a block (the GATE is in gates.py, the
curriculum in curriculum.py).

A vanilla one-shot supernet is a bank with one block per edge and the fixed own-block router, so every
supernet runs through the same cell code; the sharing extent is how many edges land on one block.
"""
import torch
from torch import nn


class Bank(nn.Module):
    """K op-sets of one cell; ``blocks[k][op]`` is the module for primitive ``op`` in GLOW block k."""

    def __init__(self, make_opset, num_blocks):
        super().__init__()
        self.blocks = nn.ModuleList(make_opset() for _ in range(num_blocks))

    @torch.no_grad()
    def wit(self, target, source, buffers=True):
        """Weight inheritance (WIT, §3.4): block ``target`` += block ``source``, BN buffers included (``buffers``
        False: parameters only)."""
        src = self.blocks[source].state_dict()
        names = None if buffers else {n for n, _ in self.blocks[target].named_parameters()}
        for name, t in self.blocks[target].state_dict().items():
            if names is None or name in names:
                t.add_(src[name])


def routed(bank, op, x, gates, k_sel, mode, touched):
    """Output of one edge: sum_k gates[k] * bank.blocks[k][op](x) over the active blocks (k_sel: the chosen one).

    mode 'all' runs every active block with autograd (reference); 'others_no_grad' runs the non-selected ones
    without autograd (same values and gradients, less memory; their params are recorded in ``touched`` to get
    zero gradients); 'selected' runs only the chosen block (single-path estimator); 'fixed' is a constant
    one-hot (vanilla, random router, evaluation).
    """
    if mode in ("fixed", "selected"):
        y = bank.blocks[k_sel][op](x)
        return y if mode == "fixed" else gates[k_sel] * y
    m0 = bank.blocks[0][op]
    if next(m0.parameters(), None) is None and next(m0.buffers(), None) is None:
        return gates.sum() * m0(x)                          # stateless op: identical output in every block
    out = 0
    for k in range(gates.shape[0]):
        if mode == "all" or k == k_sel:
            y = bank.blocks[k][op](x)
        else:
            with torch.no_grad():
                y = bank.blocks[k][op](x)
            touched.add(bank.blocks[k][op])
        out = out + gates[k] * y
    return out


def fill_zero_grads(modules):
    """Give params of computed-but-unselected blocks a zero gradient, as the reference's all-blocks forward does."""
    for m in modules:
        for p in m.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)


class OwnRouter(nn.Module):
    """Vanilla: edge i always uses block i."""

    def __init__(self, num_edges):
        super().__init__()
        self.register_buffer("eye", torch.eye(num_edges), persistent=False)

    def forward(self, adj, level, *, sample=True, generator=None):
        return self.eye


class RandomRouter(nn.Module):
    """Ablation: a uniform random block per edge, no gradient."""

    def __init__(self, num_edges):
        super().__init__()
        self.num_edges = num_edges

    def forward(self, adj, level, *, sample=True, generator=None):
        k = torch.randint(level, (self.num_edges,), generator=generator)
        return nn.functional.one_hot(k, level).float().to(adj.device)


def split_table(positions, level, criteria="pre", num_blocks=None):
    """The position -> block table after ``level - 1`` binary splits (CLOSE §3.4 for NDS; germ_close's groups).

    Groups are contiguous position intervals, group k using block k; start {0: [0, positions)}. A split halves
    interval [l, r) at m = (l + r) // 2: the group keeps [l, m), a new group (id = number of groups) takes
    [m, r). ``max`` splits the first longest group; ``pre`` the group with the smallest start among those longer
    than 1 whose start is < num_blocks + 1 (else group 0, as the reference). Returns (table, splits) with one
    (parent, child, m, r) per split: WIT goes from block parent to block child.
    """
    if criteria not in ("pre", "max"):
        raise ValueError(f"split criteria {criteria!r} is not one of pre, max")
    groups, table, splits = [(0, positions)], [0] * positions, []
    for _ in range(level - 1):
        if criteria == "max":
            key = max(range(len(groups)), key=lambda k: groups[k][1] - groups[k][0])
        else:
            key, pos = 0, (num_blocks or positions) + 1
            for k, (lo, hi) in enumerate(groups):
                if hi - lo > 1 and lo < pos:
                    key, pos = k, lo
        lo, hi = groups[key]
        if hi - lo < 2:
            raise ValueError(f"split {len(splits) + 1}: group {key} [{lo}, {hi}) cannot split; use at most "
                             f"{positions} blocks for {positions} positions")
        m = (lo + hi) // 2
        groups[key] = (lo, m)
        table[m:hi] = [len(groups)] * (hi - m)
        splits.append((key, len(groups), m, hi))
        groups.append((m, hi))
    return table, splits


class TableRouter(nn.Module):
    """NDS CLOSE: position p uses block table[p], the table refined by ``split_table`` (no parameters)."""

    def __init__(self, num_positions, num_blocks, criteria="pre"):
        super().__init__()
        self.num_positions, self.num_blocks, self.criteria = num_positions, num_blocks, criteria
        split_table(num_positions, num_blocks, criteria, num_blocks)          # fails now if it cannot split

    def table(self, level):
        return split_table(self.num_positions, level, self.criteria, self.num_blocks)[0]

    def forward(self, adj, level, *, sample=True, generator=None):
        k = torch.tensor(self.table(level))
        return nn.functional.one_hot(k, level).float()
