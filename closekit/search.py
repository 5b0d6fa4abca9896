"""Search on one-shot scores (CLOSE, abstract: the supernet "is able to discover superior architectures when
combined with various search strategies"): random search and regularized evolution (Real et al., AAAI 2019) over any
registered space, through the space protocol only (``sample``, ``mutate``, ``canonical_str``, ``slots``).

Scores are cached by canonical string (no architecture is scored twice) and the budget is the number of
architectures scored. ``domain``: None searches the whole space; a list of architectures (e.g. a ground truth's)
restricts the search to it (a mutation outside it moves to the nearest domain arch by slot ops). With a ground
truth, ``truth_report`` gives the chosen architecture's true accuracy, its true rank percentile and its regret, and
the same, as exact expectations, for the best of K uniform random picks at equal budget (K = the budget): picked by
one-shot score (random search's mean outcome) and by true accuracy (training K random archs stand-alone).

    run_dir/search/<strategy>-b<budget>-s<seed>.csv    order, arch, score (one row per scored architecture)
    run_dir/search/<strategy>-b<budget>-s<seed>.json   chosen arch, settings, truth report
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

STRATEGIES = ("random", "evolution")


class Scorer:
    """``score(arch)`` with a cache keyed by canonical string; ``history`` lists the scored archs in order."""

    def __init__(self, space, score_fn, budget):
        self.space, self.score_fn, self.budget = space, score_fn, int(budget)
        self.cache, self.history = {}, []

    @property
    def left(self):
        return self.budget - len(self.history)

    def key(self, arch):
        return self.space.canonical_str(arch)

    def __call__(self, arch):
        """The score of ``arch`` (cached: a repeat costs no budget)."""
        k = self.key(arch)
        if k not in self.cache:
            if self.left <= 0:
                raise RuntimeError("search budget exhausted")
            self.cache[k] = float(self.score_fn([k])[0])
            self.history.append((len(self.history), k, self.cache[k]))
        return self.cache[k]


class Domain:
    """Where a search may go: the whole space (archs None) or a finite list, with projection by slot ops."""

    def __init__(self, space, archs=None):
        self.space = space
        self.keys = None if archs is None else list(dict.fromkeys(space.canonical_str(a) for a in archs))
        if self.keys is not None:
            if not self.keys:
                raise ValueError("search domain is empty: give at least one architecture")
            self.index = {k: i for i, k in enumerate(self.keys)}
            self.labels = list(space.slots(self.keys[0])["label"])
            self.ops = np.array([self._ops(k) for k in self.keys], dtype=object)   # [n, slots]

    def _ops(self, arch):
        s = self.space.slots(arch).set_index("label")["op"]
        return [s.get(label) for label in self.labels]

    @property
    def size(self):
        """The number of architectures (inf for the whole space)."""
        return math.inf if self.keys is None else len(self.keys)

    def sample(self, gen):
        """One random architecture (canonical string) of the domain."""
        if self.keys is None:
            return self.space.canonical_str(self.space.sample(gen))
        return self.keys[int(torch.randint(len(self.keys), (1,), generator=gen))]

    def mutate(self, parent, gen):
        """``space.mutate`` of ``parent``; in a finite domain the nearest domain arch (fewest slot ops differing,
        ties drawn at random) other than ``parent`` when the child lies outside it."""
        child = self.space.canonical_str(self.space.mutate(self.space.coerce(parent), gen))
        if self.keys is None or child in self.index:
            return child
        if len(self.keys) == 1:
            return self.keys[0]
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


def _result(strategy, seed, scorer, settings):
    h = pd.DataFrame(scorer.history, columns=["order", "arch", "score"])
    chosen = h.loc[h["score"].idxmax(), "arch"] if len(h) else None      # ties: the first scored
    return SearchResult(strategy, seed, h, chosen, settings)


def random_search(space, score_fn, budget, seed=0, domain=None, max_tries=None):
    """Score ``budget`` distinct random architectures; choose the best-scored."""
    dom = domain if isinstance(domain, Domain) else Domain(space, domain)
    scorer, gen = Scorer(space, score_fn, min(budget, dom.size)), torch.Generator().manual_seed(seed)
    if dom.keys is not None:                                          # a finite domain: a random order of it
        for i in torch.randperm(len(dom.keys), generator=gen)[:scorer.budget].tolist():
            scorer(dom.keys[i])
    else:
        for _ in range(max_tries or 100 * budget + 100):
            if scorer.left <= 0:
                break
            scorer(dom.sample(gen))
    return _result("random", seed, scorer, {"budget": budget})


def evolution(space, score_fn, budget, seed=0, domain=None, population=20, sample=5, max_steps=None):
    """Regularized evolution: P random archs, then repeatedly mutate one decision of the best of S archs drawn
    from the population, add the child and drop the oldest. A child scored before costs no budget."""
    if population < 1 or not 1 <= sample <= population:
        raise ValueError(f"evolution needs population >= 1 and 1 <= sample <= population, got population="
                         f"{population}, sample={sample}")
    dom = domain if isinstance(domain, Domain) else Domain(space, domain)
    scorer, gen = Scorer(space, score_fn, min(budget, dom.size)), torch.Generator().manual_seed(seed)
    pop = []                                                          # (arch, score), oldest first
    for _ in range(100 * population + 100):
        if len(pop) >= min(population, scorer.budget):
            break
        a = dom.sample(gen)
        if a not in scorer.cache:
            pop.append((a, scorer(a)))
    for _ in range(max_steps or 50 * budget + 1000):
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
    best, arch, rows = -math.inf, None, []
    for order, a, s in history[["order", "arch", "score"]].itertuples(index=False):
        if s > best:
            best, arch = s, a
        rows.append((order + 1, arch, best))
    return pd.DataFrame(rows, columns=["n_scored", "arch", "best_score"])


def _pick_probs(n, k):
    """P(the item at sorted position i is the first of k uniform picks without replacement from n): [n]."""
    k = min(k, n)
    return np.array([math.comb(n - 1 - i, k - 1) / math.comb(n, k) for i in range(n)])


def truth_report(result, truth, domain_scores=None):
    """Chosen arch vs ground truth (``truth``: arch, acc): true acc, rank percentile (0 = the best; 100 * archs
    truly better / N), regret against the truth's best; and expectations for the best of K = budget random picks of
    the truth's archs, by true acc and, with ``domain_scores`` (arch -> one-shot score of every truth arch), by score."""
    acc = truth.set_index("arch")["acc"].astype(float)
    top = float(acc.max())
    by_true = np.sort(acc.to_numpy())[::-1]
    pct = lambda a: 100.0 * float((acc > a).sum()) / len(acc)        # noqa: E731
    true = float(acc.get(result.chosen, np.nan)) if result.chosen is not None else np.nan
    out = {"n_truth": len(acc), "truth_best_acc": top, "n_scored": len(result.history), "chosen": result.chosen,
           "chosen_true_acc": true, "chosen_rank_pct": pct(true) if not np.isnan(true) else np.nan,
           "chosen_regret": top - true}
    k = len(result.history)
    p = _pick_probs(len(acc), k)
    ranks = np.array([pct(a) for a in by_true])
    out.update(random_k=k, random_truebest_acc=float(p @ by_true), random_truebest_rank_pct=float(p @ ranks),
               random_truebest_regret=float(top - p @ by_true))
    if domain_scores is not None:
        s = pd.Series(domain_scores).reindex(acc.index)
        if s.isna().any():
            raise ValueError(f"domain_scores lack {int(s.isna().sum())} truth architectures")
        order = np.argsort(-s.to_numpy(), kind="stable")              # ties: truth order
        a = acc.to_numpy()[order]
        out.update(random_oneshot_acc=float(p @ a), random_oneshot_rank_pct=float(p @ np.array([pct(x) for x in a])),
                   random_oneshot_regret=float(top - p @ a))
    return out


