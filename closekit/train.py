"""The one training loop for every supernet (CLOSE §3.4-3.5, reference setup of §4): per step the architectures
the ``sampler`` key names (uniform: one sampled architecture, the reference; sandwich: also the space's largest and
smallest, gradients summed), SGD + momentum + weight decay + clipping, ReduceLROnPlateau on the epoch mean training
loss, the learning-rate restart (SRT), curriculum events at epoch start, atomic checkpoints and exact resume. It
knows a supernet only through the supernet protocol (closekit/spaces/base.py).
"""
import math
import os
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from . import data as datalib
from . import spaces
from . import progress
from .checkpoint import CKPT, SNAPSHOTS, atomic_save, check_training_keys, read_checkpoint, snapshot
from .config import resolve_device


def build(cfg):
    """Space, data and a fresh supernet for ``cfg`` (seeded, on the configured device)."""
    if cfg.deterministic:     # CPU kernels are deterministic already; CUDA needs this for exact resume
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(cfg.seed)
    space = spaces.get(cfg.space)
    data = datalib.load(cfg.dataset, **cfg.data_kwargs())
    net = space.supernet(cfg, data.in_channels, data.num_classes).to(resolve_device(cfg.device))
    return space, data, net


def make_optimizer(params, cfg, gate=()):
    """SGD + plateau scheduler (fresh at start and SRT); params in ``gate`` get gate_lr_scale, gate_weight_decay."""
    ids, params = {id(p) for p in gate}, list(params)
    groups = [{"params": [p for p in params if id(p) not in ids]}]
    if any(id(p) in ids for p in params):
        wd = cfg.weight_decay if cfg.gate_weight_decay is None else cfg.gate_weight_decay
        groups.append({"params": [p for p in params if id(p) in ids], "lr": cfg.lr * cfg.gate_lr_scale,
                       "weight_decay": wd})
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    return opt, sched


