"""Untrusted benchmark files read safely: text as UTF-8 (one line of error), YAML by libyaml where present,
pickles at C speed with classes refused.

``load(f, allow)`` is the C unpickler with every class refused but the (module, name) pairs in ``allow``: a pickle
asking for anything else fails in one line and runs nothing. ``torch_file(path, allow)`` reads a torch.save file
(legacy stream or zip archive) that holds no tensors the same way, so an official NB201 .pth is unpickled once, in
C, instead of by torch's pure-Python weights-only unpickler (80% of a 32-48 s load of a 26.7 MB file).
"""
import gc
import importlib
import pickle
import zipfile
from contextlib import contextmanager

import yaml

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c          # torch.save's legacy stream header


class Refused(ValueError):
    """The pickle asks for a class outside the allow list (or holds tensors)."""


class _Restricted(pickle.Unpickler):
    def __init__(self, f, allow):
        super().__init__(f)
        self.allow = set(allow)

    def find_class(self, module, name):
        module = {"__builtin__": "builtins"}.get(module, module)      # protocol 2 writes Python 2 names
        if (module, name) in self.allow:
            return getattr(importlib.import_module(module), name)
        if module.startswith("torch"):
            raise Refused(f"holds tensors ({module}.{name})")
        raise Refused(f"asks for {module}.{name}")

    def persistent_load(self, pid):
        raise Refused("holds tensors")


def read_text(path, what="ground truth"):
    """A text file's content; one line naming the file when it is not UTF-8."""
    try:
        return open(path, encoding="utf-8").read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                         "save it as UTF-8") from None


def read_yaml(path, what="ground truth"):
    """A YAML file's content, parsed by libyaml where present (the reference's lists: 7-8 s in pure Python)."""
    try:
        return yaml.load(read_text(path, what), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {path} is not valid YAML ({' '.join(str(e).split())[:120]}); fix the file") \
            from None


@contextmanager
def _no_gc():
    """Millions of small objects: the cyclic collector would rescan them on every allocation burst."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load(f, allow=()):
    """One pickle from the open binary file ``f``, only the classes in ``allow`` (pairs of module, name)."""
    with _no_gc():
        return _Restricted(f, allow).load()


def torch_file(path, allow=()):
    """The object of a torch.save file holding no tensors; Refused if it holds some or asks for other classes,
    ValueError if it is no torch.save file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise ValueError(f"{path} is a zip archive without data.pkl, not a torch.save file")
            with z.open(name) as f:
                return load(f, allow)
    with open(path, "rb") as f:
        try:
            magic = load(f)
        except Refused:
            raise
        except Exception as e:
            raise ValueError(f"{path} is not a torch.save file ({type(e).__name__})") from None
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path} is a plain pickle, not a torch.save file (no torch header)")
        load(f), load(f)                                 # protocol version, sys info
        return load(f, allow)
