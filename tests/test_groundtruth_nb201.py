"""Official NB201 / NATS-tss ground truth (closekit.groundtruth.nb201) on tiny files in the true formats.

The fixtures are built in tmp_path from plain Python types only (no numpy scalars, no binary files in the
repository): the four top-level keys, ArchResults-state dicts and ResultsCount-state dicts that the official
APIs (nas-bench-201 2.1, nats_bench 1.8) rebuild their objects from.
"""
import bz2
import pickle
import warnings

import pytest

pytest.importorskip("nas_201_api")
pytest.importorskip("nats_bench")
torch = pytest.importorskip("torch")

from closekit import groundtruth  # noqa: E402
from closekit.groundtruth import nb201  # noqa: E402

P_NONREP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|"
P_REP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
Q = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"  # class rep not in file
Q_REP = "|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
# file order (deliberately not lexicographic) and CIFAR-10 ori-test accuracy (%) per seed after 200 epochs
ARCHS = [
    (P_NONREP, {777: 90.0, 888: 91.0, 999: 92.5}),  # 3 seeds: the mean counts, not one random seed
    (BEST, {777: 94.0, 888: 94.5}),
    (NONE, {777: 10.0, 888: 10.0, 999: 10.0}),
    (P_REP, {888: 85.0}),  # 1 seed; isomorphic to P_NONREP with a different accuracy
    (Q, {999: 70.0}),
]
# eval sets per dataset, and their offset from the CIFAR-10 ori-test accuracy (so every pair is distinguishable)
EVALS = {
    "cifar10-valid": {"x-valid": -1.0, "ori-test": -1.5},
    "cifar10": {"ori-test": 0.0},
    "cifar100": {"x-valid": -20.0, "x-test": -20.5, "ori-test": -20.25},
    "ImageNet16-120": {"x-valid": -45.0, "x-test": -45.5, "ori-test": -45.25},
}
LESS = -30.0  # the 12-epoch results are this much worse: picking them up would show


def mean(xs):
    return sum(xs) / len(xs)


# hand-computed ground truth (fractions), CIFAR-10 ori-test, 200 epochs, seed means
P_MEAN = (90.0 + 91.0 + 92.5) / 3
EXPECT_ALL = {P_NONREP: P_MEAN / 100, BEST: 0.9425, NONE: 0.10, P_REP: 0.85, Q: 0.70}
EXPECT_DEISO = {P_REP: (P_MEAN + 85.0) / 2 / 100, BEST: 0.9425, NONE: 0.10, Q_REP: 0.70}


# ----------------------------------------------------------------------------------------------- fixture builders
def results_count(arch, dataset, seed, epochs, accs):
    """ResultsCount state dict with entries at the last epoch only; accs: eval name -> accuracy (%)."""
    last = epochs - 1
    return {"name": dataset, "net_state_dict": None, "train_acc1es": {last: 99.0}, "train_acc5es": None,
            "train_losses": {last: 0.05}, "train_times": None,
            "arch_config": {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10},
            "params": 0.5, "flop": 80.0, "seed": seed, "epochs": epochs, "latency": None, "eval_names": list(accs),
            "eval_acc1es": {f"{k}@{last}": float(v) for k, v in accs.items()},
            "eval_losses": {f"{k}@{last}": 0.3 for k in accs}, "eval_times": {}}


def arch_results(index, arch, seed_accs, epochs, shift=0.0):
    """ArchResults state dict over all four datasets; seed_accs: seed -> CIFAR-10 ori-test accuracy (%)."""
    all_results, dataset_seed = {}, {}
    for dataset, evals in EVALS.items():
        dataset_seed[dataset] = sorted(seed_accs)
        for seed, acc in seed_accs.items():
            accs = {k: acc + off + shift if acc > 10.0 else acc for k, off in evals.items()}
            all_results[dataset, seed] = results_count(arch, dataset, seed, epochs, accs)
    return {"arch_index": index, "arch_str": arch, "clear_net_done": True, "dataset_seed": dataset_seed,
            "all_results": all_results}


