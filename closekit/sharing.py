"""Sharing as routing (CLOSE §3.2-3.4): one ``Sharing`` per supernet = the banks of GLOW blocks + a router + the
curriculum. A bank holds K op-sets (blocks) of one cell; every routed slot of an architecture (an edge of a cell, a
block position of an NDS stage) runs its op in the block its router picks. Write one router to try a new idea.

Router protocol (subclass ``Router``, register with ``@register(name)``; the config key ``router`` picks it):
  keys                              the config keys it reads (refused, in one line, in spaces without it)
  needs                             what it asks of a supernet beyond ``own_blocks`` (a space without it lacks it)
  label, stochastic                 a name for views; whether routing is sampled (probabilities, entropy, Gumbel)
  placeholders                      True: blocks 1..K-1 are overwritten when the router grows (built off the RNG)
  fixed                             True: all K blocks active from the start, no curriculum
  build(cfg, net, K)                the router of supernet ``net`` with K blocks per bank (classmethod)
  route(net, arch, level, sample, generator) -> {cell type: [slots, level]}   one-hot (straight-through if learned)
  probs(net, arch, level)           {cell type: [slots, level]}: each block's probability under training's sample
  grow(banks, new_level, parent)    one level change: (log note, parameters whose optimizer state resets)
  parameters() / state_dict()       nn.Module's: the router's own weights train in their own optimizer group
The curriculum decides *when* (the level of an epoch, the WIT parent of a new block); the router decides *how*.
A supernet tells routers about its slots through ``own_blocks(arch)`` and what their ``needs`` name (``gate_input``,
``make_gate``, ``slot_ops``, ``num_ops``, ``num_slots``, ``positions``); routers read nothing else of it.
"""
import torch
from torch import nn

from .curriculum import Curriculum, Events

ROUTERS = {}               # name -> Router subclass
CLOSE_KEYS = ("num_blocks", "cl_schedule")          # the bank size and curriculum of every non-vanilla supernet


def register(name):
    """Class decorator: ``ROUTERS[name] = cls``."""
    def add(cls):
        cls.name = name
        ROUTERS[name] = cls
        return cls
    return add


class Bank(nn.Module):
    """K op-sets of one cell: ``blocks[k][op]`` is primitive ``op`` of GLOW block k (placeholders: see Router)."""

    def __init__(self, make_opset, num_blocks, placeholders=False):
        super().__init__()
        self.blocks = nn.ModuleList([make_opset()])
        with torch.random.fork_rng(devices=[], enabled=placeholders):
            self.blocks.extend(make_opset() for _ in range(num_blocks - 1))

    @torch.no_grad()
    def wit(self, target, source, buffers=True, copy=False):
        """Weight inheritance (WIT, §3.4): block ``target`` += (``copy``: =) block ``source``, BN buffers too."""
        src, dst = self.blocks[source].state_dict(), self.blocks[target]
        for name, t in (dst.state_dict() if buffers else dict(dst.named_parameters())).items():
            t.copy_(src[name]) if copy else t.add_(src[name])


def routed(bank, op, x, gates, k_sel, mode, touched):
    """One edge: sum_k gates[k] * bank.blocks[k][op](x) over the active blocks (k_sel: the chosen one). ``mode``:
    'all' runs every active block with autograd (reference); 'others_no_grad' the unselected ones without (same
    values and gradients, less memory; ``touched`` records them for zero gradients); 'selected' only the chosen
    block (single-path estimator); 'fixed' a constant one-hot (fixed routers, evaluation)."""
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


def one_hot(blocks, level, device=None):
    """[slots, level] float one-hot of a list / tensor of block indices."""
    return nn.functional.one_hot(torch.as_tensor(blocks), level).float().to(device)


def same_block(net, arch, level, k):
    """{cell type: every slot on block ``k``}."""
    return {c: one_hot([k] * len(ids), level, net.level.device) for c, ids in net.own_blocks(arch).items()}


