"""One-time conversion of the reference LPIPS weights (torch .pth) to our .npz format.

    python tools/convert_lpips_weights.py --net alex            # downloads, needs internet
    python tools/convert_lpips_weights.py --net alex --backbone alexnet-owt-7be5be79.pth \
        --lin alex.pth --out lpips_alex_v0.1.npz                # from local files

Inputs: the torchvision backbone (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``)
and the LPIPS v0.1 lin layers (``lpips/weights/v0.1/alex.pth`` / ``vgg.pth`` of
richzhang/PerceptualSimilarity); URLs in ``common.weights.SOURCES``. Without
``--backbone``/``--lin`` they are downloaded into ``$KERAS_HOME/models`` (torchvision
files checked against the sha256 prefix in their names, a local ``--backbone`` too; the
lin files have no published hash). The output (default
``$KERAS_HOME/models/lpips_<net>_v0.1.npz``, where ``common.lpips`` looks) is
described by ``common.lpips.npz_layout``; copy it to an offline machine's cache or
point ``$LPIPS_WEIGHTS`` at it.

Needs torch only to read the ``.pth`` files; torch is imported lazily and is not a
project requirement (``pip install torch`` once, anywhere, then copy the .npz).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from common import lpips, weights  # TensorFlow-free until a network is built
from common.cli import Parser, add_verbose


def parse_args(argv=None) -> argparse.Namespace:
    ap = Parser(prog="python tools/convert_lpips_weights.py",
                description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=lpips.NETS, default="alex", help="LPIPS backbone")
    ap.add_argument("--backbone", help="torchvision .pth, sha256-checked (default: download)")
    ap.add_argument("--lin", help="LPIPS v0.1 lin-layer .pth (default: download)")
    ap.add_argument("--out", help="output .npz (default: $KERAS_HOME/models/lpips_<net>_v0.1.npz)")
    add_verbose(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Exit code 0, or 2 with one ``error:`` line (a missing input file...)."""
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    a = parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: convert(a))


def convert(a: argparse.Namespace) -> str:
    """Convert, check and write the .npz; returns its path."""
    for flag, path in (("--backbone", a.backbone), ("--lin", a.lin)):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{flag} {path}: no such file")
    backbone = a.backbone or weights.fetch(a.net)  # a download is checked by fetch
    if a.backbone:
        weights.check_sha256(backbone, a.net)  # torchvision's published sha256 prefix
    lin = a.lin or weights.fetch(f"lin-{a.net}")  # no published hash: not checked
    arrays = lpips.from_torch(a.net, weights.read_pth(backbone), weights.read_pth(lin))
    out = a.out or weights.cache_path(lpips.lpips_cache_name(a.net))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    model = lpips.build_lpips_model(a.net)
    lpips.load_npz(model, a.net, tmp)  # checks names, shapes and lin weights >= 0
    os.replace(tmp, out)
    print(f"wrote {out} (LPIPS v0.1 {a.net}; backbone {backbone}; lin {lin})")
    return out


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