def bench_dict(archs=ARCHS, nats=False):
    """The four-key benchmark dict: hp keys 'less'/'full' (NB201 .pth) or '12'/'200' (NATS)."""
    lo, hi = ("12", "200") if nats else ("less", "full")
    infos = {i: {lo: arch_results(i, a, {min(s): s[min(s)]}, 12, LESS), hi: arch_results(i, a, s, 200)}
             for i, (a, s) in enumerate(archs)}
    return {"meta_archs": [a for a, _ in archs], "total_archs": len(archs), "evaluated_indexes": set(infos),
            "arch2infos": infos}


def write_pbz2(path, obj):
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def write_pth(tmp_path, archs=ARCHS, name="NAS-Bench-201-v1_0-e61699.pth"):
    torch.save(bench_dict(archs), tmp_path / name)
    return tmp_path / name


def write_nats_file(tmp_path, archs=ARCHS, name="NATS-tss-v1_0-3ffb9.pickle.pbz2"):
    return write_pbz2(tmp_path / name, bench_dict(archs, nats=True))


def write_nats_dir(tmp_path, archs=ARCHS, name="NATS-tss-v1_0-3ffb9-simple"):
    d = tmp_path / name
    d.mkdir()
    data = bench_dict(archs, nats=True)
    write_pbz2(d / "meta.pickle.pbz2", {"meta_archs": data["meta_archs"], "total_archs": data["total_archs"]})
    for i, info in data["arch2infos"].items():
        write_pbz2(d / f"{i:06d}.pickle.pbz2", info)
    return d


WRITERS = {"pth": (write_pth, "nb201-v1_0"), "nats-file": (write_nats_file, "nats-tss-v1_0"),
           "nats-dir": (write_nats_dir, "nats-tss-v1_0")}


def one_line_error(exc, match, fn, *args, **kw):
    """fn raises exc with a single-line message matching match; returns the message."""
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def official_api(path):
    """The official API on a file of WRITERS (the cross-check: our reader never calls it)."""
    import nas_201_api
    import nats_bench
    if str(path).endswith(".pth"):
        return nas_201_api.NASBench201API(str(path), verbose=False)
    return nats_bench.create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)


# ----------------------------------------------------------------------------------------------------------- tests
def test_fixture_archs_are_what_the_tests_claim(space):
    assert space.canonical(P_NONREP) == space.canonical(P_REP) and P_NONREP != P_REP
    assert space.canonical_str(P_REP) == P_REP and space.canonical_str(P_NONREP) == P_REP
    assert space.canonical_str(Q) == Q_REP != Q
    assert space.canonical_str(NONE) == NONE and space.canonical_str(BEST) == BEST


@pytest.mark.parametrize("fmt", WRITERS)
def test_deiso_is_the_iso_class_mean_of_200_epoch_seed_means(fmt, tmp_path, space):
    write, version = WRITERS[fmt]
    df = nb201.load_nb201(write(tmp_path), space=space)
    assert df.attrs["version"] == f"{version}-cifar10-ori-test-deiso"
    assert list(df.columns) == ["arch", "acc", "n_members", "n_seeds"]
    got = dict(zip(df["arch"], df["acc"]))
    assert got == pytest.approx(EXPECT_DEISO, abs=1e-12)
    assert got[P_REP] == pytest.approx(0.8808333333333334)  # ((90 + 91 + 92.5) / 3 + 85) / 2 / 100
    members = dict(zip(df["arch"], df["n_members"]))
    seeds = dict(zip(df["arch"], df["n_seeds"]))
    assert members == {P_REP: 2, BEST: 1, NONE: 1, Q_REP: 1}
    assert seeds == {P_REP: 4, BEST: 2, NONE: 3, Q_REP: 1}
    assert list(df["arch"]) == sorted(df["arch"], key=space.canonical)  # rows in representative order
    assert df["acc"].between(0, 1).all()


