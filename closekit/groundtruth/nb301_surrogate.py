"""NAS-Bench-301 surrogate ground truth (CLOSE §5, NB301 ranking): the official ensemble mean, in its own venv.

The reference ranks against ``nasbench301`` 0.3: ``load_ensemble(dir).predict(config=genotype,
representation="genotype", with_noise=False)``, the mean predicted CIFAR-10 validation accuracy (%) of the ensemble.
That package pins an old stack, so it lives in a venv of its own (``make nb301-surrogate``). This file imports only
the standard library at module level and has two sides: the script, run INSIDE that venv (never imports closekit)::

      .venv-nb301/bin/python closekit/groundtruth/nb301_surrogate.py --ensemble DIR --archs FILE --out CSV

reads DARTS ``Genotype(...)`` strings, one per line, and writes CSV ``arch,acc`` (acc a fraction) after a
``# version: nb301-surrogate-<model>-v<ver>-mean ...`` line; the kit side, ``predict(archs, ensemble_dir,
out_csv)``, runs it and returns the CSV, which ``closekit.groundtruth.load`` reads like any table.
"""
import argparse
import ast
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5")                                     # nasbench301/representations.py OPS (no `none`)
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
CONCAT = [2, 3, 4, 5]
REPO = Path(__file__).resolve().parents[2]
MAKE = "make nb301-surrogate"
MEMBER_FILE = "surrogate_model.model"
FORMAT = ("expected Genotype(normal=[(op, input) x 8], normal_concat=[2, 3, 4, 5], reduce=[...], "
          "reduce_concat=[2, 3, 4, 5]) with ops from " + ", ".join(OPS))


def _literal(node, what):
    """ast.literal_eval of one keyword value; ``range(2, 6)`` (DARTS search output) reads as [2, 3, 4, 5]."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords):
        return list(range(*[_literal(a, what) for a in node.args]))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{what} is not a literal: {ast.unparse(node)!r}") from None


def _cell(value, name):
    """Validated list of 8 (op, input) pairs; node k (0..3) takes two distinct inputs from 0..k+1."""
    if not isinstance(value, (list, tuple)) or len(value) != 8:
        raise ValueError(f"{name} must list 8 (op, input) pairs, got {value!r}")
    cell = []
    for j, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
            raise ValueError(f"{name}[{j}] = {pair!r} is not an (op, input) pair")
        op, src = pair
        if op not in OPS:
            raise ValueError(f"{name}[{j}]: unknown op {op!r}; use one of {', '.join(OPS)}")
        if not 0 <= src <= j // 2 + 1:
            raise ValueError(f"{name}[{j}]: input {src} of node {j // 2 + 2} must be in 0..{j // 2 + 1}")
        cell.append((op, src))
    for k in range(4):
        if cell[2 * k][1] == cell[2 * k + 1][1]:
            raise ValueError(f"{name}: node {k + 2} takes input {cell[2 * k][1]} twice; its two inputs must differ")
    return cell


def parse_genotype(text):
    """Dict of the four Genotype fields from a DARTS genotype string, parsed with ast (never eval)."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"not a Python expression; {FORMAT}") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ValueError(f"not a Genotype(...) call; {FORMAT}")
    if tree.args:
        raise ValueError(f"positional Genotype arguments; {FORMAT}")
    given = [k.arg for k in tree.keywords]
    if sorted(given, key=str) != sorted(FIELDS) or None in given:
        bad = sorted(set(map(str, given)) ^ set(FIELDS))
        raise ValueError(f"Genotype fields {', '.join(bad)} wrong (need exactly {', '.join(FIELDS)})")
    vals = {k.arg: _literal(k.value, k.arg) for k in tree.keywords}
    for c in ("normal_concat", "reduce_concat"):
        if list(vals[c]) != CONCAT:
            raise ValueError(f"{c} = {vals[c]!r}; NB301 cells concatenate nodes [2, 3, 4, 5]")
        vals[c] = list(CONCAT)
    vals["normal"], vals["reduce"] = _cell(vals["normal"], "normal"), _cell(vals["reduce"], "reduce")
    return vals


def _check(labelled):
    """Every (label, genotype string) parsed; the first bad one raises one line naming its label."""
    for label, s in labelled:
        try:
            parse_genotype(s)
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None


def read_archs(path):
    """Genotype strings of an arch file (one per line; blank lines and '# ...' lines skipped), each validated."""
    lines = [(i, line.strip()) for i, line in enumerate(Path(path).read_text().splitlines(), 1)]
    archs = [(f"{path} line {i}", s) for i, s in lines if s and not s.startswith("#")]
    _check(archs)
    return list(dict.fromkeys(s for _, s in archs))       # identical strings once, as the reference keys by str


