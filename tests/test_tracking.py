"""TensorBoard tracking: the event files a run writes hold its history, read back with TensorBoard's own reader."""
import pandas as pd
import pytest

import closekit
from closekit import tracking

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="the tracking extra (tensorboard) is not installed")

TINY = dict(space="nb201", train_limit=600, image_size=8, channels_init=4, cells_per_stage=1, num_blocks=2,
            cl_schedule=(1, 2), srt_epochs=(), gates_gcn_dims=(16,), mlp_hidden=(16,), epochs=3, batch_size=128,
            archs="sample:12", truth="mini-nb201", eval_every=1, eval_every_archs=8, eval_max_batches=1,
            gate_forward="others_no_grad")


def scalars(directory):
    """{tag: [(step, value)]} of the one run written under ``directory``."""
    acc = event_accumulator.EventAccumulator(str(directory))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_log_dir_settings(tmp_path):
    assert tracking.log_dir(False, tmp_path / "run") is None
    assert tracking.log_dir(True, tmp_path / "run") == tmp_path / "run" / "tensorboard"
    assert tracking.log_dir(str(tmp_path / "tb"), tmp_path / "x" / "run-a") == tmp_path / "tb" / "run-a"
    job = tmp_path / "batch" / "job-1234"                                # a batch job passes its directory: its name
    assert tracking.log_dir(str(tmp_path / "tb"), "runs/nb201-mini-close", job) == tmp_path / "tb" / "job-1234"


def test_config_key_type_checked():
    assert closekit.RunConfig().tensorboard is False
    assert closekit.RunConfig(tensorboard="runs/tb").tensorboard == "runs/tb"
    with pytest.raises(ValueError, match="tensorboard=3 must be a bool or a str"):
        closekit.RunConfig(tensorboard=3)


def test_run_writes_history_and_block_usage(tmp_path):
    logdir = tmp_path / "tb"
    result = {}
    for supernet in ("vanilla", "close"):
        cfg = closekit.RunConfig(**TINY, supernet=supernet, tensorboard=str(logdir))
        result[supernet] = closekit.run(cfg, tmp_path / f"smoke-{supernet}", log=lambda line: None)
    assert sorted(p.name for p in logdir.iterdir()) == ["smoke-close", "smoke-vanilla"]   # side by side
    for supernet, res in result.items():
        got = scalars(logdir / f"smoke-{supernet}")
        hist = res.history
        for column, tag in [("train_loss", "epoch/train_loss"), ("train_acc", "epoch/train_accuracy"),
                            ("lr", "epoch/learning_rate"), ("level", "epoch/curriculum_level"),
                            ("probe_kendall", "epoch/probe_kendall")]:
            assert [s for s, _ in got[tag]] == [1, 2, 3]                     # every epoch, the last one included
            assert [v for _, v in got[tag]] == pytest.approx(hist[column].tolist(), rel=1e-6)
    assert not any(tag.startswith("sharing/") for tag in scalars(logdir / "smoke-vanilla"))
    close = scalars(logdir / "smoke-close")
    assert [v for _, v in close["epoch/curriculum_level"]] == [1, 2, 2]
    usage = pd.DataFrame([(tag, s, v) for tag, pts in close.items() if tag.startswith("sharing/")
                          for s, v in pts], columns=["tag", "step", "share"])
    assert set(usage["tag"]) == {"sharing/block0", "sharing/block1"}
    assert sorted(usage["step"].unique()) == [1, 3]                        # level ends: epoch 1 (L=1), 3 (final)
    assert usage.groupby("step")["share"].sum().tolist() == pytest.approx([1.0] * usage["step"].nunique())


def test_off_by_default_writes_nothing(tmp_path):
    cfg = closekit.RunConfig(**{**TINY, "epochs": 1, "eval_every": 0})
    closekit.run(cfg, tmp_path / "run", log=lambda line: None)
    assert not (tmp_path / "run" / "tensorboard").exists()
