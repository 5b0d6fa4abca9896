"""NB301 surrogate ground truth: genotype parsing (always) and the official predict path in its venv (opt-in).

The venv test needs `make nb301-surrogate` and runs with CLOSEKIT_NB301_SURROGATE=1 (it then fails, not skips,
when the venv is missing). It builds a 3-member xgb ensemble in nasbench301's real format at test time
(tests/nb301_surrogate_fixture.py, run inside the venv), scores genotypes through nasbench301.load_ensemble +
predict(..., with_noise=False) and compares with the members' own Booster predictions averaged in the fixture.
"""
import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from closekit.groundtruth import nb301_surrogate as sur

DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
ALL_SEP = ("Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 0), ('sep_conv_5x5', 2), "
           "('sep_conv_5x5', 1), ('sep_conv_5x5', 3), ('sep_conv_5x5', 2), ('sep_conv_5x5', 4)], "
           "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('avg_pool_3x3', 1), ('avg_pool_3x3', 0), "
           "('avg_pool_3x3', 2), ('avg_pool_3x3', 1), ('avg_pool_3x3', 3), ('avg_pool_3x3', 0), "
           "('avg_pool_3x3', 4)], reduce_concat=range(2, 6))")
ALL_SKIP = ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), "
            "('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "
            "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "
            "('skip_connect', 1)], reduce_concat=[2, 3, 4, 5])")
FIXTURE = Path(__file__).with_name("nb301_surrogate_fixture.py")


def test_parse_darts_v2():
    g = sur.parse_genotype(DARTS_V2)
    assert g["normal"][7] == ("dil_conv_3x3", 2) and g["reduce"][0] == ("max_pool_3x3", 0)
    assert g["normal_concat"] == g["reduce_concat"] == [2, 3, 4, 5]
    assert sur.parse_genotype(ALL_SEP)["normal_concat"] == [2, 3, 4, 5]          # range(2, 6) as DARTS prints it


@pytest.mark.parametrize("bad, token", [
    (DARTS_V2.replace("'dil_conv_3x3', 2", "'conv_9x9', 2"), "normal[7]: unknown op 'conv_9x9'"),
    (DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('skip_connect', 0), ('dil_conv_3x3', 6)"),
     "normal[7]: input 6 of node 5 must be in 0..4"),
    (DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1)",
                      "('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)"), "node 3 takes input 0 twice"),
    (DARTS_V2.replace("reduce_concat", "reduce_cat"), "fields reduce_cat, reduce_concat wrong"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "normal_concat = [4, 5]"),
    ("__import__('os').system('echo hi')", "not a Genotype(...) call"),
    (DARTS_V2[:-1], "not a Python expression"),
])
def test_malformed_genotype_one_line(bad, token):
    with pytest.raises(ValueError) as e:
        sur.parse_genotype(bad)
    assert token in str(e.value) and "\n" not in str(e.value)


def test_read_archs_names_the_line(tmp_path):
    f = tmp_path / "archs.txt"
    f.write_text(f"# three archs\n{DARTS_V2}\n\n{DARTS_V2}\n{DARTS_V2.replace('max_pool_3x3', 'maxpool')}\n")
    with pytest.raises(ValueError, match=r"archs.txt line 5: reduce\[0\]: unknown op 'maxpool'"):
        sur.read_archs(f)
    f.write_text(f"{DARTS_V2}\n{ALL_SKIP}\n{DARTS_V2}\n")
    assert sur.read_archs(f) == [DARTS_V2, ALL_SKIP]                             # identical strings once


def test_version_tag_and_missing_venv(tmp_path):
    d = tmp_path / "nb_models_1.0" / "xgb_v1.0"
    assert sur.version_tag(d, "xgb") == "nb301-surrogate-xgb-v1.0-mean"
    (tmp_path / "mine" / "m0").mkdir(parents=True)
    (tmp_path / "mine" / "m0" / "surrogate_model.model").write_bytes(b"abc")
    assert sur.version_tag(tmp_path / "mine", "lgb") == "nb301-surrogate-lgb-shaa9993e36-mean"   # sha1(b"abc") = a9993e36...
    with pytest.raises(FileNotFoundError, match="make nb301-surrogate"):
        sur.predict([DARTS_V2], tmp_path, tmp_path / "out.csv", venv=tmp_path / "no-venv")


def _venv_or_skip():
    if not os.environ.get("CLOSEKIT_NB301_SURROGATE"):
        pytest.skip("opt-in: build `make nb301-surrogate`, then set CLOSEKIT_NB301_SURROGATE=1")
    return sur.venv_python(os.environ.get("CLOSEKIT_NB301_VENV", ".venv-nb301"))   # missing venv: fails


def _in_venv(py, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(py), *map(str, args)], capture_output=True, text=True, env=env)


def test_official_predict_matches_booster_means(tmp_path):
    py = _venv_or_skip()
    ens = tmp_path / "nb_models_9.9" / "xgb_v9.9"
    p = _in_venv(py, FIXTURE, "build", ens, "--members", 3)
    assert p.returncode == 0, p.stderr
    archs = [DARTS_V2, ALL_SEP, ALL_SKIP]
    out = sur.predict(archs, ens, tmp_path / "truth" / "nb301.csv", venv=py.parents[1])
    first = out.read_text().splitlines()[0]
    assert first.startswith("# version: nb301-surrogate-xgb-v9.9-mean; nasbench301 0.3; 3 xgb members")
    assert sur.read_version(out) == "nb301-surrogate-xgb-v9.9-mean"
    with open(out) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert [r["arch"] for r in rows] == archs                                     # input strings unchanged
    p = _in_venv(py, FIXTURE, "expect", ens, out.with_name("nb301.archs.txt"))
    assert p.returncode == 0, p.stderr
    want = json.loads(p.stdout)
    for r, w in zip(rows, want):
        assert w["arch"] == r["arch"]
        assert float(r["acc"]) * 100 == pytest.approx(w["mean"], abs=1e-4)
        assert max(w["members"]) - min(w["members"]) > 1e-3                      # the mean is not one member's
    accs = [float(r["acc"]) for r in rows]
    assert len({round(a, 6) for a in accs}) == 3 and all(0.8 < a < 1.0 for a in accs)
    assert accs[1] > accs[0] > accs[2]     # all-conv normal cell > DARTS-V2 > all-skip, as the labels were made


def test_malformed_line_fails_in_venv(tmp_path):
    py = _venv_or_skip()
    ens = tmp_path / "xgb_v9.9"
    assert _in_venv(py, FIXTURE, "build", ens, "--members", 1).returncode == 0
    f = tmp_path / "archs.txt"
    f.write_text(f"{DARTS_V2}\n{DARTS_V2.replace('sep_conv_3x3', 'sep_conv_7x7', 1)}\n")
    p = _in_venv(py, sur.__file__, "--ensemble", ens, "--archs", f, "--out", tmp_path / "o.csv")
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert p.returncode == 2 and last == (f"error: {f} line 2: normal[0]: unknown op 'sep_conv_7x7'; use one of "
                                          + ", ".join(sur.OPS))
    assert not (tmp_path / "o.csv").exists()
    with pytest.raises(ValueError, match=r"arch 2 .*normal\[0\]: unknown op 'sep_conv_7x7'"):
        sur.predict([DARTS_V2, DARTS_V2.replace("sep_conv_3x3", "sep_conv_7x7", 1)], ens, tmp_path / "o.csv",
                    venv=py.parents[1])
