"""NDS ResNet / ResNeXt-A supernets (CLOSE §4.3, aw_nas ``germ_close``): stages, an unshared first block, a bank.

Skeleton (pycls AnyNet on CIFAR, as the reference): conv3x3 stem of 16 channels + BN + ReLU, 3 stages with strides
1/2/2, GAP + a 1x1-conv FC (``head_norm: mean`` centres the pooled features first: not in the reference, a switch
for studying the mini supernets' slow one-shot learning, see bench/nds_supernet_fit.py). Supernet BN is non-affine;
the stem's is affine. Every conv holds the maximum-width weights and an architecture uses its ordinal slice (layers
and blocks: ``nds_ops``). A stage runs its first block (w_in -> w, stride, projection shortcut), then d - 1 blocks at
positions p = 0..d-2, each position routed to one block of the stage's Bank:
  vanilla: one own block per position (fixed router), P = max depth - 1 (23 ResNet, 15 ResNeXt-A);
  CLOSE:   K shared blocks (17 / 13) and the position -> block table of ``sharing.split_table``, the same for the
           3 stages; each curriculum level splits one group of positions, WIT from the split block (whole state
           dict, BN buffers included, unless ``wit_buffers`` is false). One block per position in training and
           evaluation: CLOSE costs what vanilla costs.
Widths scale by ``channels_init / 16`` (the stem width; 16 = the reference) for mini runs; choices are kept.
"""
from torch import nn

from .. import sharing
from ..curriculum import Curriculum, Events
from . import base
from .nds_ops import BLOCKS, MeanBN, SlicedConv, Stem, bottleneck_width, init_weights, scaled


class Standalone(nn.Module):
    """One NDS configuration trained on its own (pycls AnyNet: affine BN, projection only where shape changes)."""

    def __init__(self, design, arch, in_channels, num_classes, scale=1.0):
        super().__init__()
        self.stem, w_in, stages = Stem(in_channels, scaled(16, scale)), scaled(16, scale), []
        self.widths = []
        for s, stride in enumerate((1, 2, 2)):
            d, w, b, g = design.stage(arch, s)
            w = scaled(w, scale)
            wb = bottleneck_width(w, b, g)
            blocks = []
            for i in range(d):
                st = stride if i == 0 else 1
                blocks.append(BLOCKS[design.block](w_in, w, st, proj=w_in != w or st != 1, affine=True, wb=wb,
                                                   groups=g))
                w_in = w
            stages.append(nn.ModuleList(blocks))
            self.widths.append((w, wb, g))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(w_in, num_classes)
        self.apply(init_weights)

    def forward(self, x):
        x = self.stem(x)
        for blocks, (w, wb, g) in zip(self.stages, self.widths):
            for blk in blocks:
                x = blk(x, w, wb, g)
        return self.fc(x.mean((2, 3)))


