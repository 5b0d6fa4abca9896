"""Untrusted benchmark files read safely: UTF-8 text and YAML with one-line errors, pickles by the C unpickler with
every class refused but an allow list (a pickle asking for another runs nothing), a torch.save file holding no
tensors the same way (not by torch's pure-Python weights-only unpickler: 80% of a 32-48 s NB201 load), streamed;
and the check the CSV and aw_nas readers make of the architectures they read (``canonical_archs``).
"""
import gc
import importlib
import io
import pickle
import struct
import zipfile

import yaml

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c          # torch.save's legacy stream header
DRAIN_EVERY = 64 << 20                         # bytes read between two drains of a streamed dict
FIND_EVERY = 1 << 20                           # bytes read between two looks for it before it shows
KEEP_LAST = 50_000                             # memo entries kept at a drain (an NB201 arch has about 10,000)


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


def one_line(x, limit=240):
    """str(x) squeezed onto one line and shortened, for error messages."""
    s = " ".join(str(x).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


def canonical_archs(space, archs, where, start=0):
    """Canonical strings of ``archs``; the first that is not of ``space`` raises one line naming ``where`` and its
    number (e.g. where="x.csv line", start=2)."""
    out = []
    for i, arch in enumerate(archs, start):
        try:
            out.append(space.canonical_str(arch))
        except ValueError as e:
            raise ValueError(f"ground truth {where} {i} does not belong to space {space.name}: {e}") from None
    return out


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
        raise ValueError(f"{what} {path} is not valid YAML ({one_line(e, 120)}); fix the file") from None


class _Drain:
    """The file under a streamed load: every DRAIN_EVERY bytes the finished items of the dict under ``key`` go to
    ``consume`` and leave the dict and the unpickler's memo (a pickler memoizes every container and string at rising
    indices). Kept: what came before the dict, the strings and tuples of its first FIND_EVERY bytes (names every
    entry repeats), the last KEEP_LAST entries; a reference to another fails loudly (``pickle.UnpicklingError``)."""

    def __init__(self, f, key, consume, allow):
        self.f, self.key, self.consume, self.count = f, key, consume, 0
        self.peek, self.readline = f.peek, f.readline    # the C unpickler prefetches: read() runs once a chunk
        self.target = self.first = None
        self.unpickler = _Restricted(self, allow)

    def read(self, n=-1):
        data = self.f.read(n)
        self.count += len(data)
        if self.count >= (DRAIN_EVERY if self.first else FIND_EVERY):
            self.count = 0
            self.drain()
        return data

    def drain(self):
        memo = self.unpickler.memo.copy()
        if self.target is None:
            at = next((i for i, v in memo.items() if type(v) is str and v == self.key), None)
            if at is not None and type(memo.get(at + 1)) is dict:
                self.target, self.base = memo[at + 1], at + 1
            return
        if self.first is None:                            # its first FIND_EVERY bytes: names all entries repeat
            self.first = max(memo)
            return
        items = list(self.target.items())
        self.target.clear()
        for k, v in items:
            self.consume(k, v)
        del items
        last = max(memo) - KEEP_LAST
        keep = {i: v for i, v in memo.items()
                if i <= self.base or i > last or (i <= self.first and type(v) in (str, tuple))}
        del memo
        self.unpickler.memo = _memo(keep)


def _memo(objects):
    """A memo of exactly ``objects`` ({index: object}), made by unpickling them (3.11's memo setter takes no dict)."""
    ops = b"".join(b"J" + struct.pack("<i", i) + b"Qr" + struct.pack("<I", i) + b"0" for i in objects)
    u = pickle.Unpickler(io.BytesIO(b"\x80\x02" + ops + b"N."))
    u.persistent_load = objects.__getitem__
    u.load()
    return u.memo


def load(f, allow=(), stream=None):
    """One pickle from ``f``, only the (module, name) classes in ``allow``; ``stream=(key, consume)``: see _Drain."""
    u = _Restricted(f, allow) if stream is None else _Drain(f, *stream, allow).unpickler
    was = gc.isenabled()
    gc.disable()                         # millions of small objects: the collector would rescan them at every burst
    try:
        return u.load()
    finally:
        if was:
            gc.enable()


def torch_file(path, allow=(), stream=None):
    """The object of a torch.save file that holds no tensors (Refused if it does); ValueError if it is none."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise ValueError(f"{path} is a zip archive without data.pkl, not a torch.save file")
            with z.open(name) as f:
                return load(f, allow, stream)
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
        return load(f, allow, stream)