@pytest.mark.parametrize("fmt", WRITERS)
def test_all_protocol_keeps_every_file_string(fmt, tmp_path, space):
    write, version = WRITERS[fmt]
    df = nb201.load_nb201(write(tmp_path), protocol="all", space=space)
    assert df.attrs["version"] == f"{version}-cifar10-ori-test-all"
    assert len(df) == len(ARCHS) and list(df["index"]) == list(range(len(ARCHS)))
    assert list(df["arch"]) == [a for a, _ in ARCHS]  # official strings, not canonicalised (P_NONREP, Q stay)
    assert dict(zip(df["arch"], df["acc"])) == pytest.approx(EXPECT_ALL, abs=1e-12)
    assert list(df["n_seeds"]) == [len(s) for _, s in ARCHS]
    # the 12-epoch values (the APIs' default hp) are 30 points lower: not what was read
    assert df.loc[df["arch"] == BEST, "acc"].item() != pytest.approx((94.0 + LESS) / 100)


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("dataset, metric", [(d, m) for d, evals in EVALS.items() for m in evals])
def test_every_dataset_metric_pair_against_per_seed_reads(fmt, dataset, metric, tmp_path, space):
    """Each (dataset, metric) equals the seed mean of the per-seed eval accuracies read by query_by_index."""
    write, version = WRITERS[fmt]
    path = write(tmp_path)
    df = nb201.load_nb201(path, dataset=dataset, metric=metric, protocol="all", space=space)
    assert df.attrs["version"] == f"{version}-{dataset}-{metric}-all"
    api = official_api(path)
    for i, (arch, seed_accs) in enumerate(ARCHS):
        runs = api.query_by_index(i, dataset, hp="200")
        per_seed = [r.get_eval(metric)["accuracy"] for r in runs.values()]
        hand = mean([a + EVALS[dataset][metric] if a > 10.0 else a for a in seed_accs.values()])
        assert sorted(runs) == sorted(seed_accs)
        assert df["acc"].iat[i] == pytest.approx(mean(per_seed) / 100) == pytest.approx(hand / 100)


def test_dispatch_from_groundtruth_load(tmp_path, space):
    pth = write_pth(tmp_path)
    df = groundtruth.load(str(pth), space)
    assert df.attrs["version"] == "nb201-v1_0-cifar10-ori-test-deiso" and len(df) == 4
    df = groundtruth.load(f"{pth}?dataset=cifar10-valid&metric=x-valid&protocol=all", space)
    assert df.attrs["version"] == "nb201-v1_0-cifar10-valid-x-valid-all"
    assert df["acc"].iat[0] == pytest.approx((P_MEAN - 1.0) / 100)
    df = groundtruth.load(pth, space, dataset="cifar100", metric="x-test")
    assert df.attrs["version"] == "nb201-v1_0-cifar100-x-test-deiso"
    assert groundtruth.load(write_nats_dir(tmp_path), space).attrs["version"] == "nats-tss-v1_0-cifar10-ori-test-deiso"
    one_line_error(ValueError, "unknown option\\(s\\) epochs", groundtruth.load, f"{pth}?epochs=12", space)
    one_line_error(ValueError, "apply only to official", groundtruth.load, tmp_path / "t.csv", space, metric="x")
    csv = tmp_path / "t.csv"
    csv.write_text(f"arch,acc\n{Q},0.5\n")
    assert list(groundtruth.load(csv, space)["arch"]) == [Q_REP]  # the CSV path is unchanged


def test_version_from_file_name():
    assert nb201.file_version("/x/NAS-Bench-201-v1_0-e61699.pth") == "nb201-v1_0"
    assert nb201.file_version("NAS-Bench-201-v1_1-096897.pth") == "nb201-v1_1"
    assert nb201.file_version("NATS-tss-v1_0-3ffb9.pickle.pbz2") == "nats-tss-v1_0"
    assert nb201.file_version("NATS-tss-v1_0-3ffb9-simple") == "nats-tss-v1_0"
    assert nb201.file_version("my-bench.pickle.pbz2") == "my-bench"
    assert nb201.file_version("gt.pth") == "gt"


def test_unknown_file_name_versions_by_stem(tmp_path, space):
    df = nb201.load_nb201(write_pth(tmp_path, name="gt.pth"), space=space)
    assert df.attrs["version"] == "gt-cifar10-ori-test-deiso"


