"""The training loop: curriculum events, SRT, plateau scheduler, atomic checkpoints and exact resume."""
from types import SimpleNamespace

import pytest
import torch

from closekit import build, evaluate
from closekit.train import CKPT, Trainer
from conftest import tiny_cfg


def run(cfg, out=None, epochs=None, resume_from=None):
    space, data, net = build(cfg)
    tr = Trainer(net, data, cfg, out_dir=out, log=lambda *_: None)
    if resume_from:
        tr.load(resume_from)
    tr.fit(epochs)
    return space, data, tr


def scores(space, data, tr):
    archs = space.sample_list(6, 0)
    return evaluate(tr.net, space, archs, data, eval_routing="gumbel", eval_seed=123, eval_batch_size=64,
                    progress=False)


@pytest.mark.parametrize("kw", [dict(), dict(aw_nas_compat=True, mlp_growth="only_last"),
                                dict(supernet="vanilla", srt_epochs=()), dict(keep_zero_grads=True),
                                dict(aw_nas_compat=True, gate_lr_scale=10.0, gate_weight_decay=0.0)])
def test_resume_is_exact(tmp_path, kw):
    cfg = tiny_cfg(**kw)
    space, data, straight = run(cfg, tmp_path / "a")
    _, _, first = run(cfg, tmp_path / "b", epochs=2)
    _, _, resumed = run(cfg, tmp_path / "b", resume_from=tmp_path / "b" / CKPT)
    for (n, a), (_, b) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), n
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    assert scores(space, data, straight).equals(scores(space, data, resumed))


def test_loads_checkpoint_with_flat_optimizer_layout(tmp_path):
    """Checkpoints written before the GATE param group (one flat name list) still resume."""
    cfg = tiny_cfg(supernet="vanilla", srt_epochs=())
    space, data, tr = run(cfg, tmp_path, epochs=1)
    state = torch.load(tmp_path / CKPT, weights_only=False)
    state["opt_layout"] = state["opt_layout"][0]
    torch.save(state, tmp_path / "old.pt")
    _, _, net = build(cfg)
    again = Trainer(net, data, cfg, log=lambda *_: None).load(tmp_path / "old.pt")
    assert [len(g["params"]) for g in again.opt.param_groups] == [len(g["params"]) for g in tr.opt.param_groups]
    assert again.opt.state_dict()["state"].keys() == tr.opt.state_dict()["state"].keys()


def test_gate_param_group():
    """The GATE's params form their own SGD group (lr x gate_lr_scale, gate_weight_decay), also after SRT."""
    cfg = tiny_cfg(gate_lr_scale=10.0, gate_weight_decay=0.0, srt_epochs=(2,))
    _, data, net = build(cfg)
    tr = Trainer(net, data, cfg, log=lambda *_: None)
    for _ in range(2):
        main, gate = tr.opt.param_groups
        assert {id(p) for p in gate["params"]} == {id(p) for p in net.router.parameters()} != set()
        assert len(main["params"]) + len(gate["params"]) == len(list(net.parameters()))
        assert (main["lr"], main["weight_decay"]) == (cfg.lr, cfg.weight_decay)
        assert (gate["lr"], gate["weight_decay"]) == (10 * cfg.lr, 0.0)
        tr.fit(2)                                                        # epoch 2: SRT builds a new optimizer
    _, data, vnet = build(tiny_cfg(supernet="vanilla"))
    assert len(Trainer(vnet, data, tiny_cfg(supernet="vanilla"), log=lambda *_: None).opt.param_groups) == 1


@pytest.mark.parametrize("keep", [False, True])
def test_keep_zero_grads_moves_unsampled_params(keep):
    """After an epoch of random archs, an epoch of one fixed arch: its unused ops stay put with set-to-None grads,
    and move (weight decay + momentum on a zero grad, as torch 1.x ran the reference) with keep_zero_grads."""
    cfg = tiny_cfg(supernet="vanilla", srt_epochs=(), keep_zero_grads=keep)
    space, data, net = build(cfg)
    tr = Trainer(net, data, cfg, log=lambda *_: None)
    tr.fit(1)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    fixed = space.sample(torch.Generator().manual_seed(0))
    tr.space = SimpleNamespace(sample=lambda gen: fixed)                  # not the shared space object
    tr.fit(2)
    moved = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    used = {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}   # fixed arch
    once = {n for n, p in net.named_parameters() if p.grad is not None}          # keep: every param ever used
    assert used and used <= moved and len(moved) < len(before)
    assert (moved == once and len(once) > len(used)) if keep else (moved == used == once)


def test_curriculum_events_once_and_srt(tmp_path):
    logs = []
    cfg = tiny_cfg()
    space, data, net = build(cfg)
    tr = Trainer(net, data, cfg, out_dir=tmp_path, log=logs.append)
    tr.fit(2)
    space, data, net2 = build(cfg)
    tr2 = Trainer(net2, data, cfg, out_dir=tmp_path, log=logs.append).load()
    assert int(net2.level) == 2
    tr2.fit()
    events = [m for m in logs if "curriculum" in m or "SRT" in m]
    assert events == ["epoch 1: curriculum level 1", "epoch 2: curriculum level 2 (WIT from block 0)",
                      "epoch 3: curriculum level 3 (WIT from block 1)", "epoch 3: SRT, learning rate restarts at 0.05"]
    assert [r["level"] for r in tr2.history] == [1, 2, 3, 3]


def test_plateau_halves_lr_and_srt_restores_it():
    cfg = tiny_cfg(supernet="vanilla", plateau_patience=0, srt_epochs=(4,))
    _, data, net = build(cfg)
    tr = Trainer(net, data, cfg, log=lambda *_: None)
    tr.epoch_start(1)                       # no scheduler step at epoch 1
    tr.history = [{"train_loss": 1.0}]      # a flat loss: the plateau scheduler halves the lr
    lrs = []
    for e in (2, 3, 4, 5):
        tr.epoch_start(e)
        lrs.append(tr.opt.param_groups[0]["lr"])
    assert lrs == [0.05, 0.025, 0.05, 0.025]   # epoch 4: SRT restores the base lr and a fresh scheduler


def test_checkpoint_is_atomic_and_config_checked(tmp_path):
    cfg = tiny_cfg(epochs=1)
    run(cfg, tmp_path)
    assert (tmp_path / CKPT).exists() and not list(tmp_path.glob("*.tmp"))
    space, data, net = build(cfg.replace(lr=0.1))
    with pytest.raises(ValueError, match="was trained with other values of lr; use a new out_dir"):
        Trainer(net, data, cfg.replace(lr=0.1), out_dir=tmp_path).load()


def test_nan_loss_stops_with_clear_error():
    cfg = tiny_cfg(lr=1e6, grad_clip=None, epochs=3, weight_decay=0.0)
    with pytest.raises(FloatingPointError, match="training loss became"):
        run(cfg)