# ---- a trained run's supernet as the score function ----------------------------------------------------------

def find_run(run_dir):
    """The run directory holding checkpoint.pt: ``run_dir`` itself, or the one run under a batch job directory
    (``<job>/runs/<name>``, found as the explorer finds it)."""
    from .checkpoint import CKPT
    from .routing import checkpoints
    run_dir = Path(run_dir)
    if (run_dir / CKPT).is_file():
        return run_dir
    final = checkpoints(run_dir).query("kind == 'checkpoint'")
    if not len(final):
        raise FileNotFoundError(f"no {CKPT} under {run_dir} (only snapshots): let its training finish first")
    return Path(final["path"].iloc[-1]).parent


def load_run(run_dir, device="cpu", truth=True):
    """(space, net, data, cfg, truth or None) of a run directory (its checkpoint.pt and config) or a batch job
    directory holding one run."""
    from . import data as datalib, groundtruth, spaces
    from .checkpoint import CKPT, load_net
    net, cfg, _ = load_net(find_run(run_dir) / CKPT, device)
    space = spaces.get(cfg.space)
    data = datalib.load(cfg.dataset, root=cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                        train_portion=cfg.train_portion, train_limit=cfg.train_limit, download=cfg.download,
                        augment=False)
    gt = groundtruth.load(cfg.truth, space, for_dataset=cfg.dataset) if truth and cfg.truth else None
    return space, net, data, cfg, gt


def supernet_scores(net, space, data, cfg):
    """score_fn: archs -> one-shot accuracies with the run's scoring knobs (closekit.evaluate)."""
    from .evaluate import evaluate
    return lambda archs: evaluate(net, space, archs, data, cfg, progress=False)["acc"].tolist()


def run_context(run_dir, device="cpu", saved=True):
    """What searches of one run share: (space, cached score_fn, ground truth or None, cfg). ``saved``: the run's
    scores.csv (written by closekit.run with the same scoring keys as its config.yaml) seeds the cache."""
    space, net, data, cfg, gt = load_run(run_dir, device)
    fn = _cached(supernet_scores(net, space, data, cfg))
    path = find_run(run_dir) / "scores.csv"
    if saved and path.is_file():
        s = pd.read_csv(path)
        fn.memo.update(zip((space.canonical_str(a) for a in s["arch"]), s["acc"].astype(float)))
    return space, fn, gt, cfg


def search_run(run_dir, strategy="evolution", budget=100, seed=0, domain="auto", population=20, sample=5,
               device="cpu", save=True, baseline=True, ctx=None, out=None):
    """Search on the one-shot scores of the run in ``run_dir``; (SearchResult, report dict).

    The run's scores.csv seeds the score cache (``run_context``); a scored arch costs budget whether its score was
    computed now or saved. ``domain``: "auto" (the truth's archs when the run has a ground truth, else the space), "space", "truth".
    ``baseline``: score every truth arch once for the random-picks-by-score expectation. ``ctx``: a
    ``run_context`` to share loaded weights and cached scores between searches. ``out``: where the history and
    report go (default run_dir/search; checked before any work). ``run_dir`` may be a batch job directory."""
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


def _cached(score_fn):
    """A score_fn memoised by its arch strings (the baseline reuses the search's scores)."""
    memo = {}

    def fn(archs):
        new = [a for a in dict.fromkeys(archs) if a not in memo]
        if new:
            memo.update(zip(new, score_fn(new)))
        return [memo[a] for a in archs]
    fn.memo = memo
    return fn
