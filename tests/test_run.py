"""closekit.run, the one pipeline: provenance, re-scoring a finished run without retraining, ground-truth checks
before any training, and scoring a ground truth that lists every isomorphic member."""
import json
import os
import stat
import types

import pandas as pd
import pytest
import torch

import closekit
from closekit import groundtruth, run
from closekit.checkpoint import CKPT, atomic_text, locked
from closekit.run import code_version, config_hash
from conftest import tiny_cfg


def quiet(cfg, out, **kw):
    return run(cfg, out, log=lambda *_: None, **kw)


def test_run_writes_provenance_and_rescoring_does_not_retrain(tmp_path):
    cfg = tiny_cfg(epochs=2)
    first = quiet(cfg, tmp_path)
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["config_hash"] == config_hash(cfg) and prov["code_version"] == code_version(cfg.space)
    assert {"config.yaml", CKPT, "history.csv", "scores.csv", "metrics.json"} <= {p.name for p in tmp_path.iterdir()}
    stamp = (tmp_path / CKPT).stat().st_mtime_ns
    # another routing, BN mode, arch list: the same weights are scored again (the old refusal compared every key)
    again = quiet(cfg.replace(eval_routing="gumbel", bn_mode="recalibrate", recal_batches=2, archs="sample:5"), tmp_path)
    assert again.trainer.epoch == 2 and again.history.equals(first.history)
    assert (tmp_path / CKPT).stat().st_mtime_ns == stamp and len(again.scores) == 5
    assert all(torch.equal(a, b) for a, b in zip(first.net.state_dict().values(), again.net.state_dict().values()))
    before = {f: (tmp_path / f).read_bytes() for f in ("config.yaml", "provenance.json", CKPT)}
    with pytest.raises(ValueError, match="trained with other values of lr"):
        quiet(cfg.replace(lr=0.2), tmp_path)
    assert before == {f: (tmp_path / f).read_bytes() for f in before}     # a refused rerun loses nothing


def test_truth_of_another_space_or_dataset_fails_before_training(tmp_path):
    other = types.SimpleNamespace(name="nb301")
    with pytest.raises(ValueError, match="ground truth mini-nb201 holds nb201 architectures, not nb301"):
        groundtruth.load("mini-nb201", other)
    with pytest.raises(ValueError, match="holds embedded accuracies, but the scores come from dataset=synthetic"):
        quiet(tiny_cfg(truth="mini-nb201"), tmp_path)
    assert not (tmp_path / CKPT).exists()


def test_a_truth_of_every_member_is_scored_member_by_member(tmp_path, space):
    """protocol=all tables key rows by each member's own string: each member is scored as itself, once (scoring
    used to canonicalise, so a class was scored |class| times against its representative's accuracy)."""
    cfg = tiny_cfg(epochs=1)
    _, data, net = closekit.build(cfg)
    closekit.train(net, data, cfg, log=lambda *_: None)
    rep = next(a for a in space.valid if len(space.members(a)) >= 3)
    members = [space.to_str(m) for m in space.members(rep)]
    truth = pd.DataFrame({"arch": members, "acc": range(len(members))})
    scores = closekit.evaluate(net, space, list(truth["arch"]), data, eval_batch_size=64, progress=False)
    assert scores["arch"].tolist() == members
    assert closekit.compare(scores, truth)["n"] == len(members)
    with pytest.raises(ValueError, match="duplicate architectures in scores"):
        closekit.compare(pd.concat([scores, scores.iloc[:1]]), truth)


@pytest.mark.parametrize("supernet", ["vanilla", "close"])
def test_probe_scores_do_not_change_training(tmp_path, supernet):
    """eval_every probes score in eval mode between epochs: the trained weights and final scores are those of a run
    without probes (so a probed bench run ranks as the unprobed one)."""
    runs = {}
    for ev in (0, 1):
        cfg = tiny_cfg(supernet=supernet, epochs=3, train_limit=256, eval_every=ev, eval_every_archs=4,
                       archs="sample:6", eval_max_batches=1)
        runs[ev] = quiet(cfg, tmp_path / f"ev{ev}", keep_snapshots=False)
    assert "probe_acc_mean" in runs[1].history and "probe_acc_mean" not in runs[0].history
    a, b = runs[0].net.state_dict(), runs[1].net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].scores["acc"].tolist() == runs[1].scores["acc"].tolist()


def test_a_second_run_on_a_locked_run_directory_is_refused_and_changes_nothing(tmp_path):
    # two closekit train on one out_dir: the second used to rewrite config.yaml and provenance.json, or win outright
    cfg = tiny_cfg(epochs=1)
    quiet(cfg, tmp_path)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()}
    with locked(tmp_path):                                                  # another run is writing there
        with pytest.raises(RuntimeError, match=f"run directory {tmp_path} is in use by another run "
                                               f"\\(pid {os.getpid()}\\); wait for it"):
            quiet(cfg.replace(seed=2), tmp_path, resume=False)
    assert before == {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()}
    assert quiet(cfg, tmp_path).trainer.epoch == 1                          # the lock goes with its holder


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr("closekit.spaces.get", lambda *_: pytest.fail("started work before checking out_dir"))
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is a file; pass a directory path"):
        quiet(tiny_cfg(), tmp_path / "f")
    with pytest.raises(ValueError, match=f"lies under the file {tmp_path / 'f'}; pass a path under a directory"):
        quiet(tiny_cfg(), tmp_path / "f" / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; run as a user to check")
def test_a_read_only_out_dir_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot be written .* is read-only"):
            quiet(tiny_cfg(), tmp_path / "run")
    finally:
        tmp_path.chmod(0o700)


def test_a_truncated_checkpoint_names_the_file_and_the_fix(tmp_path):
    cfg = tiny_cfg(epochs=1)
    quiet(cfg, tmp_path)
    ckpt = tmp_path / CKPT
    ckpt.write_bytes(ckpt.read_bytes()[:ckpt.stat().st_size // 2])         # a disk that filled up mid-write
    with pytest.raises(ValueError, match=f"checkpoint {ckpt} is unreadable .* start over with --no-resume"):
        quiet(cfg, tmp_path)
    assert quiet(cfg, tmp_path, resume=False).trainer.epoch == 1             # the fix it names works


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    # mkstemp's 0600 made every run unreadable to the rest of a group on a shared filesystem
    old = os.umask(umask)
    try:
        atomic_text(tmp_path / "a.yaml", "x: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.yaml").stat().st_mode) == mode
