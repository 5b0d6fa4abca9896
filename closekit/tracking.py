"""Live tracking (shell): training scalars to TensorBoard as the run goes (config key ``tensorboard``).

``tensorboard: true`` writes to <run dir>/tensorboard; ``tensorboard: DIR`` to DIR/<run name>, so a batch of runs
given one DIR lands side by side in ``tensorboard --logdir DIR``. Scalars: every number of the history row (loss,
accuracy, learning rate, curriculum level, probe Kendall when ``eval_every`` probes) and, when the run's probe keeps
block usage, each block's share of the routed slots at every level end. Needs ``pip install closekit[tracking]``.
"""
import os
from pathlib import Path

SUBDIR = "tensorboard"                     # tensorboard: true -> <run dir>/tensorboard
TAGS = {"train_loss": "epoch/train_loss", "train_acc": "epoch/train_accuracy", "lr": "epoch/learning_rate",
        "level": "epoch/curriculum_level", "probe_kendall": "epoch/probe_kendall",
        "probe_acc_mean": "epoch/probe_accuracy_mean"}   # history column -> tag; other numbers go to epoch/<column>
USAGE_TAG = "sharing/block{}"              # a block's share of the probe's routed slots at each level end


def log_dir(setting, out_dir):
    """Where a run's event files go: None (off), <out_dir>/tensorboard (true) or DIR/<run name> (a path). The run
    name is the batch job directory's when the run is a batch job (unique per job), else the run directory's."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return Path(out_dir) / SUBDIR
    name = Path(os.environ.get("CLOSEKIT_RECORD_DIR") or out_dir).resolve().name
    return Path(setting).expanduser() / name


class TensorBoard:
    """``on_epoch_end`` callback writing each finished history row (and the probe's block usage) as scalars.

    The trainer completes an epoch's row after the callbacks return and logs it once appended, so the writer hooks
    ``trainer.log`` and writes every row not yet written there: each row lands whole, right after its epoch.
    """

    def __init__(self, directory, probe=None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise RuntimeError(f"config tensorboard={str(directory)!r} needs the tensorboard package ({e}); "
                               "pip install 'closekit[tracking]' or set tensorboard: false") from None
        self.writer, self.probe = SummaryWriter(str(directory)), probe
        self.written, self.usages_written, self.hooked = set(), 0, None

    def __call__(self, trainer, epoch):
        if self.hooked is not trainer:
            log = trainer.log

            def log_then_write(line):
                log(line)
                self.flush(trainer)
            trainer.log, self.hooked = log_then_write, trainer
        return {}

    def flush(self, trainer):
        """Write the history rows not written yet and the probe's new block-usage tables."""
        for row in trainer.history:
            if row["epoch"] in self.written:
                continue
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(TAGS.get(key, f"epoch/{key}"), value, row["epoch"])
            self.written.add(row["epoch"])
        usages = self.probe.usages if self.probe is not None else []
        for table in usages[self.usages_written:]:
            counts = table.groupby("block")["count"].sum()
            for block, share in (counts / counts.sum()).items():
                self.writer.add_scalar(USAGE_TAG.format(int(block)), float(share), trainer.epoch)
        self.usages_written = len(usages)
        self.writer.flush()


def callbacks(cfg, out_dir, probe=None):
    """The run's tracking callbacks: [] when ``cfg.tensorboard`` is off, else one ``TensorBoard`` (block usage for
    shared banks only: vanilla's blocks are its edges, each used by every architecture)."""
    directory = log_dir(cfg.tensorboard, out_dir)
    return [TensorBoard(directory, probe if cfg.supernet != "vanilla" else None)] if directory else []