def members(ensemble_dir):
    """Sorted member directories: every folder holding a surrogate_model.model (as load_ensemble finds them)."""
    return sorted({p.parent for p in Path(ensemble_dir).rglob(f"*{MEMBER_FILE}")})


def version_tag(ensemble_dir, model):
    """'nb301-surrogate-<model>-v<ver>-mean'; ver from the folder names (xgb_v1.0, nb_models_1.0), else a hash."""
    d = Path(ensemble_dir).resolve()
    for name in (d.name, d.parent.name):
        m = re.search(r"(?:_v|nb_models_)(\d+(?:\.\d+)+)$", name)
        if m:
            return f"nb301-surrogate-{model}-v{m.group(1)}-mean"
    h = hashlib.sha1(b"".join((m / MEMBER_FILE).read_bytes() for m in members(d))).hexdigest()
    return f"nb301-surrogate-{model}-sha{h[:8]}-mean"


def read_version(csv_path):
    """The version tag from a CSV written by this module's script (its first line)."""
    with open(csv_path) as f:
        m = re.match(r"# version: ([^;\s]+)", f.readline())
    if not m:
        raise ValueError(f"{csv_path} has no '# version: ...' first line; write it with nb301_surrogate.predict")
    return m.group(1)


# ----------------------------------------------------------------------------------------- script side (venv)
def run(ensemble_dir, archs_path, out_csv):
    """Official ensemble-mean predictions of the archs in ``archs_path`` written to ``out_csv``; returns the tag."""
    archs = read_archs(archs_path)
    found = members(ensemble_dir)
    if not found:
        raise ValueError(f"no {MEMBER_FILE} under {ensemble_dir}; unpack nasbench301.download_models('1.0') and "
                         "give e.g. nb_models_1.0/xgb_v1.0")
    model = json.loads((found[0] / "model_config.json").read_text())["model"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")          # one-row predicts: 15x faster than a thread pool
    import nasbench301                                     # heavy: only here, inside the surrogate venv
    from nasbench301.representations import Genotype
    from importlib.metadata import version
    api = nasbench301.load_ensemble(str(ensemble_dir))
    tag = version_tag(ensemble_dir, model)
    rows = [(s, float(api.predict(config=Genotype(**parse_genotype(s)), representation="genotype",
                                  with_noise=False)) / 100.0) for s in archs]    # one config per call: no batch API
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(f"# version: {tag}; nasbench301 {version('nasbench301')}; {len(found)} {model} members; "
                "acc = ensemble mean (with_noise=False) / 100\n")
        w = csv.writer(f)
        w.writerow(["arch", "acc"])
        w.writerows((a, repr(acc)) for a, acc in rows)
    os.replace(tmp, out)
    return tag


def main(argv=None):
    """Command line of the script side; bad input exits 2 with one 'error: ...' line on stderr."""
    p = argparse.ArgumentParser(description="NB301 surrogate ensemble mean for DARTS genotypes (run in its venv)")
    p.add_argument("--ensemble", required=True, help="directory of ensemble members, e.g. nb_models_1.0/xgb_v1.0")
    p.add_argument("--archs", required=True, help="file of DARTS Genotype(...) strings, one per line")
    p.add_argument("--out", required=True, help="CSV to write (arch,acc)")
    a = p.parse_args(argv)
    try:
        tag = run(a.ensemble, a.archs, a.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {tag}")
    return 0


# ----------------------------------------------------------------------------------------- kit side (stdlib)
def venv_python(venv=".venv-nb301"):
    """The surrogate venv's python (a relative ``venv`` is taken from the repo root); one line if missing."""
    v = Path(venv)
    if not v.is_absolute() and not v.exists():
        v = REPO / v
    py = v / "bin" / "python"
    if not py.is_file():
        raise FileNotFoundError(f"NB301 surrogate venv {v} not found; build it with `{MAKE}` (or pass venv=...)")
    return py


def predict(archs, ensemble_dir, out_csv, venv=".venv-nb301", timeout=None):
    """Write the archs, run the official ensemble mean in the surrogate venv, return the CSV path (arch,acc)."""
    py = venv_python(venv)
    out = Path(out_csv)
    archs = [str(a).strip() for a in archs]
    _check((f"arch {i} ({s[:60]!r}...)", s) for i, s in enumerate(archs, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    arch_file = out.with_name(out.stem + ".archs.txt")
    arch_file.write_text("".join(s + "\n" for s in archs))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(py), str(Path(__file__).resolve()), "--ensemble", str(ensemble_dir),
                           "--archs", str(arch_file), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode:
        last = next((ln for ln in reversed(proc.stderr.splitlines()) if ln.strip()), f"exit code {proc.returncode}")
        if proc.returncode == 2 and last.startswith("error: "):
            raise ValueError(last.removeprefix("error: "))
        raise RuntimeError(f"NB301 surrogate failed in {py}: {last}")
    return out


if __name__ == "__main__":
    sys.exit(main())
