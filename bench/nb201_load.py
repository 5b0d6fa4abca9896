"""Load time and peak memory of an official NB201 file (issue 25 #11): ``closekit.groundtruth.load`` against the
official API (nas_201_api.NASBench201API), each in its own process, on a file written in the v1_0 layout.

The file is a legacy torch.save stream (magic number, protocol, sys info, the benchmark dict, no storages), as
NAS-Bench-201-v1_0-e61699.pth (January 2020, before torch's zip format) is. The dict holds what the official API
reads: meta_archs (15,625 cell strings), evaluated_indexes, and per arch the 'less' (12 epochs) and 'full' (200
epochs) ArchResults states over cifar10-valid, cifar10, cifar100 and ImageNet16-120, each seed's ResultsCount state
with per-epoch train accuracies (top-1, top-5), losses and times and per-epoch eval accuracies, losses and times of
every eval set of its dataset. Seeds per dataset: ``--seeds`` (1 by default: 3.3 GB, more than the real file's
2.1 GB, since every key string is written out as in a file made of loaded results). The stream is written arch by
arch with one memo, as torch.save writes it, so writing it never holds the dict in memory.

    nice -n 10 python bench/nb201_load.py --archs 15625 --file /tmp/nb201-full.pth
prints one row per loader: wall and CPU seconds, peak RSS (GiB), rows and whether its table equals closekit's. The
official API runs under an address-space limit (``--api-limit-gb``) so that it fails with MemoryError, not swap.
"""
import argparse
import itertools
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import time

import numpy as np

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EVALS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
         "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
HPS = {"less": 12, "full": 200}
SEEDS = (777, 888, 999)
MAGIC, LEGACY = 0x1950a86a20f9469cfc6c, 1001          # torch's legacy serialization header
PROTOCOL = 2                                          # torch.save's default pickle protocol
BATCH = 1000                                          # items per SETITEMS / APPENDS, as pickle batches them
FIELDS = ("name", "net_state_dict", "train_acc1es", "train_acc5es", "train_losses", "train_times", "arch_config",
          "C", "N", "arch_str", "num_classes", "params", "flop", "seed", "epochs", "latency", "eval_names",
          "eval_acc1es", "eval_losses", "eval_times", "arch_index", "clear_net_done", "dataset_seed", "all_results",
          "infer.tiny", *HPS)
SHARED = {*FIELDS, *EVALS, *(n for names in EVALS.values() for n in names)}


def arch_strings():
    """The 15,625 NB201 cell strings in the official order (edge 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)."""
    edges = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    out = []
    for ops in itertools.product(OPS, repeat=6):
        node = {n: [f"{op}~{j}" for op, (m, j) in zip(ops, edges) if m == n] for n in (1, 2, 3)}
        out.append("|" + "|+|".join("|".join(node[n]) for n in (1, 2, 3)) + "|")
    return out


def results_count(arch, dataset, seed, epochs, rng):
    """One ResultsCount state dict, per-epoch lists as the official files hold them (values random)."""
    ep, u = range(epochs), lambda lo, hi, n=epochs: rng.uniform(lo, hi, n).tolist()
    keys = [f"{name}@{i}" for name in EVALS[dataset] for i in ep]
    return {"name": dataset, "net_state_dict": None, "train_acc1es": dict(zip(ep, u(10, 99))),
            "train_acc5es": dict(zip(ep, u(50, 100))), "train_losses": dict(zip(ep, u(0, 1))),
            "train_times": dict(zip(ep, u(5, 20))),
            "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": arch, "num_classes": 10},
            "params": float(rng.uniform(0.1, 1.5)), "flop": float(rng.uniform(10, 200)), "seed": seed,
            "epochs": epochs, "latency": u(0.01, 0.03, 1), "eval_names": list(EVALS[dataset]),
            "eval_acc1es": dict(zip(keys, u(10, 95, len(keys)))), "eval_losses": dict(zip(keys, u(0, 1, len(keys)))),
            "eval_times": dict(zip(keys, u(1, 3, len(keys))))}