def test_numpy_scalars_in_pth_load_without_full_unpickling(tmp_path, space):
    """torch >= 2.6's weights_only=True refuses numpy scalars; they are allow-listed, no unsafe fallback."""
    np = pytest.importorskip("numpy")
    data = bench_dict()
    rc = data["arch2infos"][1]["full"]["all_results"]["cifar10", 777]
    rc["eval_acc1es"]["ori-test@199"] = np.float64(94.0)
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(data, path)
    with pytest.raises(Exception):
        torch.load(path)  # the pitfall: the official API's plain torch.load fails on this file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = nb201.load_nb201(path, protocol="all", space=space)
    assert df.attrs["version"] == "nb201-v1_1-cifar10-ori-test-all"
    assert dict(zip(df["arch"], df["acc"])) == pytest.approx(EXPECT_ALL)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_wrong_kind_of_file_is_one_line(tmp_path, space):
    def fails(path, match, exc=ValueError):
        msg = one_line_error(exc, match, nb201.load_nb201, path, space=space)
        assert str(path) in msg
        return msg

    csv = tmp_path / "gt.pth"
    csv.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.1\n")
    fails(csv, "is not a torch.save file")
    rand = tmp_path / "random.pth"
    rand.write_bytes(pickle.dumps({"a": 1}))
    fails(rand, "is a plain pickle, not a torch.save file")
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": [1.0]}}, other)
    fails(other, "lacks key\\(s\\) meta_archs, arch2infos, evaluated_indexes")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    fails(tmp_path / "list.pth", "holds a list, not a benchmark dict")
    torch.save(bench_dict(nats=True), tmp_path / "nats-style.pth")  # '12'/'200' hp keys where 'less'/'full' belong
    fails(tmp_path / "nats-style.pth", "its results lack the 'full' key of an NB201 .pth")
    torch.save({"meta_archs": [torch.zeros(1)]}, tmp_path / "tensor.pth")  # a benchmark holds no weights
    fails(tmp_path / "tensor.pth", "refused: it holds tensors")
    np = pytest.importorskip("numpy")  # numpy scalars force our own loader: its structure checks speak then
    torch.save({"meta_archs": [np.float64(1.0)]}, tmp_path / "np.pth")
    fails(tmp_path / "np.pth", "lacks key\\(s\\) arch2infos, evaluated_indexes")
    torch.save([np.float64(1.0)], tmp_path / "nplist.pth")
    fails(tmp_path / "nplist.pth", "holds a list, not a benchmark dict")
    (tmp_path / "text.pickle.pbz2").write_text("not bz2")
    fails(tmp_path / "text.pickle.pbz2", "is not a bz2-compressed pickle")
    fails(write_pbz2(tmp_path / "rand.pickle.pbz2", {"a": 1}), "lacks key\\(s\\) meta_archs")
    fails(write_pbz2(tmp_path / "NATS-sss-v1_0-50262.pickle.pbz2", {}), "size search space \\(sss\\)")
    sss = [(f"{c}:64:32:16:{c}", {777: 80.0}) for c in (8, 16)]
    fails(write_nats_file(tmp_path, archs=sss, name="sizes.pickle.pbz2"), "size search space \\(sss\\) benchmark")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "directory without meta.pickle.pbz2")
    (tmp_path / "gt.txt").write_text("x")
    fails(tmp_path / "gt.txt", "not an official benchmark file by its name")
    fails(tmp_path / "missing.pth", "not found", exc=FileNotFoundError)


def test_only_12_epoch_results_is_one_line(tmp_path, space):
    data = bench_dict(nats=True)
    for info in data["arch2infos"].values():
        del info["200"]
    path = write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", data)
    one_line_error(ValueError, "arch 0 .* has no 200-epoch results \\(hp keys: 12\\)", nb201.load_nb201, path,
                   space=space)


def test_missing_fast_mode_arch_file_is_one_line(tmp_path, space):
    d = write_nats_dir(tmp_path)
    (d / "000003.pickle.pbz2").unlink()
    one_line_error(ValueError, "arch 3 has no file 000003.pickle.pbz2",
                   nb201.load_nb201, d, space=space)


