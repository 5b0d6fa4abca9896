"""Datasets held in memory as tensors, and a plain generator of (augmented) batches.

Every dataset is loaded once into float32 tensors [N, C, H, W] that are already resized
and normalised; `batches` slices them into batches, with optional random crop + flip done
vectorised on the whole batch (no DataLoader, no per-image PIL transforms), with all random
numbers drawn from one CPU `torch.Generator` so that a run can be resumed exactly.

Splits follow CLOSE: `train` = the first `train_portion` of the official training set in
file order (supernet / stand-alone training), `valid` = the rest (one-shot scoring; for
CIFAR-10 at 0.8 this is train[0:40000] / train[40000:50000]), `test` = the official test set.

Resolution (applied once at load time, on [0,1] pixels, before normalisation):
  * image_size None or native: unchanged;
  * 28x28 inputs (Fashion-MNIST): 32 = zero-pad 2 px per side (black = background),
    16 = zero-pad to 32 then 2x2 average-pool;
  * anything else: bilinear resize with antialiasing.
Normalisation is per channel with fixed constants: CIFAR-10 mean (0.4914, 0.4822, 0.4465)
std (0.2470, 0.2435, 0.2616); Fashion-MNIST mean 0.2860 std 0.3530 (the statistics of the
60k official training images in [0,1] units at 28x28, so padded images are not exactly
zero-mean). The crop padding of `batches` is zero in *normalised* units (as in pycls).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDED_DIR = Path(__file__).parent / "assets" / "fmnist_mini"
DEBIAN_FMNIST = "/usr/share/datasets/fashion-mnist"
BUILD_SCRIPT = "scripts/build_embedded_fmnist.py"
FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FMNIST_STATS = ((0.2860,), (0.3530,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@dataclass
class Split:
    x: torch.Tensor  # float32 [N, C, H, W], resized and normalised
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        """Number of examples."""
        return len(self.y)


@dataclass
class Data:
    name: str
    train: Split           # supernet / stand-alone training
    valid: Split           # held-out part of the training set, for one-shot scoring
    test: Split | None     # official test set
    num_classes: int
    in_channels: int
    image_size: int
    augment: bool          # whether training batches should use crop + flip


class Raw(NamedTuple):
    """What a registry loader returns: uint8 images [N, C, H, W], labels, and pixel stats."""
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: tuple
    std: tuple


# ----------------------------------------------------------------------------- idx files
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an idx file (as used by (Fashion-)MNIST), gzipped or not."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:2] == b"\x1f\x8b":
        buf = gzip.decompress(buf)
    if len(buf) < 4 or buf[:2] != b"\x00\x00" or buf[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number {buf[:4].hex()})")
    ndim, dtype = buf[3], np.dtype(_IDX_DTYPES[buf[2]])
    shape = tuple(int(d) for d in np.frombuffer(buf, ">i4", ndim, offset=4))
    start = 4 + 4 * ndim
    if len(buf) != start + int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: malformed idx file (header says {shape}, {len(buf) - start} data bytes)")
    return np.frombuffer(buf, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file, gzipped with mtime=0 when path ends in .gz."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    buf = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">i4").tobytes() + a.tobytes()
    if str(path).endswith(".gz"):
        buf = gzip.compress(buf, compresslevel=9, mtime=0)
    Path(path).write_bytes(buf)


def sha256(path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _find_idx(dirs: list[Path]) -> list[Path] | None:
    """The four Fashion-MNIST idx files (.gz or raw) in the first directory that has them all."""
    for d in dirs:
        found = [next((p for p in (d / (f + ".gz"), d / f) if p.is_file()), None) for f in FMNIST_FILES]
        if all(found):
            return found
    return None


def _from_idx(paths: list[Path], stats) -> Raw:
    """Raw dataset from the four idx files (images [N, H, W] get a channel axis)."""
    trx, tr_y, tex, te_y = (read_idx(p) for p in paths)
    return Raw(trx[:, None], tr_y, tex[:, None], te_y, *stats)


# ----------------------------------------------------------------------------- loaders
def _embedded(root: str | None, download: bool) -> Raw:
    """Fashion-MNIST subset shipped with the package (12k class-balanced train + full 10k test)."""
    d = Path(root) if root else EMBEDDED_DIR
    sums_file = d / "SHA256SUMS"
    if not sums_file.is_file():
        raise FileNotFoundError(f"embedded dataset missing in {d}: run `python {BUILD_SCRIPT}`")
    sums = dict(line.split()[::-1] for line in sums_file.read_text().splitlines() if line.strip())
    paths = [d / (f + ".gz") for f in FMNIST_FILES]
    for p in paths:
        if not p.is_file() or sha256(p) != sums.get(p.name):
            raise RuntimeError(f"embedded dataset file {p} is missing or fails its sha256 check: "
                               f"rerun `python {BUILD_SCRIPT}` to rebuild it")
    return _from_idx(paths, FMNIST_STATS)


def _fashion_mnist(root: str | None, download: bool) -> Raw:
    """Full Fashion-MNIST from idx files: root, root/FashionMNIST/raw, or Debian's package."""
    base = Path(root) if root else Path(DEBIAN_FMNIST)
    dirs = [base, base / "FashionMNIST" / "raw"]
    paths = _find_idx(dirs)
    if paths is None and download and root:
        import torchvision
        torchvision.datasets.FashionMNIST(root, train=True, download=True)
        paths = _find_idx(dirs)
    if paths is None:
        raise FileNotFoundError(f"Fashion-MNIST idx files not found in {base} (or {dirs[1]}): install Debian's "
                                f"`dataset-fashion-mnist` package or pass root/data_dir pointing at them")
    return _from_idx(paths, FMNIST_STATS)