def arch_infos(index, arch, seeds, rng):
    """{'less': ArchResults state, 'full': ArchResults state} of one architecture."""
    out = {}
    for hp, epochs in HPS.items():
        out[hp] = {"arch_index": index, "arch_str": arch, "clear_net_done": True,
                   "dataset_seed": {d: list(seeds) for d in EVALS},
                   "all_results": {(d, s): results_count(arch, d, s, epochs, rng) for d in EVALS for s in seeds}}
    return out


class Stream:
    """A protocol-2 pickle written object by object with one memo, as one pickle.dump (torch.save) of the whole
    dict writes these types: every str, tuple, list and dict memoized at the next index; the names that recur in
    every entry (``SHARED``: field names, dataset and eval-set names, one object each in live data) written once
    and referenced by BINGET after; nothing else is held."""

    def __init__(self, f):
        self.f, self.memo, self.n = f, {}, 0

    def _put(self):
        self.n += 1
        return b"q" + bytes([self.n - 1]) if self.n <= 256 else b"r" + struct.pack("<I", self.n - 1)

    def emit(self, x, out):
        if x is None or isinstance(x, bool):
            out.append({None: b"N", True: b"\x88", False: b"\x89"}[x])
        elif isinstance(x, int):
            out.append(b"K" + bytes([x]) if 0 <= x < 256 else b"M" + struct.pack("<H", x) if 0 <= x < 65536
                       else b"J" + struct.pack("<i", x))
        elif isinstance(x, float):
            out.append(b"G" + struct.pack(">d", x))
        elif isinstance(x, str):
            if x in self.memo:
                i = self.memo[x]
                out.append(b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i))
                return
            b = x.encode()
            out += [b"X" + struct.pack("<I", len(b)) + b, self._put()]
            if x in SHARED:
                self.memo[x] = self.n - 1
        elif isinstance(x, tuple):
            for v in x:
                self.emit(v, out)
            out += [b"\x86" if len(x) == 2 else b"\x85", self._put()]
        elif isinstance(x, list):
            out += [b"]", self._put()]
            for i in range(0, len(x), BATCH):
                out.append(b"(")
                for v in x[i:i + BATCH]:
                    self.emit(v, out)
                out.append(b"e")
        elif isinstance(x, set):                 # protocol 2: set(list) by REDUCE
            out += [b"c__builtin__\nset\n", self._put()]
            self.emit(sorted(x), out)
            out += [b"\x85", self._put(), b"R", self._put()]
        else:
            self.open_dict(out)
            self.items(list(x.items()), out)

    def open_dict(self, out):
        out += [b"}", self._put()]

    def items(self, pairs, out):
        if pairs and all(type(v) is float for _, v in pairs) and len(pairs) <= BATCH:   # per-epoch dicts, fast
            keys, vals = zip(*pairs)
            raw = np.asarray(vals, ">f8").tobytes()
            g = [b"G" + raw[i:i + 8] for i in range(0, len(raw), 8)]
            if all(type(k) is int and 0 <= k < 256 for k in keys):
                out += [b"(", b"".join(b"K" + bytes([k]) + v for k, v in zip(keys, g)), b"u"]
                return
            if all(type(k) is str and k not in SHARED for k in keys):
                enc = [k.encode() for k in keys]
                out += [b"(", b"".join(b"X" + struct.pack("<I", len(e)) + e + self._put() + v
                                       for e, v in zip(enc, g)), b"u"]
                return
        for i in range(0, len(pairs), BATCH):
            out.append(b"(")
            for k, v in pairs[i:i + BATCH]:
                self.emit(k, out)
                self.emit(v, out)
            out.append(b"u")

    def write(self, out):
        self.f.write(b"".join(out))
        out.clear()