def complexity(design, arch, in_channels=3, num_classes=10, image_size=32, scale=1.0):
    """(params, flops) of the stand-alone net, counted as pycls does: conv k*k*c_in/g*c_out (+ h*w for flops),
    BN 2c params, FC c*classes + classes; flops are multiply-adds."""
    params = flops = 0
    h = image_size

    def conv(c_in, c_out, k, stride=1, g=1):
        nonlocal params, flops, h
        h = (h + 2 * (k // 2) - k) // stride + 1
        params += k * k * c_in // g * c_out + 2 * c_out          # + its BN
        flops += k * k * c_in // g * c_out * h * h

    w_in = scaled(16, scale)
    conv(in_channels, w_in, 3)
    for s, stride in enumerate((1, 2, 2)):
        d, w, b, g = design.stage(arch, s)
        w = scaled(w, scale)
        wb = bottleneck_width(w, b, g)
        for i in range(d):
            st, h0 = (stride if i == 0 else 1), h
            if w_in != w or st != 1:                           # projection shortcut
                conv(w_in, w, 1, st)
                h = h0
            if design.block == "res_basic_block":
                conv(w_in, w, 3, st), conv(w, w, 3)
            else:
                conv(w_in, wb, 1), conv(wb, wb, 3, st, g), conv(wb, w, 1)
            w_in = w
    return params + w_in * num_classes + num_classes, flops + w_in * num_classes + num_classes


class Supernet(nn.Module, base.Supernet):
    """NDS supernet: per stage an unshared first block and a Bank (vanilla: one block per position; CLOSE: K
    blocks routed by the split table)."""

    def __init__(self, design, cfg, in_channels, num_classes):
        super().__init__()
        if cfg.gate_forward is not None:
            raise ValueError(f"config gate_forward={cfg.gate_forward!r} does not apply to {cfg.space} (no GATE: one "
                             "block per position); set gate_forward: null")
        if cfg.gate_variant():
            k, v = next(iter(cfg.gate_variant().items()))
            raise ValueError(f"config {k}={v!r} does not apply to {cfg.space} (no GATE: one block per position); "
                             f"remove it")
        if cfg.router != "node" or cfg.wit_from != "prev":
            raise ValueError(f"config router={cfg.router!r} / wit_from={cfg.wit_from!r}: {cfg.space} routes by the "
                             "split table and inherits from the split block; leave router: node, wit_from: prev")
        self.design, self.scale = design, cfg.channels_init / 16
        self.positions = design.max_depth - 1
        close = cfg.supernet == "close"
        K = cfg.num_blocks if close else self.positions
        if close and not 1 <= K <= self.positions:
            raise ValueError(f"config num_blocks={K} must be in 1..{self.positions} for {cfg.space} "
                             f"({self.positions} block positions per stage)")
        self.close, self.num_blocks, self.wit_buffers = close, K, cfg.wit_buffers
        W = scaled(256, self.scale)                                  # max width (and max bottleneck width)
        block = BLOCKS[design.block]
        self.stem, w_in = Stem(in_channels, scaled(16, self.scale)), scaled(16, self.scale)
        self.first, self.banks = nn.ModuleList(), nn.ModuleList()
        for stride in (1, 2, 2):
            self.first.append(block(w_in, W, stride, proj=True, wb=W))
            self.banks.append(sharing.Bank(lambda: nn.ModuleDict({"block": block(W, W, 1, proj=False, wb=W)}), K))
            w_in = W
        self.head_norm = MeanBN(W, affine=False) if cfg.head_norm == "mean" else None   # not in the reference
        self.fc = SlicedConv(W, num_classes, 1, bias=True)            # the reference's 1x1-conv FC
        self.apply(init_weights)
        self.cell_types = tuple(f"stage{s}" for s in (1, 2, 3))
        if close:
            self.router = sharing.TableRouter(self.positions, K, cfg.cl_criteria)
            curriculum = Curriculum(cfg.cl_schedule)
        else:
            self.router, curriculum = sharing.OwnRouter(self.positions), Curriculum(fixed=K)
        self._protocol(curriculum, in_channels, num_classes)

    def widths(self, arch):
        """[(depth, w, w_b, groups)] of the 3 stages at this net's scale."""
        out = []
        for s in range(3):
            d, w, b, g = self.design.stage(arch, s)
            w = scaled(w, self.scale)
            out.append((d, w, bottleneck_width(w, b, g), g))
        return out

    def table(self):
        """The position -> block list at the current level."""
        return self.route_one(self.active_level()).argmax(1).tolist()

    def route_one(self, level):
        return self.router(None, level).to(self.level.device)

    def route(self, arch, sample=True, generator=None):
        """{stage: one-hot [positions, level]}: the same table for the three stages."""
        self.design.coerce(arch)
        r = self.route_one(self.active_level())
        return {c: r for c in self.cell_types}

    def route_probs(self, arch):
        return self.route(arch, sample=False)

    def forward(self, x, arch, routing=None):
        arch = self.design.coerce(arch)
        routing = routing or self.route(arch)
        x = self.stem(x)
        for s, (d, w, wb, g) in enumerate(self.widths(arch)):
            x = self.first[s](x, w, wb, g)
            sel = routing[self.cell_types[s]][:d - 1].argmax(1).tolist()
            for k in sel:
                x = self.banks[s].blocks[k]["block"](x, w, wb, g)
        x = x.mean((2, 3), keepdim=True)                                # [N, w3, 1, 1]
        if self.head_norm is not None:
            x = self.head_norm(x)
        return self.fc(x, self.num_classes_out).flatten(1)

    @property
    def num_classes_out(self):
        return self.net_args["num_classes"]

    def splits(self, level):
        """The (parent, child, m, r) splits that lead to ``level``."""
        return sharing.split_table(self.positions, level, self.router.criteria, self.num_blocks)[1]

    def epoch_start(self, epoch, generator=None):
        """The curriculum events due at ``epoch``: each level change splits one group of positions (WIT)."""
        if not self.close:
            return super().epoch_start(epoch, generator)
        log, reset = [], []
        for new, _ in self.curriculum.due(int(self.level), epoch, generator):
            reset += self.grow(new, None)
            line = f"epoch {epoch}: curriculum level {new}"
            if new > 1:
                parent, child, m, r = self.splits(new)[-1]
                line += f" (WIT from block {parent}: positions {m + 1}-{r} move to block {child})"
            log.append(line)
        return Events(log, reset)

    def grow(self, new_level, parent=None):
        """Level ``new_level``: split one group (table) and WIT block parent -> child in every stage's bank."""
        assert self.close and new_level == int(self.level) + 1 <= self.num_blocks
        self.level.fill_(new_level)
        if new_level > 1:
            parent, child, _, _ = self.splits(new_level)[-1]
            for bank in self.banks:
                bank.wit(child, parent, buffers=self.wit_buffers)
        return []


class NDSSpace(base.Space):
    """An NDS design space (``nds_arch.Design``) with slots, drawing and supernets."""
    enumerations = ("all",)
    modules = ("spaces.nds", "spaces.nds_arch", "spaces.nds_ops", "spaces.nds_resnet", "spaces.nds_resnexta")

    def __init__(self, name, design, params_prefix):
        self.name, self.design, self.params_prefix = name, design, params_prefix

    def parse(self, text):
        return self.design.parse(text)

    def to_str(self, arch):
        return self.design.to_str(self.design.coerce(arch))

    def coerce(self, x):
        return self.design.coerce(x)

    def canonical(self, arch):
        """Every configuration is its own class."""
        return self.design.coerce(arch)

    def sample(self, generator):
        return self.design.sample(generator)

    def mutate(self, arch, generator):
        return self.design.mutate(self.coerce(arch), generator)

    def enumerate(self, kind):
        """'all': every configuration, as a lazy sequence (len 108^3 ResNet, 225^3 ResNeXt-A)."""
        from .nds_arch import Configs
        if kind != "all":
            return super().enumerate(kind)
        return Configs(self.design)

    def params_file(self, kind):
        """params/nds/<space>-<kind>.yaml (relative to params/)."""
        return f"nds/{self.params_prefix}-{kind}.yaml"

    def slots(self, arch):
        """One row per stage and block position: live when the stage is deep enough to use it."""
        import pandas as pd
        arch, rows = self.coerce(arch), []
        P = self.design.max_depth - 1
        for s in range(3):
            d, w, b, g = self.design.stage(arch, s)
            op = f"w{w}" if self.design.block == "res_basic_block" else f"w{w} b{b:g} g{g}"
            for p in range(P):
                live = p < d - 1
                rows.append({"cell": f"stage{s + 1}", "slot": p, "label": f"s{s + 1}.p{p + 1}",
                             "op": op if live else "none", "live": live, "param": live})
        return pd.DataFrame(rows)

    def choices(self, arch):
        """One decision per aw_nas genotype key (depths.0, ..., widths.2, then bot_muls.*, num_groups.*): (the key,
        its choices, its value)."""
        d = self.design
        return list(zip(d.keys, [list(c) for c in d.choices], self.coerce(arch)))

    def edit(self, arch, i, value):
        """``arch`` with decision i (the order of ``choices``) set to ``value``."""
        arch = list(self.coerce(arch))
        arch[i] = value
        return self.design.check(arch)

    def draw(self, arch, table, ax=None, title=None):
        """The three stages as rows of positions, coloured by block (see nds_draw)."""
        from .nds_draw import draw_stages
        return draw_stages(table, title, ax)

    def notable(self):
        """The smallest and the largest configurations, and a mid-size one."""
        c = self.design.choices
        small = tuple(ch[0] for ch in c)
        big = tuple(ch[-1] for ch in c)
        mid = tuple(ch[len(ch) // 2] for ch in c)
        return {"smallest": self.to_str(small), "middle": self.to_str(mid), "largest": self.to_str(big)}

    def supernet(self, cfg, in_channels, num_classes):
        return Supernet(self.design, cfg, in_channels, num_classes)

    def standalone(self, arch, recipe, in_channels, num_classes):
        """Stand-alone net of one configuration; widths scaled by recipe.C / 16 (C: the stem width)."""
        return Standalone(self.design, self.coerce(arch), in_channels, num_classes, scale=recipe.C / 16)

    def complexity(self, arch, in_channels=3, num_classes=10, image_size=32, scale=1.0):
        """(params, flops) of the stand-alone net of ``arch`` (pycls counting; reference scale by default)."""
        return complexity(self.design, self.coerce(arch), in_channels, num_classes, image_size, scale)
