"""Search on one-shot scores (CLOSE, abstract: the supernet "is able to discover superior architectures when
combined with various search strategies"): random search and regularized evolution (Real et al., AAAI 2019) over
any space through its protocol. The budget counts architectures scored, each once; a finite ``domain`` (a truth's
archs) takes a mutation that leaves it to its nearest arch; ``truth_report`` weighs the choice against random picks.
Written: run_dir/search/<strategy>-b<budget>-s<seed>.csv (order, arch, score) and .json (choice, settings, report).
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

STRATEGIES = ("random", "evolution")
TRIES = 100               # random draws allowed per architecture to find (the space may have few distinct ones)


class Scorer:
    """``score(arch)`` cached by canonical string (a repeat costs no budget); ``history``: (order, arch, score)."""

    def __init__(self, space, score_fn, budget):
        self.space, self.score_fn, self.budget = space, score_fn, int(budget)
        self.cache, self.history = {}, []

    @property
    def left(self):
        return self.budget - len(self.history)

    def __call__(self, arch):
        k = self.space.canonical_str(arch)
        if k not in self.cache:
            self.cache[k] = float(self.score_fn([k])[0])
            self.history.append((len(self.history), k, self.cache[k]))
        return self.cache[k]


class Domain:
    """Where a search may go: the whole space (archs None) or a finite list, with projection by slot ops."""

    def __init__(self, space, archs=None):
        self.space = space
        self.keys = None if archs is None else list(dict.fromkeys(space.canonical_str(a) for a in archs))
        if self.keys == []:
            raise ValueError("search domain is empty: give at least one architecture")
        if self.keys:
            self.index = {k: i for i, k in enumerate(self.keys)}
            self.labels = list(space.slots(self.keys[0])["label"])
            self.ops = np.array([self._ops(k) for k in self.keys], dtype=object)   # [n, slots]

    def _ops(self, arch):
        s = self.space.slots(arch).set_index("label")["op"]
        return [s.get(label) for label in self.labels]

    def sample(self, gen):
        """One random architecture (canonical string) of the domain."""
        if self.keys is None:
            return self.space.canonical_str(self.space.sample(gen))
        return self.keys[int(torch.randint(len(self.keys), (1,), generator=gen))]

    def mutate(self, parent, gen):
        """``space.mutate`` of ``parent``; outside a finite domain, the nearest domain arch other than ``parent``
        (fewest slot ops differing, ties drawn at random)."""
        child = self.space.canonical_str(self.space.mutate(self.space.coerce(parent), gen))
        if self.keys is None or child in self.index:
            return child
        dist = (self.ops != np.array(self._ops(child), dtype=object)).sum(1)
        if parent in self.index:
            dist[self.index[parent]] = dist.max() + 1
        near = np.flatnonzero(dist == dist.min())
        return self.keys[int(near[int(torch.randint(len(near), (1,), generator=gen))])]


class SearchResult(NamedTuple):
    """What one search returns: its history (order, arch, score) and the chosen (best-scored) architecture."""
    strategy: str
    seed: int
    history: pd.DataFrame
    chosen: str
    settings: dict


def _start(space, score_fn, budget, seed, domain):
    dom = Domain(space, domain)
    budget = budget if dom.keys is None else min(budget, len(dom.keys))
    return dom, Scorer(space, score_fn, budget), torch.Generator().manual_seed(seed)


def _result(strategy, seed, scorer, settings):
    h = pd.DataFrame(scorer.history, columns=["order", "arch", "score"])
    chosen = h.loc[h["score"].idxmax(), "arch"] if len(h) else None      # ties: the first scored
    return SearchResult(strategy, seed, h, chosen, settings)


def random_search(space, score_fn, budget, seed=0, domain=None):
    """Score ``budget`` distinct random architectures (a random order of a finite domain); choose the best."""
    dom, scorer, gen = _start(space, score_fn, budget, seed, domain)
    if dom.keys is not None:
        for i in torch.randperm(len(dom.keys), generator=gen)[:scorer.budget].tolist():
            scorer(dom.keys[i])
    else:
        for _ in range(TRIES * (budget + 1)):
            if scorer.left <= 0:
                break
            scorer(dom.sample(gen))
    return _result("random", seed, scorer, {"budget": budget})


def evolution(space, score_fn, budget, seed=0, domain=None, population=20, sample=5):
    """Regularized evolution: P random archs, then repeatedly mutate one decision of the best of S archs drawn
    from the population, add the child and drop the oldest. A child scored before costs no budget."""
    if population < 1 or not 1 <= sample <= population:
        raise ValueError(f"evolution needs population >= 1 and 1 <= sample <= population, got population="
                         f"{population}, sample={sample}")
    dom, scorer, gen = _start(space, score_fn, budget, seed, domain)
    pop = []                                                          # (arch, score), oldest first
    for _ in range(TRIES * (population + 1)):
        if len(pop) >= min(population, scorer.budget):
            break
        a = dom.sample(gen)
        if a not in scorer.cache:
            pop.append((a, scorer(a)))
    for _ in range(50 * budget + 1000):       # a cap: repeats cost no budget, so a converged population could loop
        if scorer.left <= 0:
            break
        picks = torch.randperm(len(pop), generator=gen)[:sample].tolist()
        parent = max((pop[i] for i in sorted(picks)), key=lambda p: p[1])[0]
        child = dom.mutate(parent, gen)
        pop.append((child, scorer(child)))
        pop.pop(0)
    return _result("evolution", seed, scorer, {"budget": budget, "population": population, "sample": sample})


def search(space, score_fn, strategy="evolution", budget=100, seed=0, domain=None, population=20, sample=5):
    """Run one strategy by name (``STRATEGIES``); ``population`` and ``sample`` apply to evolution."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if strategy == "random":
        return random_search(space, score_fn, budget, seed, domain)
    return evolution(space, score_fn, budget, seed, domain, population, sample)


