"""Provenance by declaration: the source files a result of a space depends on, and the record of a run.

``code_version(S)`` hashes the ``CORE`` modules, those space S declares (``Space.modules``) and its official readers'
(``closekit.groundtruth.READERS[S]``). The ``SHELL`` cannot change a result. Every module is declared somewhere
(tests/test_provenance.py checks), so a new file neither changes a hash by its name nor escapes it.
"""
import functools
import hashlib
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CORE = ("__init__", "checkpoint", "config", "curriculum", "data", "evaluate", "gates", "metrics", "routing", "run",
        "sharing", "train", "spaces.__init__", "spaces.base", "groundtruth.__init__", "groundtruth.files",
        "groundtruth.minibench", "groundtruth.recipe", "groundtruth.standalone", "groundtruth.results",
        "groundtruth.ceiling", "groundtruth.pool", "groundtruth.machine")
SHELL = ("batch", "cli", "grid", "jobs", "plots", "procs", "progress", "provenance", "record", "report", "search",
         "slurm", "starter", "tracking", "widgets",
         "spaces.draw", "spaces.nb201_draw", "spaces.nb301_draw", "spaces.nds_draw", "groundtruth.nb301_surrogate")


def _file(module):
    """closekit-relative path of a dotted module name below closekit (a package's __init__ included)."""
    return module.replace(".", "/") + ".py"


def modules(space):
    """The modules a result of ``space`` (a registered name) depends on: core, the space's own, its readers'."""
    from . import groundtruth, spaces
    reader = groundtruth.READERS.get(space)
    own = spaces.get(space).modules + ((reader.__name__.removeprefix("closekit."),) if reader else ())
    return tuple(dict.fromkeys(CORE + own))


@functools.lru_cache(maxsize=None)
def code_version(space):
    """sha256 (16 hex) of the declared source files a result of ``space`` depends on (``modules``)."""
    h = hashlib.sha256()
    for rel in sorted(_file(m) for m in modules(space)):
        p = PACKAGE / rel
        if p.is_file():                  # a declared file that is gone: tests/test_provenance.py names it
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def undeclared():
    """Package modules declared nowhere (neither core, shell, a space's nor a reader's): must be none."""
    from . import groundtruth, spaces
    declared = set(CORE + SHELL) | {m.__name__.removeprefix("closekit.") for m in groundtruth.READERS.values()}
    declared |= {m for name in spaces.SPACES for m in spaces.get(name).modules}
    found = {p.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".") for p in PACKAGE.rglob("*.py")}
    return sorted(found - declared)


def config_hash(cfg):
    """sha256 (16 hex) of the resolved config (every key, defaults included)."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def provenance(cfg):
    """What produced a result: config hash, code version, closekit version."""
    from . import __version__
    return {"config_hash": config_hash(cfg), "code_version": code_version(cfg.space), "closekit_version": __version__}
