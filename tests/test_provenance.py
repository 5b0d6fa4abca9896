"""Provenance by declaration (issue 26 #6) and the direction spaces -> ground truth (issue 26 #5)."""
import ast
import shutil
from pathlib import Path

import pytest

from closekit import groundtruth, provenance, spaces

PACKAGE = Path(provenance.__file__).parent


def _imports(path):
    """closekit modules (dotted, below closekit) a module file imports, relative imports resolved."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("closekit")):
            base = list(rel[:len(rel) - node.level]) if node.level else []
            mod = (node.module or "").removeprefix("closekit").lstrip(".") if not node.level else node.module
            parts = base + (mod.split(".") if mod else [])
            names = [a.name for a in node.names]
            for n in names:                          # `from . import x` imports module x when it is one
                cand = ".".join(parts + [n])
                out.add(cand if (PACKAGE / (cand.replace(".", "/") + ".py")).is_file() else ".".join(parts))
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix("closekit.") for a in node.names if a.name.startswith("closekit.")}
    return {m if (PACKAGE / (m.replace(".", "/") + ".py")).is_file() else m + ".__init__" for m in out if m}


def test_every_module_is_declared_and_every_declared_module_exists():
    assert provenance.undeclared() == [], "declare these in provenance.CORE / SHELL or a space's modules"
    declared = set(provenance.CORE + provenance.SHELL) | {m for n in spaces.SPACES for m in spaces.get(n).modules}
    assert [m for m in sorted(declared) if not (PACKAGE / provenance._file(m)).is_file()] == []


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_a_space_hash_covers_every_module_its_modules_import(name):
    """What a space's files (and its readers) import is hashed with it: nothing escapes its code version (the two
    registries name every space's modules by design)."""
    mods = set(provenance.modules(name))
    for m in mods - {"groundtruth.__init__", "spaces.__init__"}:
        missing = {i for i in _imports(PACKAGE / provenance._file(m)) if i not in mods and i not in provenance.SHELL}
        assert not missing, f"{m} imports {missing}, which {name}'s code version does not hash"


def test_code_version_hashes_exactly_the_declared_files(tmp_path, monkeypatch):
    """A new helper file changes no hash until declared, and a file of another space changes none of this one's
    (the old name-prefix rule hashed every undeclared file into every space, and skipped 'nb201_*' files for NDS)."""
    copy = tmp_path / "closekit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", copy)
    before = {n: provenance.code_version.__wrapped__(n) for n in spaces.SPACES}
    (copy / "helper.py").write_text("X = 1\n")
    (copy / "spaces/nb201_arch.py").write_text((copy / "spaces/nb201_arch.py").read_text() + "\n# changed\n")
    after = {n: provenance.code_version.__wrapped__(n) for n in spaces.SPACES}
    assert after["nb201"] != before["nb201"]
    assert {n: after[n] for n in after if n != "nb201"} == {n: before[n] for n in before if n != "nb201"}
    monkeypatch.setattr(provenance, "CORE", provenance.CORE + ("helper",))
    assert all(provenance.code_version.__wrapped__(n) != after[n] for n in spaces.SPACES)


def test_spaces_import_no_ground_truth():
    for path in (PACKAGE / "spaces").glob("*.py"):
        assert not [m for m in _imports(path) if m.startswith("groundtruth")], path
        assert "groundtruth" not in path.read_text(), f"{path} names the ground truth"
    assert all(not hasattr(spaces.get(n), "official_truth") for n in spaces.SPACES)
    assert set(groundtruth.READERS) == set(spaces.SPACES)           # one reader module per registered space