def best_so_far(history):
    """Per number scored n: the best score so far and the arch it belongs to (what the search would choose)."""
    best = history["score"].cummax()
    new = history["score"] > best.shift(fill_value=-math.inf)
    return pd.DataFrame({"n_scored": history["order"] + 1, "arch": history["arch"].where(new).ffill(),
                         "best_score": best}).reset_index(drop=True)


def _pick_probs(n, k):
    """P(the item at sorted position i is the first of k uniform picks without replacement from n): [n]."""
    k = min(k, n)
    return np.array([math.comb(n - 1 - i, k - 1) / math.comb(n, k) for i in range(n)])


def truth_report(result, truth, domain_scores=None):
    """The chosen arch against the truth (arch, acc): true acc, rank percentile (100 * archs truly better / N),
    regret; the same expected of the best of K = budget random picks by true acc and, given ``domain_scores``
    (arch -> one-shot score of every truth arch), by one-shot score."""
    acc = truth.set_index("arch")["acc"].astype(float)
    top, k = float(acc.max()), len(result.history)
    pct = lambda a: 100.0 * float((acc > a).sum()) / len(acc)        # noqa: E731
    true = float(acc.get(result.chosen, np.nan)) if result.chosen is not None else np.nan
    out = {"n_truth": len(acc), "truth_best_acc": top, "n_scored": k, "chosen": result.chosen,
           "chosen_true_acc": true, "chosen_rank_pct": np.nan if np.isnan(true) else pct(true),
           "chosen_regret": top - true, "random_k": k}
    p = _pick_probs(len(acc), k)
    orders = {"truebest": np.sort(acc.to_numpy())[::-1]}
    if domain_scores is not None:
        s = pd.Series(domain_scores).reindex(acc.index)
        if s.isna().any():
            raise ValueError(f"domain_scores lack {int(s.isna().sum())} truth architectures")
        orders["oneshot"] = acc.to_numpy()[np.argsort(-s.to_numpy(), kind="stable")]     # ties: truth order
    for name, a in orders.items():
        out.update({f"random_{name}_acc": float(p @ a), f"random_{name}_rank_pct": float(p @ [pct(x) for x in a]),
                    f"random_{name}_regret": float(top - p @ a)})
    return out


