"""Dataset registry (embedded Fashion-MNIST subset, Fashion-MNIST, CIFAR-10, synthetic) held in memory as resized,
normalised tensors, and batches (crop + flip) drawing every random number from one CPU generator (exact resume).

CLOSE's splits: `train` the first `train_portion` of the official training set in file order, `valid` the rest
(one-shot scoring), `test` the official test set. 28x28 -> 32 zero-pads, -> 16 pads then 2x2-pools, other sizes are
bilinear; normalisation uses fixed per-channel constants; the crop pads zeros in normalised units (as pycls).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

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


def read_idx(path) -> np.ndarray:
    """Read a uint8 idx file (as (Fashion-)MNIST ships them), gzipped or not."""
    buf = Path(path).read_bytes()
    if buf[:2] == b"\x1f\x8b":
        buf = gzip.decompress(buf)
    if len(buf) < 4 or buf[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not a uint8 idx file (bad magic number {buf[:4].hex()})")
    shape = tuple(int(d) for d in np.frombuffer(buf, ">i4", buf[3], offset=4))
    data = np.frombuffer(buf, np.uint8, offset=4 + 4 * buf[3])
    if data.size != np.prod(shape):
        raise ValueError(f"{path}: malformed idx file (header says {shape}, {data.size} data bytes)")
    return data.reshape(shape).copy()


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file, gzipped with mtime=0 when path ends in .gz."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    buf = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">i4").tobytes() + a.tobytes()
    Path(path).write_bytes(gzip.compress(buf, compresslevel=9, mtime=0) if str(path).endswith(".gz") else buf)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _find_idx(dirs: list[Path]) -> list[Path] | None:
    """The four Fashion-MNIST idx files (.gz or raw) in the first directory that has them all."""
    for d in dirs:
        found = [next((p for p in (d / (f + ".gz"), d / f) if p.is_file()), None) for f in FMNIST_FILES]
        if all(found):
            return found
    return None


def _from_idx(paths: list[Path]):
    """Fashion-MNIST from its four idx files (images [N, H, W] get a channel axis)."""
    trx, tr_y, tex, te_y = (read_idx(p) for p in paths)
    return trx[:, None], tr_y, tex[:, None], te_y, *FMNIST_STATS


def _embedded(root, download):
    """Fashion-MNIST subset shipped with the package (12k class-balanced train + full 10k test), sha256-checked."""
    d = Path(root) if root else EMBEDDED_DIR
    if not (d / "SHA256SUMS").is_file():
        raise FileNotFoundError(f"embedded dataset missing in {d}: run `python {BUILD_SCRIPT}`")
    sums = dict(line.split()[::-1] for line in (d / "SHA256SUMS").read_text().splitlines() if line.strip())
    paths = [d / (f + ".gz") for f in FMNIST_FILES]
    for p in paths:
        if not p.is_file() or sha256(p) != sums.get(p.name):
            raise RuntimeError(f"embedded dataset file {p} is missing or fails its sha256 check: "
                               f"rerun `python {BUILD_SCRIPT}` to rebuild it")
    return _from_idx(paths)


def _fashion_mnist(root, download):
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
    return _from_idx(paths)


def _cifar10(root, download):
    """CIFAR-10 through torchvision (root defaults to ./data)."""
    import torchvision
    root = root or "data"
    try:
        tr, te = (torchvision.datasets.CIFAR10(root, train=t, download=download) for t in (True, False))
    except RuntimeError:
        raise FileNotFoundError(f"CIFAR-10 not found or corrupted in {os.path.join(root, 'cifar-10-batches-py')}: "
                                f"set download: true or put cifar-10-batches-py in {root}") from None
    return (tr.data.transpose(0, 3, 1, 2), np.asarray(tr.targets), te.data.transpose(0, 3, 1, 2),   # NHWC -> NCHW
            np.asarray(te.targets), *CIFAR10_STATS)


def _synthetic(root, download):
    """Tiny deterministic dataset for tests: 512 train + 256 test 3x8x8 images, 10 classes."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(10, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (768,), generator=g)
    x = ((0.6 * patterns[y] + 0.4 * torch.rand(768, 3, 8, 8, generator=g)) * 255).round().to(torch.uint8).numpy()
    xf = x[:512].astype(np.float64) / 255
    return x[:512], y[:512].numpy(), x[512:], y[512:].numpy(), tuple(xf.mean((0, 2, 3))), tuple(xf.std((0, 2, 3)))


# name -> loader(root, download) -> (train images, train labels, test images, test labels, mean, std), uint8 NCHW
DATASETS = {"embedded": _embedded, "fashion-mnist": _fashion_mnist, "cifar10": _cifar10, "synthetic": _synthetic}


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [N, C, H, W] images in [0,1] to size x size (see the module docstring)."""
    n = x.shape[-1]
    if size == n:
        return x
    if n == 28 and size in (16, 32):
        x = F.pad(x, (2, 2, 2, 2))
        return F.avg_pool2d(x, 2) if size == 16 else x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


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
    train_x, train_y, test_x, test_y, mean, std = DATASETS[name](root, download)
    native_c = train_x.shape[1]
    size, c = image_size or train_x.shape[-1], channels or native_c
    if c != native_c and not (native_c == 1 and c == 3):
        raise ValueError(f"{name}: cannot convert {native_c} channels to {c} (only 1 -> 3 is supported)")
    n = len(train_y) if train_limit is None else min(train_limit, len(train_y))
    n_train = int(round(n * train_portion))
    if c != native_c:                                   # a repeated grey channel: its constants too
        mean, std = tuple(mean) * c, tuple(std) * c
    m, s = torch.tensor(tuple(mean)).view(1, -1, 1, 1), torch.tensor(tuple(std)).view(1, -1, 1, 1)

    def prep(images, labels):
        """uint8 images -> a resized, channel-converted, normalised float32 Split."""
        x = _resize(torch.from_numpy(np.ascontiguousarray(images)).float().div_(255), size)
        if c != native_c:
            x = x.repeat(1, c, 1, 1)
        return Split(x.sub_(m).div_(s).contiguous(), torch.as_tensor(labels, dtype=torch.int64))

    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return Data(name, prep(train_x[:n_train], train_y[:n_train]), prep(train_x[n_train:n], train_y[n_train:n]),
                prep(test_x, test_y), num_classes, c, size, augment)


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding of size//8 and random horizontal flip, per image."""
    b, c, h, w = x.shape
    pad = h // 8
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    out = F.pad(x, (pad, pad, pad, pad))[bi, ci, rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def batches(split: Split, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
            augment: bool = False, device="cpu", max_batches: int | None = None):
    """Yield (x, y) batches over one epoch (drop_last=False), moved to device."""
    order = torch.randperm(len(split), generator=generator) if shuffle else None
    for start in range(0, len(split), batch_size)[:max_batches]:
        idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        x, y = split.x[idx].to(device, non_blocking=True), split.y[idx].to(device, non_blocking=True)
        yield (augment_batch(x, generator) if augment else x), y
