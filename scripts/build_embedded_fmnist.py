"""Rebuild closekit/assets/fmnist_mini/ from the official Fashion-MNIST idx files.

Train: the first 1,200 images of each class of the official training set, kept in file order
(12,000 images). Test: the full official 10,000-image test set. Files are written in the idx
format, gzipped with mtime=0, so running this twice gives identical bytes.

    python scripts/build_embedded_fmnist.py [--src /usr/share/datasets/fashion-mnist] [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from closekit.data import DEBIAN_FMNIST, EMBEDDED_DIR, FMNIST_FILES, _find_idx, read_idx, sha256, write_idx  # noqa: E402

PER_CLASS = 1200
LICENSE = """\
The files in this directory are a subset of Fashion-MNIST,
https://github.com/zalandoresearch/fashion-mnist
(train: the first 1,200 images of each class of the official training set, in file order;
test: the full official test set), rebuilt by scripts/build_embedded_fmnist.py.

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense,
and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN
NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def main():
    """Select the subset, write the gzipped idx files, LICENSE and SHA256SUMS."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=DEBIAN_FMNIST, help="directory with the official idx files")
    ap.add_argument("--out", default=str(EMBEDDED_DIR), help="output directory")
    args = ap.parse_args()
    src = _find_idx([Path(args.src), Path(args.src) / "FashionMNIST" / "raw"])
    if src is None:
        sys.exit(f"Fashion-MNIST idx files not found in {args.src}: install Debian's dataset-fashion-mnist or pass --src")
    train_x, train_y, test_x, test_y = (read_idx(p) for p in src)
    keep = np.sort(np.concatenate([np.flatnonzero(train_y == c)[:PER_CLASS] for c in range(10)]))
    assert len(keep) == 10 * PER_CLASS and (np.bincount(train_y[keep]) == PER_CLASS).all()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = (train_x[keep], train_y[keep], test_x, test_y)
    for name, a in zip(FMNIST_FILES, arrays):
        write_idx(out / (name + ".gz"), a)
    (out / "LICENSE").write_text(LICENSE, encoding="utf-8")
    names = [f + ".gz" for f in FMNIST_FILES]
    (out / "SHA256SUMS").write_text("".join(f"{sha256(out / n)}  {n}\n" for n in names))
    total = 0
    for n in names + ["LICENSE", "SHA256SUMS"]:
        size = (out / n).stat().st_size
        total += size
        print(f"{size:>10,d}  {sha256(out / n)}  {n}")
    print(f"{total:>10,d}  total in {out}")


if __name__ == "__main__":
    main()
