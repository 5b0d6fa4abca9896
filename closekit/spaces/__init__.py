"""Search-space registry: ``closekit.spaces.get(name)`` returns the space object (CLOSE §4: NB201, NB301, NDS)."""
import importlib

from .base import Space, Supernet  # noqa: F401  (the protocols, for space authors)

SPACES = {"nb201": "closekit.spaces.nb201:SPACE", "nb301": "closekit.spaces.nb301:SPACE",   # name -> module:object
          "nds-resnet": "closekit.spaces.nds:RESNET_SPACE", "nds-resnexta": "closekit.spaces.nds:RESNEXTA_SPACE"}


def get(name):
    """The registered search space called ``name``."""
    if name not in SPACES:
        raise KeyError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}")
    module, _, obj = SPACES[name].partition(":")
    return getattr(importlib.import_module(module), obj)
