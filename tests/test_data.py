"""Tests for closekit.data: embedded assets, idx / CIFAR-10 loaders, transforms and batches."""
import gzip
import hashlib
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from closekit import data as D


def _write_idx(path: Path, a: np.ndarray, gz: bool):
    """Independent idx writer for fixtures (magic 0x0000 08 ndim, big-endian dims)."""
    buf = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()
    if gz:
        path, buf = path.with_name(path.name + ".gz"), gzip.compress(buf)
    path.write_bytes(buf)


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def emb():
    return D.load("embedded")


# ----------------------------------------------------------------------------- embedded
def test_embedded_shapes_and_norm(emb):
    assert (len(emb.train), len(emb.valid), len(emb.test)) == (9600, 2400, 10000)
    assert emb.train.x.shape == (9600, 1, 28, 28) and emb.train.x.dtype == torch.float32
    assert emb.train.y.dtype == torch.int64
    assert (emb.num_classes, emb.in_channels, emb.image_size, emb.augment) == (10, 1, 28, True)
    assert abs(emb.train.x.mean().item()) < 0.05 and abs(emb.train.x.std().item() - 1) < 0.05


def test_embedded_class_balance_and_file_order():
    y = D.read_idx(D.EMBEDDED_DIR / "train-labels-idx1-ubyte.gz")
    assert y.shape == (12000,) and (np.bincount(y) == 1200).all()
    assert D.read_idx(D.EMBEDDED_DIR / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    official = Path(D.DEBIAN_FMNIST) / "train-labels-idx1-ubyte.gz"
    if official.exists():  # the subset is the first 1200 per class, in file order
        full = D.read_idx(official)
        keep = np.sort(np.concatenate([np.flatnonzero(full == c)[:1200] for c in range(10)]))
        assert (full[keep] == y).all()


def test_embedded_checksum_mismatch(tmp_path):
    d = tmp_path / "fm"
    shutil.copytree(D.EMBEDDED_DIR, d)
    assert len(D.load("embedded", root=str(d), train_limit=100).train) == 80
    p = d / "t10k-labels-idx1-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[-10] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(RuntimeError) as e:
        D.load("embedded", root=str(d))
    msg = _one_line(e)
    assert "t10k-labels-idx1-ubyte.gz" in msg and "build_embedded_fmnist.py" in msg


def test_embedded_resolution_and_channels():
    d32 = D.load("embedded", image_size=32, train_limit=50)
    assert d32.train.x.shape == (40, 1, 32, 32) and d32.image_size == 32
    border = d32.train.x[:, :, :2, :]  # zero-padded in pixel space = -mean/std after normalising
    assert torch.allclose(border, torch.full_like(border, -0.2860 / 0.3530))
    d16 = D.load("embedded", image_size=16, channels=3, train_limit=50)
    assert d16.train.x.shape == (40, 3, 16, 16) and d16.test.x.shape == (10000, 3, 16, 16)
    assert d16.in_channels == 3 and torch.equal(d16.train.x[:, 0], d16.train.x[:, 2])
    assert D.load("synthetic", image_size=12).train.x.shape[-2:] == (12, 12)


# ----------------------------------------------------------------------------- batches
def test_batches_epoch_cover_and_determinism():
    s = D.Split(torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 8, 8).contiguous(), torch.arange(10))
    out = list(D.batches(s, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(y) for _, y in out] == [4, 4, 2]
    ys = torch.cat([y for _, y in out])
    assert sorted(ys.tolist()) == list(range(10)) and ys.tolist() != list(range(10))
    assert all(torch.equal(x[:, 0, 0, 0], y.float()) for x, y in out)
    again = torch.cat([y for _, y in D.batches(s, 4, shuffle=True, generator=torch.Generator().manual_seed(1))])
    other = torch.cat([y for _, y in D.batches(s, 4, shuffle=True, generator=torch.Generator().manual_seed(2))])
    assert torch.equal(ys, again) and not torch.equal(ys, other)
    assert [y.tolist() for _, y in D.batches(s, 4, shuffle=False)][0] == [0, 1, 2, 3]
    assert len(list(D.batches(s, 3, shuffle=False, max_batches=2))) == 2


def test_batches_augment():
    data = D.load("synthetic")
    a = [x for x, _ in D.batches(data.train, 64, shuffle=True, augment=True,
                                 generator=torch.Generator().manual_seed(0))]
    b = [x for x, _ in D.batches(data.train, 64, shuffle=True, augment=True,
                                 generator=torch.Generator().manual_seed(0))]
    plain = [x for x, _ in D.batches(data.train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert a[0].shape == plain[0].shape == (64, 3, 8, 8)
    assert not torch.equal(a[0], plain[0])
    # a crop of 8x8 with pad 1 keeps a 7x7 window of the image (possibly flipped)
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(32, 1, 1, 1)
    y = D.augment_batch(x, torch.Generator().manual_seed(3))
    assert ((y == 0) | torch.isin(y, x)).all() and (y == 0).any()


# ----------------------------------------------------------------------------- fashion-mnist files
def _fmnist_fixture(d: Path, gz: bool, n=20, m=6):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 256, (n, 28, 28)), np.arange(n) % 10, rng.integers(0, 256, (m, 28, 28)), np.arange(m) % 10)
    for name, a in zip(D.FMNIST_FILES, arrays):
        _write_idx(d / name, a, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_fixture(tmp_path, gz):
    sub = tmp_path if gz else tmp_path / "FashionMNIST" / "raw"
    trx, try_, _, tey = _fmnist_fixture(sub, gz)
    d = D.load("fashion-mnist", root=str(tmp_path), augment=False)
    assert (len(d.train), len(d.valid), len(d.test)) == (16, 4, 6) and not d.augment
    assert d.train.y.tolist() == try_[:16].tolist() and d.valid.y.tolist() == try_[16:].tolist()
    pix = d.train.x[3, 0] * 0.3530 + 0.2860
    assert torch.allclose(pix * 255, torch.as_tensor(trx[3], dtype=torch.float32), atol=1e-3)
    assert d.test.y.tolist() == tey.tolist()


def test_fashion_mnist_missing_and_bad_idx(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        D.load("fashion-mnist", root=str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in _one_line(e) and "dataset-fashion-mnist" in str(e.value)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x07\x01\x00\x00\x00\x01x"))
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(bad)
    with pytest.raises(KeyError, match="synthetic"):
        D.load("imagenet")


# ----------------------------------------------------------------------------- cifar10
def test_cifar10_fixture(tmp_path, monkeypatch):
    tv = pytest.importorskip("torchvision")
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    files = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = [(4 * i + j) % 10 for j in range(4)]
        files[name] = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": labels}
    files["batches.meta"] = {"label_names": [f"c{k}" for k in range(10)]}
    for name, obj in files.items():
        (base / name).write_bytes(pickle.dumps(obj))
    md5 = {n: hashlib.md5((base / n).read_bytes()).hexdigest() for n in files}
    C = tv.datasets.CIFAR10
    monkeypatch.setattr(C, "train_list", [[f"data_batch_{k}", md5[f"data_batch_{k}"]] for k in range(1, 6)])
    monkeypatch.setattr(C, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(C, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})
    d = D.load("cifar10", root=str(tmp_path))
    assert (len(d.train), len(d.valid), len(d.test)) == (16, 4, 4)
    assert d.train.x.shape == (16, 3, 32, 32) and d.in_channels == 3 and d.image_size == 32
    assert d.train.y.tolist() == [k % 10 for k in range(16)] and d.valid.y.tolist() == [k % 10 for k in range(16, 20)]
    first = torch.as_tensor(files["data_batch_1"]["data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in D.CIFAR10_STATS)
    assert torch.allclose(d.train.x[0] * std + mean, first, atol=1e-5)
    assert D.load("cifar10", root=str(tmp_path), image_size=16).train.x.shape == (16, 3, 16, 16)
    with pytest.raises(FileNotFoundError) as e:
        D.load("cifar10", root=str(tmp_path / "empty"))
    assert "cifar-10-batches-py" in _one_line(e) and "download" in str(e.value)


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_deterministic():
    a, b = D.load("synthetic"), D.load("synthetic")
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert (len(a.train) + len(a.valid), len(a.test), a.num_classes, a.train.x.shape[1:]) == (512, 256, 10, (3, 8, 8))
    assert abs(a.train.x.mean().item()) < 0.1
    assert set(D.DATASETS) == {"embedded", "fashion-mnist", "cifar10", "synthetic"}
