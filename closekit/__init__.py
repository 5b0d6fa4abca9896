"""closekit: one-shot NAS with curriculum learning on the sharing extent (CLOSE, Zhou et al., ECCV 2022).

The public names load on first use (PEP 562), so ``closekit --help`` and config checks import no torch."""
import importlib
import sys
import types

__version__ = "0.1.0"
# public name -> module that defines it (None: the name is a module)
EXPORTS = {"RunConfig": "config", "Trainer": "train", "arch_list": "evaluate", "build": "train", "compare": "metrics",
           "data": None, "evaluate": "evaluate", "groundtruth": None, "rank_metrics": "metrics",
           "read_results": "record", "record": "record", "run": "run", "spaces": None, "train": "train"}
__all__ = sorted(EXPORTS)


def __getattr__(name):
    """Import the module of a public name on first access."""
    if name not in EXPORTS:
        raise AttributeError(f"module 'closekit' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{EXPORTS[name] or name}")
    return module if EXPORTS[name] is None else getattr(module, name)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        """Importing submodule closekit.run (evaluate, record, train) binds its function, as the eager package did."""
        if EXPORTS.get(name) == name and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