def write(path, n_archs=15625, n_seeds=1, seed=0):
    """A legacy torch.save file of the NB201 v1_0 layout, streamed arch by arch; returns its size in bytes."""
    archs, rng = arch_strings()[:n_archs], np.random.default_rng(seed)
    with open(path, "wb") as f:
        for header in (MAGIC, LEGACY, {"protocol_version": LEGACY, "little_endian": True,
                                       "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=PROTOCOL)
        s, out = Stream(f), [b"\x80\x02"]
        s.open_dict(out)
        out.append(b"(")                      # the top-level dict's one SETITEMS batch
        for k, v in (("meta_archs", archs), ("total_archs", n_archs), ("evaluated_indexes", set(range(n_archs)))):
            s.emit(k, out)
            s.emit(v, out)
        s.emit("arch2infos", out)
        s.open_dict(out)
        for start in range(0, n_archs, BATCH):
            out.append(b"(")
            for i in range(start, min(start + BATCH, n_archs)):
                s.emit(i, out)
                s.emit(arch_infos(i, archs[i], SEEDS[:n_seeds], rng), out)
                s.write(out)
            out.append(b"u")
        out.append(b"u.")
        s.write(out)
        pickle.dump([], f, protocol=PROTOCOL)         # the storage keys: none
    return os.path.getsize(path)


def _closekit(path):
    from closekit import groundtruth, spaces
    return groundtruth.load(path, spaces.get("nb201"))


def _official(path):
    """The table closekit gives, computed through the official API (get_more_info, 200 epochs, seed means)."""
    import pandas as pd
    from nas_201_api import NASBench201API
    from closekit import spaces
    api, space = NASBench201API(path, verbose=False), spaces.get("nb201")
    rows = [(space.canonical_str(api.meta_archs[i]),
             api.get_more_info(i, "cifar10", hp="200", is_random=False)["test-accuracy"] / 100)
            for i in sorted(api.arch2infos_dict)]
    return pd.DataFrame(rows, columns=["arch", "acc"]).groupby("arch")["acc"].mean().reset_index()


def child(which, path, out):
    """Run one loader in this process; write seconds, peak RSS and the table to ``out`` (JSON)."""
    t0 = time.time()
    df = {"closekit": _closekit, "official": _official}[which](path)
    secs, ru = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"seconds": secs, "cpu": ru.ru_utime + ru.ru_stime, "peak_gb": ru.ru_maxrss / 2 ** 20, "rows": len(df),
               "table": dict(zip(df["arch"], df["acc"].round(10)))}, open(out, "w"))


def measure(which, path, limit_gb=None, timeout=None):
    """One loader in a fresh process: its JSON record, or the reason it failed."""
    out = f"{path}.{which}.json"
    pre = (lambda: resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2 ** 30),) * 2)) if limit_gb else None
    t0 = time.time()
    try:
        r = subprocess.run([sys.executable, __file__, "--child", which, "--file", path, "--out", out],
                           preexec_fn=pre, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout} s"}
    if r.returncode:
        return {"failed": (r.stderr.strip().splitlines() or ["?"])[-1][:200], "seconds": time.time() - t0}
    return json.load(open(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=15625, help="architectures in the file (15625: full size)")
    p.add_argument("--seeds", type=int, default=1, choices=(1, 2, 3), help="seeds per dataset")
    p.add_argument("--file", default="/tmp/NAS-Bench-201-v1_0-bench.pth", help="file to write (kept if present)")
    p.add_argument("--api-limit-gb", type=float, default=16.0, help="address-space limit of the official API")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per loader")
    p.add_argument("--skip-official", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child, a.file, a.out)
    if not os.path.exists(a.file):
        t0 = time.time()
        size = write(a.file, a.archs, a.seeds)
        print(f"wrote {a.file}: {a.archs} archs, {a.seeds} seed(s) per dataset, {size / 1e9:.2f} GB in "
              f"{time.time() - t0:.0f} s")
    ours = measure("closekit", a.file, timeout=a.timeout)
    theirs = {"failed": "skipped"} if a.skip_official else measure("official", a.file, a.api_limit_gb, a.timeout)
    print(f"{'loader':10} {'seconds':>8} {'cpu s':>8} {'peak GiB':>8} {'rows':>6}  same table")
    for name, r in (("closekit", ours), ("official", theirs)):
        if "failed" in r:
            print(f"{name:10} {r.get('seconds', float('nan')):8.1f} {'':>8} {'':>8} {'':>6}  failed: {r['failed']}")
        else:
            same = "yes" if name == "closekit" or r["table"] == ours.get("table") else "NO"
            print(f"{name:10} {r['seconds']:8.1f} {r['cpu']:8.1f} {r['peak_gb']:8.2f} {r['rows']:6d}  {same}")


if __name__ == "__main__":
    main()
