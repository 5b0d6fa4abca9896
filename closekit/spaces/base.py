"""The space protocol and the supernet protocol (CLOSE §3: sharing as routing, whatever the search space).
Everything outside ``closekit/spaces/`` (trainer, scoring, ground truth, views, widgets, notebooks) uses only these.

Space (subclass ``Space``, register it in ``closekit.spaces.SPACES``): its abstract methods (noted there), and
  name, modules, supernet_cls       registry key (in checkpoints and ground truths); the closekit modules its
                                    results depend on (``provenance.code_version`` hashes them); its Supernet
  canonical(arch), canonical_str    the isomorphism-class representative: its string keys every table and cache
  sample_list(n, seed)              n distinct canonical architectures, seeded
  enumerations, enumerate(kind)     names of finite lists ("all", "valid") and the lists; () when there are none
  extremes() -> (largest, smallest) optional: for ``sampler: sandwich`` (spaces whose supernet reads that key)
  slots(arch) -> DataFrame          the routed positions: cell (cell type / stage), slot (index within the cell
                                    type's routing), label (the same for every arch), op, live, param (live and
                                    parameterised: uses and trains its block's weights)
  choices(arch), edit(arch, i, v)   optional (widgets): the editable decisions [(label, options, value)]; the arch
                                    with decision i set to v (ValueError when that is no arch)
  draw(arch, table, ax)             the arch, each slot coloured by its block (``table``: slots + block, p columns);
                                    it imports matplotlib itself
  notable(), params_file(kind)      {label: arch string} worth a look; its params file of a kind under params/

Supernet (subclass ``Supernet`` next to an nn.Module): it builds its cells with the banks of ``plan(cfg, own)``,
then calls ``_share``; all of its sharing is then one ``closekit.sharing.Sharing`` (banks + router + curriculum):
  forward(x, arch, routing=None)    logits; routing None: ``route(arch)``
  route(arch, sample, generator)    {cell type: one-hot [slots, level]} (straight-through when the router learns)
  route_probs(arch)                 {cell type: [slots, level]} probability of each block under training's sample
  cell_types, close_router, keys    routing keys in slot-table order; the router of ``router: auto``; the config
                                    keys only this space reads
  own_blocks(arch)                  {cell type: the own (vanilla) block of each slot}; routers read the slots here
  epoch_start / after_backward / router_parameters / level / curriculum   the Sharing's, for the trainer
  net_args                          the constructor's data arguments (in_channels, num_classes) for checkpoints
A space supports the routers whose ``needs`` it offers (``routers()``, see closekit.sharing).
"""
import abc
import dataclasses

import torch

from .. import gates, sharing  # noqa: F401  (gates registers the GATE router)


class Space(abc.ABC):
    """Base of every search space: the protocol above, with the generic parts implemented."""
    name = None
    enumerations = ()
    modules = ()                 # closekit modules (dotted, below closekit) its results depend on; see provenance

    @abc.abstractmethod
    def parse(self, text): ...                                          # every string format users have -> arch

    @abc.abstractmethod
    def to_str(self, arch): ...                                         # arch -> the official string

    @abc.abstractmethod
    def coerce(self, x): ...                                            # str or arch -> arch (ValueError in one line)

    @abc.abstractmethod
    def canonical(self, arch): ...                                      # the isomorphism-class representative

    @abc.abstractmethod
    def sample(self, generator): ...                                    # one arch, as the reference samples in training

    @abc.abstractmethod
    def mutate(self, arch, generator): ...                              # one random neighbour (search)

    @abc.abstractmethod
    def slots(self, arch): ...                                          # the routed positions (above)

    @abc.abstractmethod
    def standalone(self, arch, recipe, in_channels, num_classes): ...   # one arch trained alone (mini benchmark)

    def supernet(self, cfg, in_channels, num_classes):
        """The space's supernet (``supernet_cls``) for ``cfg``."""
        return self.supernet_cls(cfg, in_channels, num_classes)

    def canonical_str(self, arch):
        """Official string of the class representative of ``arch``."""
        return self.to_str(self.canonical(arch))

    def sample_list(self, n, seed):
        """n distinct canonical architectures drawn with ``sample`` from a seeded generator."""
        gen, seen = torch.Generator().manual_seed(seed), {}
        for _ in range(100 * n + 100):
            if len(seen) == n:
                break
            a = self.canonical(self.sample(gen))
            seen.setdefault(self.to_str(a), a)
        if len(seen) < n:
            raise ValueError(f"sample_list: found only {len(seen)} distinct {self.name} architectures, asked for {n}")
        return list(seen.values())

    def enumerate(self, kind):
        """A finite list of architectures by name (see ``enumerations``)."""
        raise ValueError(f"space {self.name} has no finite enumeration {kind!r}")

    def notable(self):
        return {}

    def params_file(self, kind):
        """``<name>/<kind>.yaml`` under params/ (a space may keep its files elsewhere)."""
        return f"{self.name}/{kind}.yaml"

    def draw(self, arch, table, ax=None, title=None):
        raise NotImplementedError(f"space {self.name} has no drawing")


