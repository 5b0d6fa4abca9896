"""The CLI: smoke params end to end, ground truth joins, one-line errors, help without torch, bars on a terminal."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau
import pytest

from closekit import groundtruth
from closekit.cli import main
from closekit.config import reference
from closekit.metrics import headline_text

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_params_end_to_end(tmp_path, capsys):
    assert main(["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", str(tmp_path), "--no-resume"]) == 0
    out = capsys.readouterr().out.splitlines()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert out[-2:] == [headline_text(metrics), f"run directory: {tmp_path}"]      # not a 45-line JSON dump
    assert out[0] == f"closekit train: nb201 close, 3 epochs on embedded -> {tmp_path}"
    assert metrics["n_scored"] == 20 and 0 <= metrics["oneshot_acc_mean"] <= 1
    for f in ("config.yaml", "checkpoint.pt", "history.csv", "scores.csv", "metrics.json"):
        assert (tmp_path / f).exists(), f
    assert len(pd.read_csv(tmp_path / "history.csv")) == 3


def test_ground_truth_csv_joins_and_metrics(tmp_path, space):
    # a ground truth over the same 20 archs the smoke config scores (values: the one-shot scores of a first run,
    # so a second identical run must rank them perfectly -- a real end-to-end check of the join and metrics)
    out1 = tmp_path / "a"
    assert main(["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", str(out1), "--no-resume"]) == 0
    truth = pd.read_csv(out1 / "scores.csv")
    truth["acc"] -= 1e-9 * truth["loss"]                  # one-shot ties broken by loss, as the metrics break them
    truth = truth[["arch", "acc"]]
    truth["arch"] = [space.to_str(a) for a in [space.members(s)[-1] for s in truth["arch"]]]  # other members
    truth.to_csv(tmp_path / "truth.csv", index=False)
    out2 = tmp_path / "b"
    assert main(["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", str(out2), "--no-resume",
                 "--set", f"truth={tmp_path / 'truth.csv'}"]) == 0
    m = json.loads((out2 / "metrics.json").read_text())
    assert m["n"] == 20 and m["p@top50%"] == 1.0 and m["br@5%"] == 1
    joined = pd.read_csv(out2 / "scores.csv").merge(truth.assign(arch=[space.canonical_str(a) for a in truth["arch"]]),
                                                    on="arch", suffixes=("", "_truth"))
    assert len(joined) == 20 and (joined["acc"] == pd.read_csv(out1 / "scores.csv")["acc"].to_numpy()).all()
    assert m["kendall"] == pytest.approx(kendalltau(joined["acc"], joined["acc_truth"]).statistic)   # tau-b: pred ties


def test_ground_truth_errors(tmp_path, space):
    with pytest.raises(FileNotFoundError, match="ground truth 'x.csv' not found"):
        groundtruth.load("x.csv", space)
    f = tmp_path / "t.csv"
    f.write_text("arch,acc\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.5\n")
    with pytest.raises(ValueError, match="line 2 does not belong to space nb201: .*'conv~0'"):
        groundtruth.load(f, space)
    f.write_text("arch,score\n")
    with pytest.raises(ValueError, match="lacks column\\(s\\) acc"):
        groundtruth.load(f, space)


@pytest.mark.parametrize("args, msg", [
    (["train", "nope.yaml"], "params file nope.yaml not found"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "epoch=3"], "unknown config key(s) epoch"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "dataset=fashion-mnist", "data_dir=/nonexistent",
      "truth=null"], "/nonexistent"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "dataset=fashion-mnist"],
     "ground truth mini-nb201 holds embedded accuracies, but the scores come from dataset=fashion-mnist"),
    # bad input a new user tried: each used to end in a traceback
    (["train", "ten.yaml"], "params file ten.yaml: config epochs='ten' must be an int"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "epochs=abc"],
     "with overrides epochs: config epochs='abc' must be an int"),
    (["train", "broken.yaml"], "params file broken.yaml is not valid YAML at line 3, column 5"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "archs=[|foo~0|]"],
     "--set archs=[|foo~0|]: the value is not valid YAML"),
    (["truth", "build", "--archs", "sample:x", "--out", "t"], "archs 'sample:x': N in sample:N must be a whole number"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "train_portion=1"], "train_portion=1.0 must be in (0, 1)"),
    # values outside their domain, a misleading message, a traceback (issue 25 #6-#8)
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "lr=.nan"], "config lr=nan must be a finite number"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "train_limit=0"], "config train_limit=0 must be >= 1"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "image_size=0"], "config image_size=0 must be >= 1"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "dataset=foo"],
     "dataset 'foo' is unknown; set dataset to one of cifar10, embedded, fashion-mnist, synthetic"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "archs=sample:0", "--out", "r"],
     "archs 'sample:0': N in sample:N must be a whole number >= 1"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", "f"], "out_dir (--out) f is a file"),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", "d", "--set", "lr=1.0e+8", "grad_clip=null",
      "truth=null", "archs=sample:2", "train_limit=600"], "closekit: error: training loss became nan at epoch "),
    (["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", "f/run"], "out_dir (--out) f/run lies under the file f"),
    # a key given twice: PyYAML would keep the last one silently
    (["train", "twice.yaml"], "params file twice.yaml is not valid YAML at line 3, column 1: key 'epochs' is given twice"),
    (["batch", str(ROOT / "notebooks/nb201.ipynb"), "twice.yaml", "--out", "b"],
     "params file twice.yaml is not valid YAML at line 3, column 1: key 'epochs' is given twice; fix the file"),
    (["batch", str(ROOT / "notebooks/nb201.ipynb"), "broken.yaml", "--out", "b"],
     "params file broken.yaml is not valid YAML at line 3, column 5"),
])
def test_cli_errors_are_one_line(args, msg, tmp_path):
    (tmp_path / "ten.yaml").write_text('epochs: "ten"\n')
    (tmp_path / "broken.yaml").write_text("epochs: 3\nlr: [0.1\nseed: 1\n")
    (tmp_path / "twice.yaml").write_text("epochs: 3\nlr: 0.1\nepochs: 4\n")
    (tmp_path / "f").write_text("")
    r = subprocess.run([sys.executable, "-m", "closekit.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert not (tmp_path / "r").exists()                                    # refused before anything is written


def test_a_supernet_near_chance_ends_with_a_warning(tmp_path, capsys):
    assert main(["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", str(tmp_path), "--set", "lr=1.0e-6",
                 "truth=null", "archs=sample:2", "train_limit=300", "score=loss"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3].startswith("2 architectures scored") and out[-1] == f"run directory: {tmp_path}"
    assert out[-3].endswith("; ranked by the negated one-shot loss")            # the headline names a non-default score
    assert out[-2].startswith("warning: training ended near chance accuracy")


HEAVY = ("torch", "pandas", "scipy", "matplotlib")
PROBE = """
import sys
from closekit.cli import main
for argv in {argvs}:
    try:
        main(argv)
    except SystemExit:
        pass