class Router(nn.Module):
    """Base of every router: the protocol above; by default a fixed routing grown by WIT (new block += parent)."""
    keys, needs, label, stochastic, placeholders, fixed = (), (), "router", False, False, False

    @classmethod
    def build(cls, cfg, net, K):
        return cls()

    def route(self, net, arch, level, sample=True, generator=None):
        raise NotImplementedError

    def probs(self, net, arch, level):
        return self.route(net, arch, level, sample=False)

    def grow(self, banks, new_level, parent):
        """Activate block ``new_level - 1``: WIT from ``parent`` in every bank (nothing for block 0)."""
        if parent is None:
            return "", []
        for bank in banks:
            bank.wit(new_level - 1, parent)
        return f" (WIT from block {parent})", []


@register("own")
class OwnRouter(Router):
    """Vanilla: every slot uses its own block (NB301: the block of its (from, to) edge); never grows."""
    label, fixed = "vanilla: slot i always uses its own block i (a fixed table, no curriculum)", True

    def route(self, net, arch, level, sample=True, generator=None):
        return {c: one_hot(ids, level, net.level.device) for c, ids in net.own_blocks(arch).items()}


@register("oneblock")
class OneBlockRouter(Router):
    """Control: every slot of every cell uses block 0 (one op-set per cell); never grows."""
    label, fixed = "one block: every slot uses block 0 (a fixed table)", True

    @classmethod
    def build(cls, cfg, net, K):
        if K != 1:
            raise ValueError(f"config router=oneblock needs num_blocks: 1 and cl_schedule: [1], got num_blocks={K}")
        return cls()

    def route(self, net, arch, level, sample=True, generator=None):
        return same_block(net, arch, level, 0)


@register("random")
class RandomRouter(Router):
    """Ablation: a uniform random active block per slot, no gradient."""
    keys, stochastic = ("wit_from",), True
    label = "random router: uniform probabilities, the chosen block is a seeded draw"

    def route(self, net, arch, level, sample=True, generator=None):
        return {c: one_hot(torch.randint(level, (len(ids),), generator=generator), level, net.level.device)
                for c, ids in net.own_blocks(arch).items()}

    def probs(self, net, arch, level):
        return {c: torch.full((len(ids), level), 1 / level, device=net.level.device)
                for c, ids in net.own_blocks(arch).items()}


def split_table(positions, level, criteria="pre", num_blocks=None):
    """The position -> block table after ``level - 1`` binary splits (CLOSE §3.4 for NDS; germ_close's groups).

    Groups are contiguous position intervals, group k on block k, at first {0: [0, positions)}. A split halves
    [l, r) at m = (l + r) // 2: the group keeps [l, m), a new group (id = number of groups) takes [m, r). ``max``
    splits the first longest group; ``pre`` the one with the smallest start among those longer than 1 whose start
    is < num_blocks + 1 (else group 0, as the reference). Returns (table, [(parent, child, m, r) per split]).
    """
    if criteria not in ("pre", "max"):
        raise ValueError(f"split criteria {criteria!r} is not one of pre, max")
    groups, table, splits = [(0, positions)], [0] * positions, []
    for _ in range(level - 1):
        if criteria == "max":
            key = max(range(len(groups)), key=lambda k: groups[k][1] - groups[k][0])
        else:                                   # the splittable group that starts first, if it starts early enough
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


@register("table")
class TableRouter(Router):
    """NDS CLOSE: position p of every stage uses block table[p]; a level splits a group, WIT from the split block."""
    keys, needs = ("cl_criteria", "wit_buffers"), ("positions",)
    label = "split table: contiguous position groups, one block each; a level splits one group"

    def __init__(self, positions, num_blocks, cl_criteria="pre", wit_buffers=True):
        super().__init__()
        if not 1 <= num_blocks <= positions:
            raise ValueError(f"config num_blocks={num_blocks} must be in 1..{positions} ({positions} block positions "
                             "per stage)")
        self.positions, self.wit_buffers = positions, wit_buffers
        self.splits = split_table(positions, num_blocks, cl_criteria, num_blocks)[1]    # all K - 1, computed once

    @classmethod
    def build(cls, cfg, net, K):
        return cls(net.positions, K, cfg.cl_criteria, cfg.wit_buffers)

    def table(self, level):
        """The position -> block list at ``level`` (the first level - 1 splits applied)."""
        table = [0] * self.positions
        for _, child, m, r in self.splits[:level - 1]:
            table[m:r] = [child] * (r - m)
        return table

    def route(self, net, arch, level, sample=True, generator=None):
        r = one_hot(self.table(level), level, net.level.device)
        return {c: r for c in net.cell_types}

    def grow(self, banks, new_level, parent):
        if new_level == 1:
            return "", []
        parent, child, m, r = self.splits[new_level - 2]
        for bank in banks:
            bank.wit(child, parent, buffers=self.wit_buffers)
        return f" (WIT from block {parent}: positions {m + 1}-{r} move to block {child})", []


