"""What the space plug-ins share: error-message reprs, dict text, the reference's uniform draw, the cell spaces'
op decisions."""
import ast
import json

import torch

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


class CellSpace(base.Space):
    """What the cell spaces (NB201, NB301) share: one op decision per slot, their notable cells, their supernet."""
    LONG, NOTABLE = {}, {}                          # short op name -> op; label -> arch string

    def choices(self, arch):
        """One decision per slot (slot-table order): (its label, every op's short name, its op)."""
        s = self.slots(arch)
        return [(label, list(self.LONG), op) for label, op in zip(s["label"], s["op"])]

    def long_op(self, op):
        """The op of a short name (a choice's value); ValueError in one line for any other."""
        if op not in self.LONG:
            raise ValueError(f"op {op!r} is not one of {', '.join(self.LONG)}")
        return self.LONG[op]

    def notable(self):
        """Classic cells, as written (scoring and drawing take an architecture as given)."""
        return dict(self.NOTABLE)

    def supernet(self, cfg, in_channels, num_classes):
        return self.supernet_cls(cfg, in_channels, num_classes)
