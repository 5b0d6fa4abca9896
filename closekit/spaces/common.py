"""What the space plug-ins share: error-message reprs, dict text, the reference's uniform draw, the cell spaces'
op decisions and their ReLU-conv-BN."""
import ast
import json

import torch
from torch import nn

from . import base


def one_line(x, limit=200):
    """repr squeezed onto one line (and cut), for error messages."""
    return " ".join(repr(x).split())[:limit]


def randint(n, generator):
    """One uniform draw from 0..n-1: one ``torch.randint``, as the reference samples."""
    return int(torch.randint(n, (1,), generator=generator))


def read_dict(text, bad):
    """The dict in JSON or Python literal ``text``; ``bad`` (an error-message prefix) names the space."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{bad}dict text {text[:60]!r} is neither JSON nor a Python dict") from None


class ReLUConvBN(nn.Sequential):
    """ReLU, k x k conv (same padding, no bias), BN: the cell spaces' conv op and input projection."""

    def __init__(self, c_in, c_out, k, stride=1, affine=False):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class CellSpace(base.Space):
    """What the cell spaces (NB201, NB301) share: one op decision per slot, their notable cells."""
    SHORT, NOTABLE = {}, {}                         # op -> its short name (slot tables, choices); label -> arch string

    def choices(self, arch):
        """One decision per slot (slot-table order): (its label, every op's short name, its op)."""
        s = self.slots(arch)
        return [(label, list(self.SHORT.values()), op) for label, op in zip(s["label"], s["op"])]

    def long_op(self, short):
        """The op of a short name (a choice's value); ValueError in one line for any other."""
        ops = [op for op, name in self.SHORT.items() if name == short]
        if not ops:
            raise ValueError(f"op {short!r} is not one of {', '.join(self.SHORT.values())}")
        return ops[0]

    def notable(self):
        """Classic cells, as written (scoring and drawing take an architecture as given)."""
        return dict(self.NOTABLE)