@register("fewshot")
class FewShotRouter(Router):
    """Few-shot NAS (Zhao et al., ICML 2021): at epoch s of cl_schedule [1, s, ..., s] block 0 is copied to one
    sub-supernet per op of slot ``fewshot_edge`` (a row of the slot table); that slot's op picks every slot's block."""
    keys, needs, placeholders = ("fewshot_edge",), ("slot_ops", "num_ops", "num_slots"), True
    label = "few-shot split: the op on one slot picks the sub-supernet (one block before the split)"

    def __init__(self, edge, num_ops, num_blocks, schedule):
        super().__init__()
        if num_blocks != num_ops or len(set(schedule[1:])) > 1:
            raise ValueError(f"config router=fewshot needs num_blocks={num_ops} (one sub-supernet per op) and "
                             f"cl_schedule [1, s, ..., s] (split at epoch s), got num_blocks={num_blocks}, "
                             f"cl_schedule={list(schedule)}")
        self.edge, self.num_blocks = edge, num_blocks

    @classmethod
    def build(cls, cfg, net, K):
        if not 0 <= cfg.fewshot_edge < net.num_slots:
            raise ValueError(f"config fewshot_edge={cfg.fewshot_edge} must be in 0..{net.num_slots - 1} (a row of "
                             f"the {cfg.space} slot table)")
        return cls(cfg.fewshot_edge, net.num_ops, K, cfg.cl_schedule)

    def route(self, net, arch, level, sample=True, generator=None):
        ops = [o for cell in net.slot_ops(arch).values() for o in cell]
        return same_block(net, arch, level, ops[self.edge] if level == self.num_blocks else 0)

    def grow(self, banks, new_level, parent):
        if new_level == 1:
            return "", []
        for bank in banks:
            bank.wit(new_level - 1, 0, copy=True)
        return " (few-shot split: a copy of block 0)", []


def fill_zero_grads(modules):
    """Give params of computed-but-unselected blocks a zero gradient, as the reference's all-blocks forward does."""
    for m in modules:
        for p in m.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)


class Sharing(nn.Module):
    """The banks of a supernet, its router and its curriculum; ``level`` (active blocks) is saved with the model."""

    def __init__(self, cfg, net, banks, K, name):
        super().__init__()
        self.router, self.num_blocks, self.touched = ROUTERS[name].build(cfg, net, K), K, set()
        self.curriculum = Curriculum(fixed=K) if self.router.fixed else Curriculum(cfg.cl_schedule, cfg.wit_from)
        self.banks = tuple(banks)                   # held by the cells (their state-dict names); not registered here
        self.register_buffer("level", torch.tensor(self.curriculum.level(0)))

    def active_level(self):
        """The number of active blocks; a clear error before the first curriculum event."""
        level = int(self.level)
        if level < 1:
            raise RuntimeError("the supernet has no active block yet (level 0): train it, load a trained checkpoint "
                               "or call epoch_start(1)")
        return level

    def epoch_start(self, epoch, generator=None):
        """Apply the curriculum events due at ``epoch`` (each once: the level is saved with the model)."""
        log, reset = [], []
        for new, parent in self.curriculum.due(int(self.level), epoch, generator):
            note, params = self.grow(new, parent)
            reset += params
            log.append(f"epoch {epoch}: curriculum level {new}{note}")
        return Events(log, reset)

    def grow(self, new_level, parent):
        """One level change: (log note, parameters whose optimizer state resets)."""
        if new_level != int(self.level) + 1:
            raise ValueError(f"sharing grows one level at a time: level {int(self.level)} -> {new_level}")
        self.level.fill_(new_level)
        return self.router.grow(self.banks, new_level, parent)

    def after_backward(self):
        """Zero gradients for the computed but unselected blocks (gate_forward others_no_grad)."""
        fill_zero_grads(self.touched)
        self.touched.clear()
