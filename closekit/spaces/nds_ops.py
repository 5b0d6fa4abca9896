"""NDS layers and blocks at maximum width (CLOSE §4.3; aw_nas germ ops, pycls AnyNet blocks): an architecture uses
the ordinal slice of every weight (its first channels); a g-group conv reads a dense weight's block diagonal."""
import torch
import torch.nn.functional as F
from torch import nn


def scaled(w, scale):
    """A width at ``scale`` (at least 1)."""
    return max(1, int(round(w * scale)))


def bottleneck_width(w, bot_mul, groups):
    """w_b = round(w * bot_mul), kept a multiple of the group count (exact at the reference widths)."""
    wb = int(round(w * bot_mul))
    return max(groups, groups * int(round(wb / groups)))


class SlicedConv(nn.Conv2d):
    """Conv at maximum width; forward(x, c_out) uses weight[:c_out, :c_in] (c_in = x's channels)."""

    def __init__(self, c_in, c_out, k, stride=1, bias=False, groups=1):
        super().__init__(c_in, c_out, k, stride, k // 2, bias=bias, groups=groups)

    def forward(self, x, c_out=None):
        c_out = c_out or self.out_channels
        b = self.bias[:c_out] if self.bias is not None else None
        return F.conv2d(x, self.weight[:c_out, :x.shape[1] // self.groups], b, self.stride, self.padding,
                        groups=self.groups)


class GroupConv(SlicedConv):
    """The reference's searchable group conv: g groups over c channels read the block diagonal of a dense weight."""

    def forward(self, x, groups=1):
        c, C = x.shape[1], self.out_channels
        if groups == 1:
            return super().forward(x, c)
        gs, rows = C // groups, torch.arange(c, device=x.device)          # row o reads its group at max width C
        cols = (rows // gs * gs)[:, None] + torch.arange(c // groups, device=x.device)        # [c, c/g]
        w = self.weight[:c].gather(1, cols[:, :, None, None].expand(-1, -1, *self.weight.shape[2:]))
        return F.conv2d(x, w, None, self.stride, self.padding, groups=groups)


class SlicedBN(nn.BatchNorm2d):
    """BatchNorm at maximum width, normalising the first C channels of its input (running stats sliced in place)."""

    def _count_batch(self):
        """Count a training batch; the running statistics' update weight (cumulative when momentum is None)."""
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    def forward(self, x):
        c = x.shape[1]
        factor = self._count_batch() if self.training else 0.0
        w, b = (self.weight[:c], self.bias[:c]) if self.affine else (None, None)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], w, b, self.training, factor, self.eps)


class MeanBN(SlicedBN):
    """Mean-only batch norm (Salimans & Kingma 2016): subtracts the batch mean in training, the running one in eval."""

    def forward(self, x):
        c, mean = x.shape[1], self.running_mean[:x.shape[1]]
        if self.training:
            batch = x.mean((0, 2, 3))
            mean.lerp_(batch.detach(), self._count_batch())
            mean = batch
        return x - mean.view(1, c, 1, 1)


class ConvBN(nn.Module):
    """Sliced conv + BN."""

    def __init__(self, c_in, c_out, k, stride=1, affine=False, groups=1, searchable_groups=False):
        super().__init__()
        conv = GroupConv if searchable_groups else SlicedConv
        self.conv, self.bn = conv(c_in, c_out, k, stride, groups=groups), SlicedBN(c_out, affine=affine)

    def forward(self, x, c_out=None):
        return self.bn(self.conv(x, c_out))


class BasicBlock(nn.Module):
    """ResNet basic block: relu(proj(x) + bn(conv3x3(relu(bn(conv3x3_s(x)))))); projection when asked."""

    def __init__(self, w_in, w_out, stride, proj, affine=False, **_):
        super().__init__()
        self.a = ConvBN(w_in, w_out, 3, stride, affine)
        self.b = ConvBN(w_out, w_out, 3, 1, affine)
        self.proj = ConvBN(w_in, w_out, 1, stride, affine) if proj else None

    def forward(self, x, w, wb=None, g=1):
        h = self.b(F.relu(self.a(x, w)), w)
        return F.relu((self.proj(x, w) if self.proj is not None else x) + h)


class BottleneckBlock(nn.Module):
    """ResNeXt bottleneck: 1x1 (w_in -> w_b), 3x3 g-group conv (stride; searchable g when groups is None), 1x1."""

    def __init__(self, w_in, w_out, stride, proj, affine=False, wb=None, groups=None):
        super().__init__()
        wb = wb or w_out
        self.a = ConvBN(w_in, wb, 1, 1, affine)
        self.b = ConvBN(wb, wb, 3, stride, affine, groups=groups or 1, searchable_groups=groups is None)
        self.c = ConvBN(wb, w_out, 1, 1, affine)
        self.proj = ConvBN(w_in, w_out, 1, stride, affine) if proj else None
        self.fixed_groups = groups is not None

    def forward(self, x, w, wb=None, g=1):
        h = F.relu(self.a(x, wb))
        h = F.relu(self.b.bn(self.b.conv(h) if self.fixed_groups else self.b.conv(h, g)))  # searchable: g groups
        h = self.c(h, w)
        return F.relu((self.proj(x, w) if self.proj is not None else x) + h)


BLOCKS = {"res_basic_block": BasicBlock, "res_bottleneck_block": BottleneckBlock}


def init_weights(m):
    """ResNet-style init (the reference's _init_weights): conv N(0, sqrt(2 / (k*k*out))), BN 1/0, linear N(0, .01)."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
    elif isinstance(m, nn.BatchNorm2d) and m.affine:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)


def stem(c_in, w):
    """res_stem_cifar: conv3x3 -> BN (affine) -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
