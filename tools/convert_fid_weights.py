"""One-time conversion of pytorch-fid's FID Inception weights (torch .pth) to our .npz.

    python tools/convert_fid_weights.py                      # downloads, needs internet
    python tools/convert_fid_weights.py --pth pt_inception-2015-12-05-6726825d.pth \
        --out pt_inception.npz                               # from a local file

Input: ``pt_inception-2015-12-05-6726825d.pth`` from pytorch-fid's release
``fid_weights`` (URL in ``common.weights.SOURCES["pt_inception"]``): the 2015-12-05
TF Inception graph's weights, which published FIDs use. Downloaded into
``$KERAS_HOME/models`` unless ``--pth`` is given; either way its sha256 must start with
``6726825d``, the hash its name publishes (a wrong or corrupt file is one ``error:``
line). The output (default ``$KERAS_HOME/models/pt_inception-2015-12-05-6726825d.npz``,
where ``common.fid`` looks for the ``pt_inception`` extractor) holds the arrays of
``common.inception.pt_inception_from_torch`` and the source file's sha256; it is loaded
back into the Keras network before it is written. Copy it to an offline machine's
``$KERAS_HOME/models/`` or point ``$FID_WEIGHTS`` at it.

Needs torch only to read the ``.pth`` file (imported lazily; not a project requirement).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from common import inception, weights  # TensorFlow-free until a network is built
from common.cli import Parser, add_verbose


def parse_args(argv=None) -> argparse.Namespace:
    ap = Parser(prog="python tools/convert_fid_weights.py",
                description=__doc__.split("\n")[0])
    ap.add_argument("--pth", help="pytorch-fid's .pth, sha256-checked (default: download)")
    ap.add_argument("--out", help=f"output .npz (default: $KERAS_HOME/models/"
                                  f"{inception.PT_INCEPTION_NPZ})")
    add_verbose(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Exit code 0, or 2 with one ``error:`` line (missing file, wrong sha256...)."""
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    a = parse_args(argv)
    quiet_tensorflow(a.verbose)
    return run_cli(lambda: convert(a))


def write_npz(state: dict, out: str, source_sha256: str = "") -> str:
    """pytorch-fid state dict (name -> array) -> our ``.npz`` at ``out``, written
    atomically after loading it back into the Keras network (names, shapes)."""
    model = inception.build_pt_inception()
    arrays = inception.pt_inception_from_torch(state, model)
    arrays["source_sha256"] = np.array(source_sha256)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    try:
        inception.load_pt_inception(model, tmp)
    except ValueError:
        os.remove(tmp)
        raise
    os.replace(tmp, out)
    return out


def convert(a: argparse.Namespace) -> str:
    """Check, convert and write; returns the output path."""
    if a.pth and not os.path.isfile(a.pth):
        raise FileNotFoundError(f"--pth {a.pth}: no such file")
    pth = a.pth or weights.fetch("pt_inception")  # fetch checks a download's sha256 prefix
    digest = weights.check_sha256(pth, "pt_inception")
    out = write_npz(weights.read_pth(pth), a.out or weights.cache_path(inception.PT_INCEPTION_NPZ), digest)
    print(f"wrote {out} (FID pt_inception from {pth}, sha256 {digest})")
    return out


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
