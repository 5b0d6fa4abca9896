"""The curriculum on the sharing extent (CLOSE §3.4): block k (0-based) becomes active at epoch ``schedule[k]``, so
the level of a 1-based epoch is the number of entries <= epoch; a new block is initialised by WIT (+= a parent
block: the previous one or a random earlier one). A fixed level (vanilla, one block) never grows.
"""
from typing import NamedTuple

import torch


class Events(NamedTuple):
    """What an epoch start did: log lines, and the parameters whose optimizer state must be forgotten."""
    log: list
    reset: list


class Curriculum:
    """Schedule -> level; ``fixed`` instead of a schedule: that many blocks, always (vanilla)."""

    def __init__(self, schedule=(), wit_from="prev", fixed=None):
        self.schedule, self.wit_from, self.fixed = tuple(schedule), wit_from, fixed

    def level(self, epoch):
        """Active blocks during a 1-based epoch (0 before the first scheduled one)."""
        return self.fixed if self.fixed is not None else sum(e <= epoch for e in self.schedule)

    def level_end(self, epoch):
        """True when ``epoch`` is the last epoch of its level (a level change comes next)."""
        return self.level(epoch + 1) > self.level(epoch)

    def parent(self, new_level, generator=None):
        """WIT parent of block ``new_level - 1``: the previous block, or a random earlier one; None for block 0."""
        k = new_level - 1
        if k == 0:
            return None
        return k - 1 if self.wit_from == "prev" else int(torch.randint(k, (1,), generator=generator))

    def due(self, level, epoch, generator=None):
        """(new level, WIT parent) for every level change due at the start of ``epoch``, from ``level``."""
        return [(new, self.parent(new, generator)) for new in range(level + 1, self.level(epoch) + 1)]