print(sorted(m for m in {heavy} if m in sys.modules))
"""


def test_help_and_config_errors_import_nothing_heavy(tmp_path):
    # `import closekit` loaded torch and scipy up front: 4 s for --help, 5-6 s for every config error
    argvs = [["--help"], *([cmd, "--help"] for cmd in ("train", "params", "batch", "search")),
             ["truth", "build", "--help"], ["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "lr=.nan"],
             ["train", str(ROOT / "params/nb201/smoke.yaml"), "--set", "epoch=3"]]
    r = subprocess.run([sys.executable, "-c", PROBE.format(argvs=argvs, heavy=HEAVY)], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "[]", r.stdout + r.stderr
    assert r.stderr.count("closekit: error: ") == 2 and "lr=nan must be a finite number" in r.stderr


def test_package_names_load_lazily_and_stay_functions():
    code = ("import sys, closekit, closekit.evaluate, closekit.run; assert 'torch' in sys.modules; "
            "print(callable(closekit.evaluate), callable(closekit.run), callable(closekit.train), "
            "closekit.RunConfig.__name__, closekit.data.__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["True", "True", "True", "RunConfig", "closekit.data"], r.stderr


def test_train_help_lists_every_config_key_and_set(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--set epochs=5 lr=0.1" in out and "\n  sharing (a vanilla run ignores it):\n" in out
    for group, key, typ, default, doc in reference():
        assert f"    {key} = " in out and f"[{typ}]  {doc}" in out, key
    assert '    lr = 0.05  [float]  SGD learning rate' in out


def test_params_lists_the_shipped_files(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out.splitlines()
    shipped = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("params/**/*.yaml"))
    assert [line.split("  ")[0] for line in out] == shipped and "params/nb201/smoke.yaml" in shipped
    assert all(len(line.split("  ", 1)[1]) > 10 for line in out)                 # each with its header's first line


def test_a_reader_that_stops_early_is_not_an_error(monkeypatch, capsys):
    """`closekit params | head -1`: a closed pipe ends the listing quietly (it printed a Broken pipe error, exit 2)."""
    r, w = os.pipe()
    os.close(r)                                               # the reader is gone: the first write fails
    monkeypatch.setattr(sys, "stdout", os.fdopen(w, "w", buffering=1))
    assert main(["params"]) == 0 and capsys.readouterr().err == ""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a pseudo-terminal")
def test_a_terminal_sees_bars_then_the_headline(tmp_path):
    # on a terminal: 11 s of silence, one line per epoch, then a JSON dump; now bars with rate and time left
    cmd = (f"stty cols 100 rows 40; {sys.executable} -m closekit.cli train {ROOT / 'params/nb201/smoke.yaml'} "
           f"--out {tmp_path / 'run'} --set truth=null archs=sample:6")
    env = {k: v for k, v in os.environ.items() if k != "CLOSEKIT_PROGRESS"}
    r = subprocess.run(["script", "-qec", cmd, str(tmp_path / "typescript")], capture_output=True, text=True,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout
    text = (tmp_path / "typescript").read_text(errors="replace")
    for desc in ("epoch 1", "epoch 3", "scoring"):
        assert re.search(desc + r":\s+\d+%\|.*\| \d+/\d+ \[[0-9:]+<[0-9:?]+, +[0-9.?]+ ?[a-z]+/[a-z]+\]", text), desc
    lines = text.replace("\r", "\n").splitlines()
    assert "6 architectures scored, one-shot accuracy" in text and f"run directory: {tmp_path / 'run'}" in lines
    assert "{" not in text.split("run directory")[0].split("scoring")[-1]                # no JSON dump
