"""Search-space registry: ``closekit.spaces.get(name)`` returns the space object (CLOSE §4: NB201, NB301, NDS)."""
import importlib

from .base import Space, Supernet  # noqa: F401  (the protocols, for space authors)

SPACES = {"nb201": "closekit.spaces.nb201", "nb301": "closekit.spaces.nb301",      # name -> module holding SPACE
          "nds-resnet": "closekit.spaces.nds_resnet", "nds-resnexta": "closekit.spaces.nds_resnexta"}


def get(name):
    """The registered search space called ``name``."""
    if name not in SPACES:
        raise KeyError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}")
    return importlib.import_module(SPACES[name]).SPACE