def _cifar10(root: str | None, download: bool) -> Raw:
    """CIFAR-10 through torchvision (root defaults to ./data)."""
    import torchvision
    root = root or "data"
    try:
        tr, te = (torchvision.datasets.CIFAR10(root, train=t, download=download) for t in (True, False))
    except RuntimeError:
        raise FileNotFoundError(f"CIFAR-10 not found or corrupted in {os.path.join(root, 'cifar-10-batches-py')}: "
                                f"set download: true or put cifar-10-batches-py in {root}") from None
    chw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    return Raw(chw(tr.data), np.asarray(tr.targets), chw(te.data), np.asarray(te.targets), *CIFAR10_STATS)


def _synthetic(root: str | None, download: bool) -> Raw:
    """Tiny deterministic dataset for tests: 512 train + 256 test 3x8x8 images, 10 classes."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(10, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (768,), generator=g)
    x = 0.6 * patterns[y] + 0.4 * torch.rand(768, 3, 8, 8, generator=g)
    x = (x * 255).round().to(torch.uint8).numpy()
    xf = x[:512].astype(np.float64) / 255
    mean, std = xf.mean(axis=(0, 2, 3)), xf.std(axis=(0, 2, 3))
    return Raw(x[:512], y[:512].numpy(), x[512:], y[512:].numpy(), tuple(mean), tuple(std))


DATASETS: dict[str, Callable[[str | None, bool], Raw]] = {
    "embedded": _embedded,
    "fashion-mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "synthetic": _synthetic,
}


# ----------------------------------------------------------------------------- load
def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [N, C, H, W] images in [0,1] to size x size (see module docstring)."""
    n = x.shape[-1]
    if size == n:
        return x
    if n == 28 and size in (16, 32):
        x = F.pad(x, (2, 2, 2, 2))
        return F.avg_pool2d(x, 2) if size == 16 else x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _prepare(images: np.ndarray, labels: np.ndarray, size: int, channels: int, mean, std) -> Split:
    """uint8 images -> resized, channel-converted, normalised float32 Split."""
    x = _resize(torch.from_numpy(np.ascontiguousarray(images)).float().div_(255), size)
    if channels != x.shape[1]:
        x = x.repeat(1, channels, 1, 1)
        mean, std = mean * channels, std * channels
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    return Split(x.sub_(m).div_(s).contiguous(), torch.as_tensor(labels, dtype=torch.int64))


def check_name(name: str) -> None:
    """Refuse an unknown dataset name in one line naming the config key."""
    if name not in DATASETS:
        raise KeyError(f"dataset {name!r} is unknown; set dataset to one of {', '.join(sorted(DATASETS))}")


def load(name: str, *, root: str | None = None, image_size: int | None = None, channels: int | None = None,
         train_portion: float = 0.8, train_limit: int | None = None, download: bool = False,
         augment: bool = True) -> Data:
    """Load a registered dataset into memory as train / valid / test Splits."""
    check_name(name)
    if not 0 < train_portion <= 1:
        raise ValueError(f"train_portion must be in (0, 1], got {train_portion}")
    for key, v in (("image_size", image_size), ("channels", channels), ("train_limit", train_limit)):
        if v is not None and v < 1:
            raise ValueError(f"{key}={v} must be >= 1 or None (native / all)")
    raw = DATASETS[name](root, download)
    native_c, native_size = raw.train_x.shape[1], raw.train_x.shape[-1]
    size, c = image_size or native_size, channels or native_c
    if c != native_c and not (native_c == 1 and c == 3):
        raise ValueError(f"{name}: cannot convert {native_c} channels to {c} (only 1 -> 3 is supported)")
    n = len(raw.train_y) if train_limit is None else min(train_limit, len(raw.train_y))
    n_train = int(round(n * train_portion))
    mean, std = tuple(raw.mean), tuple(raw.std)
    train = _prepare(raw.train_x[:n_train], raw.train_y[:n_train], size, c, mean, std)
    valid = _prepare(raw.train_x[n_train:n], raw.train_y[n_train:n], size, c, mean, std)
    test = _prepare(raw.test_x, raw.test_y, size, c, mean, std)
    num_classes = int(max(raw.train_y.max(), raw.test_y.max())) + 1
    return Data(name, train, valid, test, num_classes, c, size, augment)


# ----------------------------------------------------------------------------- batches
def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding of size//8 and random horizontal flip, per image."""
    b, c, h, w = x.shape
    pad = h // 8
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    out = xp[bi, ci, rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def batches(split: Split, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
            augment: bool = False, device="cpu", max_batches: int | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches over one epoch (drop_last=False), moved to device."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches is not None and i >= max_batches:
            return
        if order is None:
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            x, y = split.x[idx], split.y[idx]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment:
            x = augment_batch(x, generator)
        yield x, y