class Supernet:
    """Mixin of the supernet protocol for an nn.Module subclass: everything about sharing is ``self.sharing``."""
    cell_types, close_router, keys = ("cell",), "own", ()

    @classmethod
    def routers(cls):
        """The names of the routers this supernet supports."""
        return [name for name, r in sharing.ROUTERS.items() if all(hasattr(cls, n) for n in r.needs)]

    @classmethod
    def applies(cls):
        """The config keys this space reads: its own, the bank's (vanilla ignores them) and its routers'."""
        return {*cls.keys, *sharing.CLOSE_KEYS, *(k for r in cls.routers() for k in sharing.ROUTERS[r].keys)}

    @classmethod
    def plan(cls, cfg, own):
        """(router name, K blocks per bank, placeholders?) for ``cfg``, refusing keys before anything is built."""
        if cfg.supernet == "vanilla" and cfg.router not in ("auto", "own"):
            raise ValueError(f"config router={cfg.router!r} does not apply to supernet: vanilla (every slot has its "
                             "own block); set router: auto or supernet: close")
        name = "own" if cfg.supernet == "vanilla" else cfg.router
        name = cls.close_router if name == "auto" else name
        if cfg.supernet != "vanilla" and name == "own":
            raise ValueError("config router='own' is the vanilla supernet's; set supernet: vanilla, or another router "
                             f"({', '.join(r for r in cls.routers() if r != 'own')})")
        if name not in cls.routers():
            raise ValueError(f"config router={name!r} does not apply to {cfg.space}; use one of "
                             f"{', '.join(r for r in cls.routers() if r != 'own')} (or supernet: vanilla)")
        defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
        for key in sorted(owned_keys() - cls.applies()):
            if getattr(cfg, key) != defaults[key]:
                raise ValueError(f"config {key}={getattr(cfg, key)!r} does not apply to {cfg.space} (no router or "
                                 f"part of it reads it); remove it (default {defaults[key]!r})")
        return name, own if cfg.supernet == "vanilla" else cfg.num_blocks, sharing.ROUTERS[name].placeholders

    def _share(self, cfg, plan, banks, in_channels, num_classes):
        """Set up ``self.sharing`` over ``banks`` (call once the cells exist)."""
        name, K, _ = plan
        self.net_args = {"in_channels": in_channels, "num_classes": num_classes}
        self.sharing = sharing.Sharing(cfg, self, banks, K, name)

    # the Sharing's, for the trainer, the views and the cells
    @property
    def router(self):
        return self.sharing.router

    @property
    def level(self):
        return self.sharing.level

    @property
    def num_blocks(self):
        return self.sharing.num_blocks

    @property
    def curriculum(self):
        return self.sharing.curriculum

    @property
    def touched(self):
        return self.sharing.touched

    def active_level(self):
        return self.sharing.active_level()

    def epoch_start(self, epoch, generator=None):
        return self.sharing.epoch_start(epoch, generator)

    def after_backward(self):
        self.sharing.after_backward()

    def router_parameters(self):
        return self.sharing.router.parameters()

    def route(self, arch, sample=True, generator=None):
        """{cell type: routing [slots, level]} for one architecture (one-hot forward value)."""
        return self.router.route(self, self.coerce(arch), self.active_level(), sample, generator)

    def route_probs(self, arch):
        """{cell type: [slots, level]}: each block's probability under training's sample (one-hot when fixed)."""
        return self.router.probs(self, self.coerce(arch), self.active_level())

    def gate_logits(self, arch):
        """{cell type: [slots, K]}: the GATE's logits for ``arch`` over all K blocks, whatever the level."""
        if not hasattr(self.router, "logits"):
            raise ValueError(f"router {type(self.router).__name__} has no GATE logits (supernet: close with router: "
                             "gate has)")
        return self.router.by_cell(self, self.router.logits(self.gate_input(self.coerce(arch))))


def owned_keys():
    """Every config key that some router or space reads and others refuse."""
    from . import SPACES, get
    keys = {k for r in sharing.ROUTERS.values() for k in r.keys} | set(sharing.CLOSE_KEYS)
    return keys | {k for name in SPACES for k in get(name).supernet_cls.keys}
