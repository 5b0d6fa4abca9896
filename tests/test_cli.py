"""The CLI: smoke params end to end, ground truth joins, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from closekit import groundtruth
from closekit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_params_end_to_end(tmp_path, capsys):
    assert main(["train", str(ROOT / "params/nb201/smoke.yaml"), "--out", str(tmp_path), "--no-resume"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index("{\n"):])                      # the printed metrics dict
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
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
    assert m["n"] == 20 and m["kendall"] > 0.99 and m["p@top50%"] == 1.0 and m["br@5%"] == 1   # tau-b: pred ties


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
    r = subprocess.run([sys.executable, "-m", "closekit.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr
