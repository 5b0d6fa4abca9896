"""Live tracking (shell): training scalars to TensorBoard as the run goes (config key ``tensorboard``: true writes
<run dir>/tensorboard, DIR writes DIR/<run name> so a batch lands side by side). Scalars: every number of the history
row and, when the probe keeps block usage, each block's share at every level end. Needs closekit[tracking].
"""
from pathlib import Path

SUBDIR = "tensorboard"                     # tensorboard: true -> <run dir>/tensorboard
TAGS = {"train_loss": "epoch/train_loss", "train_acc": "epoch/train_accuracy", "lr": "epoch/learning_rate",
        "level": "epoch/curriculum_level", "probe_kendall": "epoch/probe_kendall",
        "probe_acc_mean": "epoch/probe_accuracy_mean"}   # history column -> tag; other numbers go to epoch/<column>
USAGE_TAG = "sharing/block{}"              # a block's share of the probe's routed slots at each level end


def log_dir(setting, out_dir, name=None):
    """Where a run's event files go: None (off), <out_dir>/tensorboard (true) or DIR/<name> (a path; ``name``
    default: the run directory's, a batch job passes its job directory's)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return Path(out_dir) / SUBDIR
    return Path(setting).expanduser() / Path(name or Path(out_dir).resolve().name).name


class TensorBoard:
    """``on_epoch_end`` callback writing each finished history row (and the probe's block usage) as scalars.

    The trainer completes an epoch's row after the callbacks and logs it once appended, so the writer hooks
    ``trainer.log`` and writes the rows not yet written there: each row lands whole, right after its epoch."""

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


def callbacks(cfg, out_dir, probe=None, name=None):
    """[] when ``cfg.tensorboard`` is off, else one ``TensorBoard`` (block usage of shared banks only: vanilla's
    blocks are its edges, each used by every architecture)."""
    directory = log_dir(cfg.tensorboard, out_dir, name)
    return [TensorBoard(directory, probe if cfg.supernet != "vanilla" else None)] if directory else []
