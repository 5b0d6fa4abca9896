"""The space protocol and the supernet protocol (CLOSE §3: sharing as routing, whatever the search space).

A search space is one object, registered in ``closekit.spaces.SPACES``; everything outside ``closekit/spaces/``
(trainer, scoring, ground truth, routing views, widgets, plots, notebooks) uses only what is listed here.

Space (subclass ``Space``):
  name                              registry key, recorded in checkpoints and ground truths
  parse(text) / to_str(arch)        every string format users have -> arch; arch -> the official string
  coerce(x)                         an arch from a string or an arch object (validated; ValueError in one line)
  canonical(arch), canonical_str    the isomorphism-class representative: its string keys every table and cache
  sample(generator)                 one architecture, as the reference samples during training
  sample_list(n, seed)              n distinct canonical architectures, seeded
  enumerations, enumerate(kind)     names of finite lists ("all", "valid") and the lists; () when there are none
  mutate(arch, generator)           one random neighbour (search)
  slots(arch) -> DataFrame          the routed positions: cell (cell type / stage), slot (index within the cell
                                    type's routing), label (position name, the same for every arch), op, live,
                                    param (live and parameterised: uses and trains its block's weights)
  choices(arch) -> [(label, options, value)]   optional (widgets): the architecture's editable decisions (cell
                                    spaces: each slot's op; NDS: each stage's depth, width, ...) and
  edit(arch, i, value)              the arch with decision i set to value (ValueError when that is no arch)
  draw(arch, table, ax)             the architecture with each slot coloured by its block (``table``: the slots
                                    with block and p columns); imports matplotlib itself
  notable() -> {label: arch str}    architectures worth a look in the explorer
  supernet(cfg, in_channels, num_classes) -> Supernet
  standalone(arch, recipe, in_channels, num_classes) -> nn.Module   (the mini benchmark's networks)
  modules                           the closekit modules of this space its results depend on (provenance:
                                    ``closekit.provenance.code_version`` hashes these, the core and its readers)
  params_file(kind) -> str          its params file of a kind (smoke, mini-close, ...) relative to params/

Supernet (subclass ``Supernet`` next to an nn.Module; set it up with ``_protocol``):
  forward(x, arch, routing=None)    logits; routing None: ``route(arch)``
  route(arch, sample, generator)    {cell type: one-hot [slots, level]} (straight-through when trained)
  route_probs(arch)                 {cell type: [slots, level]} probability of each block under training's sample
  cell_types                        the keys of a routing, in slot-table order
  curriculum, level                 the Curriculum and the active-block buffer (saved with the model)
  epoch_start(epoch, generator)     apply the curriculum events due: Events(log lines, params to reset)
  grow(new_level, parent)           one level change (WIT and router growth): the params to reset
  router_parameters()               the router's parameters (their own optimizer group)
  after_backward()                  called after every backward (zero grads for computed, unselected blocks)
  net_args                          the constructor's data arguments (in_channels, num_classes) for checkpoints

GATE supernets of banked cells (subclass ``CellSupernet``; NB201, NB301) get ``grow`` from it: each of their
``cells`` lists its banks with ``banks()``, and they set close, num_blocks, router, compat, mlp_growth, mlp_parent.
They also give
  gate_input(arch)                  the GATE's input tensor for one coerced arch (what route feeds the router)
and get gate_logits(arch) -> {cell type: [slots, K]}, the GATE's logits over all K blocks (bench/gate_signal.py).
"""
import abc

import torch

from ..curriculum import Events
from ..gates import Gate
from ..sharing import fill_zero_grads