class Trainer:
    """Holds the training state (net, optimizer, scheduler, RNGs, history) so it can be saved and resumed."""

    def __init__(self, net, data, cfg, space=None, out_dir=None, log=print):
        self.net, self.data, self.cfg, self.log = net, data, cfg, log
        self.space = space or spaces.get(cfg.space)
        self.device = next(net.parameters()).device
        self.out_dir = Path(out_dir) if out_dir else None
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.arch_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.wit_gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.opt, self.sched = make_optimizer(net.parameters(), cfg, net.router_parameters())
        self.epoch, self.history = 0, []

    # ---- one step, one epoch ----
    def step(self, x, y, arch=None):
        """One SGD step on a sampled arch (sandwich: the largest and smallest too); its (loss, logits) detached."""
        cfg, net = self.cfg, self.net
        arch = self.space.sample(self.arch_gen) if arch is None else arch
        self.opt.zero_grad(set_to_none=not cfg.keep_zero_grads)
        if cfg.sampler == "sandwich":           # the largest and the smallest beside arch, gradients summed
            for extreme in self.space.extremes():
                F.cross_entropy(net(x, extreme), y).backward()
        logits = net(x, arch)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        net.after_backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        self.opt.step()
        return loss.detach(), logits.detach()

    def epoch_start(self, epoch):
        """Curriculum events, then SRT, then the plateau step on the previous epoch's loss (reference order)."""
        cfg, net = self.cfg, self.net
        events = net.epoch_start(epoch, self.wit_gen)
        for p in events.reset:
            self.opt.state.pop(p, None)                            # re-initialised: forget old momentum
        for line in events.log:
            self.log(line)
        if epoch in cfg.srt_epochs:
            self.opt, self.sched = make_optimizer(net.parameters(), cfg, net.router_parameters())
            self.log(f"epoch {epoch}: SRT, learning rate restarts at {cfg.lr}")
        if self.history:
            self.sched.step(self.history[-1]["train_loss"])

    def run_epoch(self, epoch):
        """All steps of one epoch; returns its history row."""
        cfg, net = self.cfg, self.net
        net.train()
        t0, loss_sum, correct, steps, seen = time.time(), 0.0, 0, 0, 0
        batches = datalib.batches(self.data.train, cfg.batch_size, shuffle=True, generator=self.data_gen,
                                  augment=self.data.augment, device=self.device)
        for x, y in progress.bar(batches, math.ceil(len(self.data.train) / cfg.batch_size), f"epoch {epoch}"):
            loss, logits = self.step(x, y)
            loss_sum = loss_sum + loss                          # kept on the device: no sync per step
            correct = correct + (logits.argmax(1) == y).sum()
            steps, seen = steps + 1, seen + len(y)
        return {"epoch": epoch, "train_loss": float(loss_sum) / steps, "train_acc": int(correct) / seen,
                "lr": self.opt.param_groups[0]["lr"], "level": int(net.level), "seconds": time.time() - t0}

    def fit(self, epochs=None, on_epoch_end=None):
        """Train up to ``epochs`` (default cfg.epochs), checkpointing; returns the history DataFrame."""
        last = epochs or self.cfg.epochs
        while self.epoch < last:
            e = self.epoch + 1
            self.epoch_start(e)
            row = self.run_epoch(e)
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(f"training loss became {row['train_loss']} at epoch {e}; "
                                         "lower lr or set grad_clip")
            if on_epoch_end:
                row.update(on_epoch_end(self, e) or {})
            self.history.append(row)
            self.epoch = e
            progress.report("train", e, last, loss=round(row["train_loss"], 4))
            self.log(f"epoch {e:4d}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}  "
                     f"lr {row['lr']:.4g}  level {row['level']}  {row['seconds']:.1f}s")
            if self.out_dir and (e % self.cfg.save_every == 0 or e == last):
                self.save()
        return pd.DataFrame(self.history)

    # ---- checkpoints ----
    def state_dict(self):
        # the optimizer's params per group: model names, or saved tensors where the model lost them (aw_nas_compat)
        names = {id(p): n for n, p in self.net.named_parameters()}
        layout = [[names.get(id(p)) or p.detach().cpu() for p in g["params"]] for g in self.opt.param_groups]
        return {**snapshot(self), "history": self.history, "opt_layout": layout, "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "zero_grads": [n for n, p in self.net.named_parameters() if p.grad is not None],
                "rng": {"torch": torch.get_rng_state(), "data": self.data_gen.get_state(),
                        "arch": self.arch_gen.get_state(), "wit": self.wit_gen.get_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def save(self, path=None):
        """Atomic checkpoint: write to a temporary file, then rename over the old one."""
        return atomic_save(self.state_dict(), path or self.out_dir / CKPT)

    def load(self, path=None):
        """Restore everything saved by ``save``; the epoch loop then continues where it stopped."""
        path = Path(path or self.out_dir / CKPT)
        state = read_checkpoint(path)
        check_training_keys(state["config"], self.cfg, path)
        self.net.load_state_dict(state["model"])
        params = dict(self.net.named_parameters())
        layout = state["opt_layout"]
        layout = layout if layout and isinstance(layout[0], list) else [layout]     # checkpoints before groups
        groups = [[params[n] if isinstance(n, str) else torch.nn.Parameter(n.to(self.device)) for n in g]
                  for g in layout]
        gate = groups[1] if len(groups) > 1 else ()
        self.opt, self.sched = make_optimizer([p for g in groups for p in g], self.cfg, gate)
        self.opt.load_state_dict(state["optimizer"])
        for n in state.get("zero_grads", ()) if self.cfg.keep_zero_grads else ():
            params[n].grad = torch.zeros_like(params[n])                   # keep_zero_grads: still updated
        self.sched.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.data_gen.set_state(rng["data"])
        self.arch_gen.set_state(rng["arch"])
        self.wit_gen.set_state(rng["wit"])
        self.epoch, self.history = state["epoch"], state["history"]
        return self


def train(net, data, cfg, out_dir=None, resume=True, log=print, on_epoch_end=None):
    """Train ``net`` per ``cfg``; resumes from ``out_dir/checkpoint.pt`` when present. Returns (trainer, history)."""
    trainer = Trainer(net, data, cfg, out_dir=out_dir, log=log)
    if resume and out_dir and (Path(out_dir) / CKPT).exists():
        trainer.load()
        log(f"resumed from {Path(out_dir) / CKPT} at epoch {trainer.epoch}")
    return trainer, trainer.fit(on_epoch_end=on_epoch_end)


def snapshots(out_dir=None, every=0):
    """``on_epoch_end``: the net at each level's last epoch, the end and every ``every`` epochs -> snapshots/."""
    def save(trainer, epoch):
        out = out_dir or trainer.out_dir
        if out is None:
            raise ValueError("snapshots need an out_dir: pass one or train with out_dir set")
        if trainer.net.curriculum.level_end(epoch) or epoch >= trainer.cfg.epochs or (every and epoch % every == 0):
            atomic_save({**snapshot(trainer), "epoch": epoch}, Path(out) / SNAPSHOTS / f"epoch-{epoch:04d}.pt")
    return save


def chain(*callbacks):
    """One ``on_epoch_end`` callback calling ``callbacks`` in order; their history rows merged."""
    def call(trainer, epoch):
        row = {}
        for cb in callbacks:
            row.update(cb(trainer, epoch) or {})
        return row
    return call