def test_missing_dataset_is_one_line(tmp_path, space):
    data = bench_dict()
    ar = data["arch2infos"][2]["full"]
    del ar["dataset_seed"]["cifar100"]
    path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    torch.save(data, path)
    one_line_error(ValueError, "arch 2 .* has no 200-epoch results on cifar100", nb201.load_nb201, path,
                   dataset="cifar100", metric="x-test", space=space)


@pytest.mark.parametrize("fmt", WRITERS)
def test_arch_string_not_in_space_is_one_line(fmt, tmp_path, space):
    bad = "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    write, _ = WRITERS[fmt]
    path = write(tmp_path, archs=ARCHS[:3] + [(bad, {777: 50.0})])
    msg = one_line_error(ValueError, "does not match the nb201 space: 1 of 4 architecture strings are not NB201 "
                         "cells, e.g. index 3", nb201.load_nb201, path, space=space)
    assert "'conv~0'" in msg


def test_ground_truth_of_another_space_is_one_line(tmp_path, space):
    darts = [(f"Genotype(normal=[('sep_conv_3x3', {i})], normal_concat=[2])", {777: 90.0}) for i in range(3)]
    path = write_pth(tmp_path, archs=darts)
    one_line_error(ValueError, "does not match the nb201 space: 3 of 3 architecture strings are not NB201 cells, "
                   "e.g. index 0", nb201.load_nb201, path, space=space)


def test_bad_options_are_one_line(tmp_path, space):
    path = write_pth(tmp_path)
    one_line_error(ValueError, "unknown NB201 dataset 'cifar-10'", nb201.load_nb201, path, dataset="cifar-10",
                   space=space)
    one_line_error(ValueError, "metric 'x-test' is not reported for cifar10; choose one of ori-test",
                   nb201.load_nb201, path, metric="x-test", space=space)
    one_line_error(ValueError, "unknown ground-truth protocol 'iso'", nb201.load_nb201, path, protocol="iso",
                   space=space)

    class Other:
        name = "nb301"
    one_line_error(ValueError, "belongs to space nb201, not 'nb301'", nb201.load_nb201, path, space=Other())


@pytest.mark.parametrize("fmt", WRITERS)
def test_read_once_in_c_without_the_official_apis_or_torch_load(fmt, tmp_path, space, monkeypatch):
    """One restricted C unpickling per file: no official API, no torch.load (its pure-Python weights-only reader
    took 80% of a 32-48 s load), and the same table as through the APIs."""
    path = WRITERS[fmt][0](tmp_path)
    want = nb201.load_nb201(path, protocol="all", space=space)
    for module in ("nas_201_api", "nats_bench"):
        monkeypatch.setitem(__import__("sys").modules, module, None)  # `import module` raises ImportError
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    got = nb201.load_nb201(path, protocol="all", space=space)
    assert got.equals(want) and dict(zip(got["arch"], got["acc"])) == pytest.approx(EXPECT_ALL, abs=1e-12)


class Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (__import__("os").system, (f"touch {self.target}",))


@pytest.mark.parametrize("fmt", ["pth", "nats-file"])
def test_malicious_benchmark_pickle_is_refused_and_runs_nothing(fmt, tmp_path, space):
    target = tmp_path / "pwned"
    data = bench_dict(nats=fmt != "pth")
    data["total_archs"] = Evil(target)
    if fmt == "pth":
        torch.save(data, tmp_path / "evil.pth")
        path = tmp_path / "evil.pth"
    else:
        path = write_pbz2(tmp_path / "evil.pickle.pbz2", data)
    one_line_error(ValueError, "refused: it asks for posix.system", nb201.load_nb201, path, space=space)
    assert not target.exists()