class Space(abc.ABC):
    """Base of every search space: the protocol above, with the generic parts implemented."""
    name = None
    enumerations = ()
    modules = ()                 # closekit modules (dotted, below closekit) its results depend on; see provenance

    @abc.abstractmethod
    def parse(self, text): ...

    @abc.abstractmethod
    def to_str(self, arch): ...

    @abc.abstractmethod
    def coerce(self, x): ...

    @abc.abstractmethod
    def canonical(self, arch): ...

    @abc.abstractmethod
    def sample(self, generator): ...

    @abc.abstractmethod
    def mutate(self, arch, generator): ...

    @abc.abstractmethod
    def slots(self, arch): ...

    @abc.abstractmethod
    def supernet(self, cfg, in_channels, num_classes): ...

    @abc.abstractmethod
    def standalone(self, arch, recipe, in_channels, num_classes): ...

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
    """Mixin of the supernet protocol for an nn.Module subclass; call ``_protocol`` in its __init__."""
    cell_types = ("cell",)

    def _protocol(self, curriculum, in_channels, num_classes):
        self.curriculum, self.touched = curriculum, set()
        self.net_args = {"in_channels": in_channels, "num_classes": num_classes}
        self.register_buffer("level", torch.tensor(curriculum.level(0)))    # active blocks; saved with the model

    def active_level(self):
        """The number of active blocks; a clear error before the first curriculum event."""
        level = int(self.level)
        if level < 1:
            raise RuntimeError("the supernet has no active block yet (level 0): train it, load a trained checkpoint "
                               "or call epoch_start(1)")
        return level

    def epoch_start(self, epoch, generator=None):
        """Apply the curriculum events due at ``epoch`` (each once: the level is saved with the model)."""
        log, reset = [], []
        for new, parent in self.curriculum.due(int(self.level), epoch, generator):
            reset += self.grow(new, parent)
            log.append(f"epoch {epoch}: curriculum level {new}" + (f" (WIT from block {parent})" if parent is not None
                                                                   else ""))
        return Events(log, reset)

    def router_parameters(self):
        return self.router.parameters()

    def after_backward(self):
        """Zero gradients for the computed but unselected blocks (gate_forward others_no_grad)."""
        if self.touched:
            fill_zero_grads(self.touched)
            self.touched.clear()


class CellSupernet(Supernet):
    """Supernet protocol of cells holding Banks routed by a GATE (or a fixed router): the shared curriculum step."""

    @staticmethod
    def refuse_unsupported(cfg):
        """One-line error for a config key a cell supernet does not implement."""
        if cfg.head_norm != "none":
            raise ValueError(f"config head_norm={cfg.head_norm!r} does not apply to {cfg.space} (NDS supernets only); "
                             "set head_norm: none")

    def _gated(self, level):
        return isinstance(self.router, Gate) and (level > 1 or self.compat)    # the GATE is skipped while L = 1

    def gate_logits(self, arch):
        """{cell type: [slots, K]}: the GATE's logits for ``arch`` (coerced) over all K blocks, whatever the level (a
        GATE shared by the cell types, as the arch-level CellGate, gives each the same)."""
        if not isinstance(self.router, Gate):
            raise ValueError(f"router {type(self.router).__name__} has no GATE logits (supernet: close with router: "
                             "node or arch has)")
        out = self.router.logits(self.gate_input(arch))
        out = out.reshape(-1, *out.shape[-2:]).expand(len(self.cell_types), -1, -1)
        return dict(zip(self.cell_types, out))

    def grow(self, new_level, wit_parent):
        """Curriculum event: activate block ``new_level - 1`` in every bank of every cell (WIT from ``wit_parent``,
        the same index in every bank of a cell) and grow the GATE's MLP.

        Returns the GATE params that were re-initialised (their optimizer state should be reset). With
        ``aw_nas_compat`` the grown MLP layers become new Parameter objects, which the optimizer does not track.
        The MLP row of the new block inherits from the previous block (``mlp_parent: prev``, the reference, even
        with ``wit_from: random``) or from the WIT parent (``mlp_parent: wit``).
        """
        assert self.close and new_level == int(self.level) + 1 <= self.num_blocks
        self.level.fill_(new_level)
        reset, row_parent = [], new_level - 2 if self.mlp_parent == "prev" else wit_parent
        if isinstance(self.router, Gate) and (new_level > 1 or self.mlp_growth != "inherit"):
            if self.compat:
                self.router.replace_grown(new_level, self.mlp_growth, row_parent)
            else:
                reset = self.router.grow(new_level, self.mlp_growth, row_parent)
        if new_level > 1:
            for cell in self.cells:
                for bank in cell.banks():
                    bank.wit(new_level - 1, wit_parent)
        return reset