# ---- a trained run's supernet as the score function ----------------------------------------------------------

def find_run(run_dir):
    """The run directory holding checkpoint.pt: ``run_dir`` itself, or the one run under a batch job directory
    (``<job>/runs/<name>``, found as the explorer finds it)."""
    from .checkpoint import CKPT
    from .routing import checkpoints
    if (Path(run_dir) / CKPT).is_file():
        return Path(run_dir)
    final = checkpoints(run_dir).query("kind == 'checkpoint'")
    if not len(final):
        raise FileNotFoundError(f"no {CKPT} under {run_dir} (only snapshots): let its training finish first")
    return Path(final["path"].iloc[-1]).parent


def load_run(run_dir, device="cpu", truth=True):
    """(space, net, data, cfg, truth or None) of a run directory or a batch job directory holding one run."""
    from . import data as datalib, groundtruth, spaces
    from .checkpoint import CKPT, load_net
    net, cfg, _ = load_net(find_run(run_dir) / CKPT, device)
    space = spaces.get(cfg.space)
    data = datalib.load(cfg.dataset, **{**cfg.data_kwargs(), "augment": False})
    gt = groundtruth.load(cfg.truth, space, for_dataset=cfg.dataset) if truth and cfg.truth else None
    return space, net, data, cfg, gt


def run_context(run_dir, device="cpu", saved=True):
    """What searches of one run share: (space, cached score_fn: archs -> one-shot scores (cfg.score) under the run's
    scoring keys, truth or None, cfg); ``saved``: the run's scores.csv (scored with the same keys) seeds the cache."""
    from .evaluate import evaluate, oneshot_score
    space, net, data, cfg, gt = load_run(run_dir, device)
    memo = {}

    def fn(archs):
        new = [a for a in dict.fromkeys(archs) if a not in memo]
        if new:
            memo.update(zip(new, evaluate(net, space, new, data, cfg, progress=False)["score"].tolist()))
        return [memo[a] for a in archs]
    fn.memo = memo                                  # the baseline reuses the search's scores
    path = find_run(run_dir) / "scores.csv"
    if saved and path.is_file():
        s = pd.read_csv(path)
        memo.update(zip((space.canonical_str(a) for a in s["arch"]), oneshot_score(s, cfg.score).astype(float)))
    return space, fn, gt, cfg


def search_run(run_dir, strategy="evolution", budget=100, seed=0, domain="auto", population=20, sample=5,
               device="cpu", save=True, baseline=True, ctx=None, out=None):
    """Search on the one-shot scores of the run in ``run_dir`` (or a batch job directory); (SearchResult, report).
    A scored arch costs budget whether its score is computed now or saved (``run_context``; ``ctx`` shares one).
    ``domain``: auto (the truth's archs when the run has a truth), space or truth; ``baseline``: score every truth
    arch for the random-picks-by-score expectation; ``out`` (default run_dir/search) is checked before any work."""
    from .checkpoint import writable_dir
    run_dir = find_run(run_dir)
    out = writable_dir(out or run_dir / "search", "search --out") if save else None
    if domain not in ("auto", "space", "truth"):
        raise ValueError(f"domain {domain!r} is not one of auto, space, truth")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    space, score, gt, _ = ctx or run_context(run_dir, device)
    if domain == "truth" and gt is None:
        raise ValueError(f"domain truth: the run {run_dir} has no ground truth (truth: null in its config)")
    archs = list(gt["arch"]) if gt is not None and domain != "space" else None
    res = search(space, score, strategy, budget, seed, archs, population, sample)
    report = {"strategy": strategy, "seed": seed, "domain": "truth" if archs else "space", **res.settings,
              "chosen": res.chosen, "chosen_score": float(res.history["score"].max())}
    if gt is not None:
        dscores = dict(zip(gt["arch"], score(list(gt["arch"])))) if baseline else None
        report.update(truth_report(res, gt, dscores))
    if save:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{strategy}-b{budget}-s{seed}"
        res.history.to_csv(out / f"{stem}.csv", index=False)
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=float))
    return res, report
