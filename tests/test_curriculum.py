"""The curriculum: schedule -> level, level ends, WIT parents, and events applied once by the supernet."""
import torch

from closekit.curriculum import Curriculum
from conftest import tiny_cfg


def test_level_and_level_end():
    c = Curriculum((1, 201, 401, 601, 801))
    assert [c.level(e) for e in (0, 1, 200, 201, 801, 1000)] == [0, 1, 1, 2, 5, 5]
    assert [e for e in range(1, 1001) if c.level_end(e)] == [200, 400, 600, 800]
    fixed = Curriculum(fixed=6)
    assert fixed.level(1) == fixed.level(1000) == 6 and not any(fixed.level_end(e) for e in range(1, 50))


def test_wit_parent_prev_or_random_earlier_block():
    g = torch.Generator().manual_seed(0)
    assert Curriculum(wit_from="prev").parent(5) == 3 and Curriculum().parent(1) is None
    assert {Curriculum(wit_from="random").parent(5, g) for _ in range(50)} == {0, 1, 2, 3}


def test_due_lists_every_level_change_up_to_the_epoch():
    c = Curriculum((1, 1, 3))
    assert c.due(0, 1) == [(1, None), (2, 0)] and c.due(2, 2) == [] and c.due(2, 5) == [(3, 1)]


def test_supernet_applies_each_event_once(space):
    net = space.supernet(tiny_cfg(cl_schedule=(1, 2, 3)), 3, 10)
    logs = [net.epoch_start(e).log for e in (1, 1, 2, 2, 3, 9)]
    assert [len(x) for x in logs] == [1, 0, 1, 0, 1, 0] and int(net.level) == 3
    assert logs[2] == ["epoch 2: curriculum level 2 (WIT from block 0)"]
