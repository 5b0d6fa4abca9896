"""closekit: one-shot NAS with curriculum learning on the sharing extent (CLOSE, Zhou et al., ECCV 2022)."""
from . import data, groundtruth, spaces
from .config import RunConfig
from .evaluate import arch_list, evaluate
from .metrics import compare, rank_metrics
from .record import read_results, record
from .run import run
from .train import Trainer, build, train

__version__ = "0.1.0"
__all__ = ["RunConfig", "Trainer", "arch_list", "build", "compare", "data", "evaluate", "groundtruth", "rank_metrics",
           "read_results", "record", "run", "spaces", "train"]