def load_bench():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("nb201_load", Path(__file__).parents[1] / "bench/nb201_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="module")
def v1_0(tmp_path_factory):
    """A legacy torch.save stream in the NAS-Bench-201-v1_0 layout, as bench/nb201_load.py writes it: 1,200 archs
    (two SETITEMS batches of arch2infos), per-epoch lists."""
    path = tmp_path_factory.mktemp("v1_0") / "NAS-Bench-201-v1_0-e61699.pth"
    load_bench().write(path, n_archs=1200)
    return path


@pytest.mark.slow
def test_streamed_read_frees_entries_as_it_goes_and_gives_the_same_table(v1_0, space, monkeypatch):
    """The arch2infos entries leave memory batch by batch (issue 25 #11: within memory), same table as whole."""
    whole = nb201.load_nb201(v1_0, protocol="all", space=space)           # files under DRAIN_EVERY: read whole
    monkeypatch.setattr(nb201.files, "DRAIN_EVERY", 1 << 20)
    seen, drain = [], nb201.files._Drain.drain

    def spy(self):
        seen.append(0 if self.target is None else len(self.target))
        drain(self)
    monkeypatch.setattr(nb201.files._Drain, "drain", spy)
    streamed = nb201.load_nb201(v1_0, protocol="all", space=space)
    assert seen.count(1000) == 1 and streamed.equals(whole) and len(whole) == 1200     # arch 0-999 left early


@pytest.mark.slow
def test_a_stream_that_refers_back_is_read_whole(v1_0, space, monkeypatch):
    """A reference to an entry the drain dropped fails loudly inside the stream; the file is then read whole."""
    want = nb201.load_nb201(v1_0, protocol="all", space=space)
    monkeypatch.setattr(nb201.files, "DRAIN_EVERY", 1 << 20)
    monkeypatch.setattr(nb201.files._Drain, "drain", lambda self: self.unpickler.memo.clear())
    assert nb201.load_nb201(v1_0, protocol="all", space=space).equals(want)


@pytest.mark.slow
def test_legacy_v1_0_layout_of_the_load_bench_matches_the_official_api(tmp_path, space):
    """bench/nb201_load.py writes the legacy torch.save stream of NAS-Bench-201-v1_0 (per-epoch lists, 4 datasets,
    'less' and 'full'); the official API reads it, and our table equals what get_more_info gives."""
    path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    load_bench().write(path, n_archs=40, n_seeds=2)
    api = official_api(path)
    for dataset, metrics in nb201.METRICS.items():
        key = {"x-valid": "valid-accuracy", "x-test": "test-accuracy", "ori-test": "test-accuracy"}
        for metric in metrics:
            df = nb201.load_nb201(path, dataset=dataset, metric=metric, protocol="all", space=space)
            name = "valtest-accuracy" if metric == "ori-test" and dataset not in ("cifar10", "cifar10-valid") \
                else key[metric]
            want = [api.get_more_info(i, dataset, hp="200", is_random=False)[name] / 100 for i in range(40)]
            assert list(df["acc"]) == pytest.approx(want, abs=1e-12)
    assert len(nb201.load_nb201(path, space=space)) == len({space.canonical_str(a) for a in api.meta_archs})


@pytest.mark.parametrize("content, match", [
    (b"", "is empty \\(0 bytes\\); write a header arch,acc"),
    (b"arch,acc\n", "has a header but no rows"),
    (f"arch,acc\n{BEST},0.9\n{NONE},nan\n".encode(), "line 3: acc='nan' is not a finite number"),
    (f"arch,acc\n{BEST},0.9\n{NONE},\n".encode(), "line 3: acc='' is not a finite number"),
    (f"arch,acc\n{BEST},abc\n".encode(), "line 2: acc='abc' is not a finite number"),
    (f"arch,acc\n{BEST},0.9 # caf\xe9\n".encode("latin-1"), "is not UTF-8 text \\(byte \\d+: b.\\\\xe9"),
])
def test_csv_truth_is_fully_checked_on_load(content, match, tmp_path, space):
    """Issue 25 #5: NaN / non-numeric acc and a header-only CSV failed only after training; a 0-byte CSV and a
    non-UTF-8 file did not name the file."""
    path = tmp_path / "gt.csv"
    path.write_bytes(content)
    msg = one_line_error(ValueError, match, groundtruth.load, path, space)
    assert str(path) in msg
