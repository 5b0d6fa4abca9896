"""Conformance of every registered search space to the space and supernet protocols (closekit/spaces/base.py).

Each space runs through the same checks on its own smoke params (params/ + ``space.params_file("smoke")``) with synthetic data:
strings, canonical forms, sampling, mutation, slots vs routing, vanilla and CLOSE supernets at every level, the
curriculum applied once, exact resume across a curriculum event, deterministic scoring, stand-alone training.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from closekit import RunConfig, Trainer, build, evaluate, routing, spaces
from closekit.checkpoint import CKPT
from closekit.groundtruth.minibench import Recipe
from conftest import batch

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(spaces.SPACES)
SLOT_COLUMNS = ["cell", "slot", "label", "op", "live", "param"]


def smoke(name, **kw):
    """The space's smoke config on synthetic data, scored on a few sampled archs, no ground truth."""
    over = dict(dataset="synthetic", image_size=8, train_limit=None, device="cpu", truth=None, archs="sample:4",
                eval_max_batches=1, eval_batch_size=64, batch_size=64, save_every=1)
    return RunConfig.from_yaml(ROOT / "params" / spaces.get(name).params_file("smoke"), **{**over, **kw})


@pytest.fixture(params=NAMES)
def space(request):
    return spaces.get(request.param)


def test_registry_names_match(space):
    assert spaces.get(space.name) is space and isinstance(space, spaces.base.Space)


def test_strings_round_trip_and_canonical_is_stable(space):
    for a in space.sample_list(20, 0):
        s = space.to_str(a)
        assert space.to_str(space.parse(s)) == s and space.coerce(s) == space.coerce(a)
        c = space.canonical_str(a)
        assert space.canonical_str(c) == c == space.canonical_str(space.parse(c))
    with pytest.raises(ValueError):
        space.parse("not an architecture")


def test_samples_are_valid_distinct_and_seeded(space):
    a, b = space.sample_list(30, 7), space.sample_list(30, 7)
    assert [space.to_str(x) for x in a] == [space.to_str(x) for x in b]
    assert len({space.canonical_str(x) for x in a}) == 30 and all(space.canonical_str(x) == space.to_str(x) for x in a)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [space.to_str(space.sample(g1)) for _ in range(5)] == [space.to_str(space.sample(g2)) for _ in range(5)]
    for kind in space.enumerations:
        assert len(space.enumerate(kind)) > 0


def test_mutate_gives_another_canonical_arch(space):
    g = torch.Generator().manual_seed(0)
    for a in space.sample_list(10, 1):
        m = space.mutate(a, g)
        assert space.canonical_str(m) == space.to_str(m) != space.canonical_str(a)


@pytest.mark.parametrize("supernet", ["vanilla", "close"])
def test_supernet_forward_backward_and_slots_at_every_level(space, supernet):
    cfg = smoke(space.name, supernet=supernet)
    _, data, net = build(cfg)
    tr = Trainer(net, data, cfg, space=space, log=lambda *_: None)
    levels = sorted(set(cfg.cl_schedule)) if supernet == "close" else [1]
    x, y = batch(n=16, size=8)
    for epoch in levels:
        tr.epoch_start(epoch)
        loss, logits = tr.step(x, y)
        assert torch.isfinite(loss) and logits.shape == (16, data.num_classes)
        a = space.sample(tr.arch_gen)
        r, p = net.route(a, sample=False), net.route_probs(a)
        slots = space.slots(a)
        assert list(slots.columns) == SLOT_COLUMNS and tuple(r) == tuple(net.cell_types) == tuple(p)
        level = net.active_level()
        for cell in net.cell_types:
            rows = slots[slots["cell"] == cell]
            assert r[cell].shape == p[cell].shape == (len(rows), level) and rows["slot"].tolist() == list(range(len(rows)))
            assert torch.equal(r[cell].sum(-1), torch.ones(len(rows))) and torch.allclose(p[cell].sum(-1), torch.ones(len(rows)))
        assert (slots["param"] <= slots["live"]).all()
        assert list(slots["label"]) == list(space.slots(space.sample(tr.arch_gen))["label"])   # positions fixed
    if supernet == "close":
        assert net.active_level() == len(cfg.cl_schedule)


def test_curriculum_events_apply_once(space):
    cfg = smoke(space.name)
    _, data, net = build(cfg)
    tr = Trainer(net, data, cfg, space=space, log=lambda *_: None)
    seen = []
    tr.log = seen.append
    for e in (1, 1, 2, 2):
        tr.epoch_start(e)
    assert int(net.level) == net.curriculum.level(2)
    assert sum("curriculum level" in line for line in seen) == net.curriculum.level(2)


def test_exact_resume_across_a_curriculum_event(space, tmp_path):
    cfg = smoke(space.name)
    event = next(e for e in range(2, cfg.epochs + 1) if cfg.cl_schedule.count(e))        # a level change after 1

    def trainer(out):
        _, data, net = build(cfg)
        return Trainer(net, data, cfg, space=space, out_dir=out, log=lambda *_: None)
    straight = trainer(tmp_path / "a")
    straight.fit()
    first = trainer(tmp_path / "b")
    first.fit(event - 1)
    first.save()
    resumed = trainer(tmp_path / "b").load()
    resumed.fit()
    for (n, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), n
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    assert (tmp_path / "b" / CKPT).is_file()


def test_scoring_is_deterministic_and_routing_views_agree(space):
    cfg = smoke(space.name)
    _, data, net = build(cfg)
    Trainer(net, data, cfg, space=space, log=lambda *_: None).fit(2)
    archs = space.sample_list(4, 0)
    kw = dict(eval_batch_size=64, eval_max_batches=1, progress=False)
    a, b = evaluate(net, space, archs, data, **kw), evaluate(net, space, archs, data, **kw)
    assert a.equals(b) and a["arch"].tolist() == [space.to_str(x) for x in archs]
    r = routing.route(net, space, archs)
    assert r.probs.shape[:2] == r.chosen.shape == (4, len(space.slots(archs[0]))) == (4, len(r.labels))
    table = routing.arch_table(r, space, 0)
    fig = space.draw(archs[0], table, title="t")
    assert fig.axes
    plt.close(fig)


def test_standalone_trains_a_step(space):
    x, y = batch(n=16, size=8)
    net = space.standalone(space.sample_list(1, 0)[0], Recipe(space=space.name), 3, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(p, q) for p, q in zip(net.parameters(), before))


def test_choices_show_the_arch_and_edit_changes_one_decision(space):
    """The explorer's dropdowns: every registered space can edit (the protocol keeps it optional for others)."""
    values = lambda a: [v for _, _, v in space.choices(a)]                   # noqa: E731
    labels = None
    for a in space.sample_list(4, 2):
        dec = space.choices(a)
        labels = labels or [label for label, _, _ in dec]
        assert [label for label, _, _ in dec] == labels                      # the same decisions for every arch
        for i, (label, opts, value) in enumerate(dec):
            assert value in opts and space.edit(a, i, value) == space.coerce(a), label
            other = next(o for o in opts if o != value)
            e = space.edit(a, i, other)
            assert values(e) == values(a)[:i] + [other] + values(a)[i + 1:], label
            assert space.coerce(space.to_str(e)) == e
    with pytest.raises(ValueError):
        space.edit(a, 0, "not an option")


def test_notable_archs_belong_to_the_space(space):
    for label, s in space.notable().items():
        assert space.to_str(space.parse(s)) == s, label
