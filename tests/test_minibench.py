"""Mini benchmark builder: determinism, resume after SIGKILL, recipe guard, noise ceiling, canonical archs, workers."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import kendalltau

from closekit.cli import main
from closekit.groundtruth import minibench
from closekit.groundtruth.ceiling import noise_ceiling, seed_mean_reliability
from closekit.groundtruth.machine import built_on, machine
from closekit.groundtruth.recipe import Recipe
from closekit.groundtruth.results import read_results
from closekit.groundtruth.standalone import load_data, train_one

TINY = dict(dataset="synthetic", image_size=None, C=2, N=1, epochs=1, train_limit=256, eval_limit=128, batch_size=64)
SLOW = dict(TINY, C=4, epochs=2, train_limit=None)      # ~0.1-0.3 s per job: room to kill a build mid-run


def as_set(recipe):
    return [f"{k}={'null' if v is None else v}" for k, v in recipe.items()]


def values(out_dir):
    """results.csv without the timing column, sorted by (arch, seed)."""
    df = pd.read_csv(out_dir / "results.csv").drop(columns="seconds")
    return df.sort_values(["arch", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def archs(space):
    return [space.to_str(a) for a in space.sample_list(6, 3)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, archs):
    """An uninterrupted build of the SLOW recipe over 6 archs x 2 seeds."""
    out = tmp_path_factory.mktemp("clean")
    minibench.build(archs, [0, 1], Recipe(**SLOW), out, progress=False)
    return out


def test_train_one_is_deterministic(space, archs):
    recipe = Recipe(**TINY)
    data = load_data(recipe)
    a, b, c = (train_one(archs[0], s, recipe, data) for s in (0, 0, 1))
    assert (a["acc"], a["loss"], a["params"]) == (b["acc"], b["loss"], b["params"])
    assert a["loss"] != c["loss"] and a["arch"] == space.canonical_str(archs[0])
    assert 0 <= a["acc"] <= 1 and a["params"] > 0


@pytest.mark.slow
def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path, archs, clean):
    (tmp_path / "archs.txt").write_text("\n".join(archs) + "\n")
    out = tmp_path / "run"
    cmd = ["truth", "build", "--archs", str(tmp_path / "archs.txt"), "--seeds", "0", "1", "--out", str(out),
           "--no-progress", "--set", *as_set(SLOW)]
    proc = subprocess.Popen([sys.executable, "-m", "closekit.cli", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    results, deadline = out / "results.csv", time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:       # header + first row
            break
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_killed = results.read_bytes().count(b"\n") - 1
    assert 1 <= n_killed < 12, "the build was not interrupted"
    assert main(cmd) == 0
    raw = pd.read_csv(results)
    assert len(raw) == 12 and not raw.duplicated(["arch", "seed"]).any()
    pd.testing.assert_frame_equal(values(out), values(clean))
    meta = yaml.safe_load((out / "meta.yaml").read_text())
    assert meta["n_results"] == 12 and meta["seeds"] == [0, 1] and meta["noise_ceiling"]["n_archs"] == 6
    truth = minibench.load_truth(out)
    assert len(truth) == 6 and (truth["n_seeds"] == 2).all()
    assert truth.attrs["version"].startswith("mini-nb201-synthetic-c4n1-e2-s2")


def test_truncated_trailing_line_is_ignored_then_repaired(tmp_path, archs, clean):
    out = tmp_path / "run"
    out.mkdir()
    for f in ("meta.yaml", "results.csv"):
        (out / f).write_bytes((clean / f).read_bytes())
    text = (clean / "results.csv").read_text()
    cut = text[:-1].rfind("\n") + 1                       # start of the last row
    (out / "results.csv").write_text(text[:cut + 30])     # killed while writing it
    assert len(read_results(out / "results.csv")) == 11
    assert minibench.load_truth(out)["n_seeds"].sum() == 11
    minibench.build(archs, [0, 1], Recipe(**SLOW), out, progress=False)
    assert (out / "results.csv").read_text().count("\n") == 13
    pd.testing.assert_frame_equal(values(out), values(clean))


def test_other_recipe_in_same_dir_is_one_line_error(tmp_path, archs, clean, capsys):
    args = ["truth", "build", "--archs", "sample:2", "--seeds", "0", "--out", str(clean), "--no-progress", "--set"]
    assert main(args + as_set({**SLOW, "C": 3})) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another recipe" in err and "C: 4 -> 3" in err
    assert main(args + as_set({**SLOW, "bogus": 1})) == 2
    assert "unknown recipe key(s) bogus" in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads: 1 -> 2"):    # threads change the float rounding: refused too
        minibench.build(archs, [0, 1], Recipe(**SLOW, threads=2), clean, progress=False)
    before = (clean / "results.csv").read_bytes()                # the same recipe: nothing to redo
    minibench.build(archs[:3], [1], Recipe(**SLOW), clean, progress=False)
    assert (clean / "results.csv").read_bytes() == before



def test_load_truth_of_a_directory_without_meta_says_what_to_do(tmp_path):
    """Review 2: the one-line refusal of a directory that is no minibench (the fix: build one) stays."""
    with pytest.raises(FileNotFoundError, match="is not a minibench directory .* build one with `closekit truth"):
        minibench.load_truth(tmp_path)

def test_noise_ceiling_matches_scipy():
    rng = np.random.default_rng(1)
    acc = rng.random((8, 3))
    rows = [(f"a{i}", s, acc[i, s]) for i in range(8) for s in range(3) if (i, s) != (7, 1)]   # a7 lacks seed 1
    res = pd.DataFrame(rows, columns=["arch", "seed", "acc"]).assign(loss=0.0, params=1, seconds=0.0)
    nc = noise_ceiling(res, n_boot=200)
    assert nc["seeds"] == [0, 1] and nc["n_archs"] == 7
    assert nc["kendall"] == pytest.approx(kendalltau(acc[:7, 0], acc[:7, 1]).statistic)
    mean = acc[:7].mean(1)
    for s in range(3):
        assert nc["mean_vs_seed"][s] == pytest.approx(kendalltau(mean, acc[:7, s]).statistic)
    assert -1 <= nc["bootstrap_mean"] <= 1 and 0 < nc["bootstrap_std"] < 1 and nc["bootstrap_n"] == 200
    assert nc == noise_ceiling(res, n_boot=200)                            # fixed bootstrap seed
    assert noise_ceiling(res[res.seed == 0]) is None
    assert nc["pairs"]["1-2"] == pytest.approx(kendalltau(acc[:7, 1], acc[:7, 2]).statistic)


def test_seed_mean_reliability_predicts_agreement():
    """Synthetic archs with known arch and noise sd: the variance split recovers them, and the predicted tau
    between two independent k-seed means matches the one measured on fresh draws."""
    rng = np.random.default_rng(0)
    true = rng.normal(0.75, 0.016, 4000)
    draw = lambda k: true[:, None] + rng.normal(0, 0.010, (len(true), k))
    rel = seed_mean_reliability(pd.DataFrame(draw(3)))
    assert rel["arch_sd"] == pytest.approx(0.016, rel=0.05) and rel["noise_sd"] == pytest.approx(0.010, rel=0.05)
    assert rel["rho"] == pytest.approx(0.016 ** 2 / (0.016 ** 2 + 0.010 ** 2 / 3), abs=0.01)
    measured = kendalltau(draw(3).mean(1), draw(3).mean(1)).statistic
    assert rel["tau_two_means"] == pytest.approx(measured, abs=0.03)
    assert rel["tau_vs_noise_free"] == pytest.approx(kendalltau(true, draw(3).mean(1)).statistic, abs=0.03)
    assert rel["tau_two_means"] < rel["tau_vs_noise_free"] < 1


def test_isomorphic_inputs_collapse(space, tmp_path):
    members = space.members(space.sample_list(1, 0)[0])
    assert len(members) > 1
    strs = [space.to_str(members[0]), space.to_str(members[-1])]
    assert minibench.resolve_archs(strs) == [space.canonical_str(strs[0])]
    truth = minibench.build(strs, [0], Recipe(**TINY), tmp_path, progress=False)
    assert list(truth["arch"]) == [space.canonical_str(strs[0])]


@pytest.mark.slow
def test_two_workers_match_one(tmp_path, archs):
    one = minibench.build(archs[:3], [0], Recipe(**TINY), tmp_path / "one", progress=False)
    two = minibench.build(archs[:3], [0], Recipe(**TINY), tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(values(tmp_path / "one"), values(tmp_path / "two"))
    pd.testing.assert_frame_equal(one, two)


def test_meta_records_which_machine_appended_which_rows(tmp_path, archs):
    def build(n):
        minibench.build(archs[:n], [0], Recipe(**TINY), tmp_path, progress=False)
        return yaml.safe_load((tmp_path / "meta.yaml").read_text())

    here = machine()
    assert "torch " in here and build(2)["machines"] == [{"machine": here, "first_row": 0}]
    assert build(2)["machines"] == [{"machine": here, "first_row": 0}]          # nothing trained: nothing added
    meta = yaml.safe_load((tmp_path / "meta.yaml").read_text())
    meta["machines"] = [{"machine": "another CPU", "first_row": 0}]            # as if built elsewhere
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    meta = build(3)
    assert meta["machines"] == [{"machine": "another CPU", "first_row": 0}, {"machine": here, "first_row": 2}]
    assert [built_on(meta, i) for i in range(3)] == ["another CPU", "another CPU", here]
    del meta["machines"]                                                        # a build from before the record
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    meta = build(4)
    assert meta["machines"] == [{"machine": "unrecorded", "first_row": 0}, {"machine": here, "first_row": 3}]
    assert built_on(meta, 0) is None and built_on(meta, 3) == here


@pytest.mark.parametrize("args, match", [
    (["--workers", "0"], "truth build workers=0 must be >= 1"),
    (["--archs", "sample:0"], "archs 'sample:0': N in sample:N must be a whole number >= 1"),
    (["--out", "{file}"], "truth build out=.*afile: .*afile is a file, not a directory"),
    (["--out", "{file}/sub"], "truth build out=.*afile/sub: .*afile is a file, not a directory"),
])
def test_bad_build_arguments_are_refused_before_any_work(args, match, tmp_path, capsys):
    """Issue 25 #7 (--workers 0 and --archs sample:0 accepted, exit 0) and #4 (--out a file: a traceback)."""
    (tmp_path / "afile").write_text("x")
    opts = {"--archs": "sample:2", "--out": str(tmp_path / "out"), "--workers": "1"}
    for k, v in zip(args[::2], args[1::2]):
        opts[k] = v.format(file=tmp_path / "afile")
    cmd = ["truth", "build", *[x for kv in opts.items() for x in kv], "--no-progress", "--set", *as_set(TINY)]
    assert main(cmd) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert not (tmp_path / "out").exists() and (tmp_path / "afile").read_text() == "x"


