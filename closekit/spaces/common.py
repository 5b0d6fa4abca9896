"""What the space plug-ins share: error-message reprs, dict text, the reference's uniform draw."""
import ast
import json

import torch


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