def _descendants(pid):
    """Live descendants of pid (from /proc/<pid>/task/*/children)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for c in kids:
            out += [c, *_descendants(c)]
    return out


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_build_with_two_workers_leaves_nothing_running(sig, tmp_path, archs):
    """Issue 25 #10: pool workers and the resource_tracker outlived a killed build; SIGTERM wrote BrokenPipe
    tracebacks and a leaked-semaphore warning. Now: SIGTERM exits 143 quietly, kill -9 takes the workers along,
    and finished rows are kept whole."""
    (tmp_path / "archs.txt").write_text("\n".join(archs) + "\n")
    out = tmp_path / "run"
    cmd = ["truth", "build", "--archs", str(tmp_path / "archs.txt"), "--seeds", "0", "1", "--out", str(out),
           "--no-progress", "--workers", "2", "--set", *as_set(SLOW)]
    proc = subprocess.Popen([sys.executable, "-m", "closekit.cli", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    results, deadline = out / "results.csv", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:       # header + first row
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    kids = _descendants(proc.pid)
    assert len(kids) >= 2                                 # the workers (and the resource tracker)
    os.kill(proc.pid, sig)
    rc, err = proc.wait(timeout=60), proc.stderr.read().decode()
    deadline = time.time() + 30
    while time.time() < deadline and any(map(_alive, kids)):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "workers outlived the build"
    if sig == signal.SIGTERM:
        assert rc == 143 and "Traceback" not in err and "BrokenPipe" not in err and "leaked" not in err, err
    raw = results.read_bytes()
    assert raw.endswith(b"\n") and len(read_results(results)) >= 1
