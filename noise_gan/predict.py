"""Translate ugriz FITS cubes with a trained noise GAN run:
``python -m noise_gan.predict --run-dir RUN_DIR --direction sdss_to_cfht --input DIR --out DIR``.

Each input is a ``[5, H, W]`` float32 cube in nanomaggies (``data.cube``
layout: SDSS 64x64 at 0.396"/px, CFHT 136x136 at 0.187"/px). It is stretched
(``data.lin_pipeline.stretch``), translated (generator + freshly drawn emulator noise,
unless ``--no-noise`` or the variant has no noise emulators), un-stretched back to
nanomaggies and written as ``OUT/<stem>.fits`` with the target survey's header: a
north-up TAN WCS at the target pixel scale centred on the input's position
(``data.cube.stamp_wcs`` / ``cube_header``), plus ``TRANSLAT``, ``NOISE``,
``NSEED``, ``SRCFILE``, ``RUNITER`` keys.

Outputs are written atomically and existing ones are skipped (``--overwrite`` redoes
them), so an interrupted conversion resumes; temporaries a killed run left in ``--out``
are removed at the start. With ``--seed S`` each image's noise is drawn from a seed made
of ``S`` and the file's stem, so an output does not depend on the batch it was in, nor on
whether the run was resumed.

Benchmarks (g)/(h) translate to and from CFHT regridded to the SDSS grid: ``sdss_to_cfht``
writes ``sdss_size`` (64) px cubes whose pixel scale is CFHT's times ``cfht_size /
sdss_size`` (0.397"/px), and ``cfht_to_sdss`` reads 136 px CFHT cubes. (h) draws its
latent code per file (from ``--seed`` and the stem, as the noise), or uses z = 0 with
``--no-noise``.

The FITS cube format (``data.cube``: astropy), the stretch (``data.lin_pipeline``) and
the trained run (TensorFlow) are imported inside :func:`read_input` and :func:`predict`
only, so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.cli import Parser, add_verbose, quiet_tensorflow
from common.errors import DataError, exit_process, run_cli
from common.io import clean_stale_tmp, output_paths
from data import surveys

DIRECTIONS = ("sdss_to_cfht", "cfht_to_sdss")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m noise_gan.predict",
        description="Translate SDSS <-> CFHT ugriz FITS cubes (nanomaggies) with a "
                    "trained noise_gan run.",
        epilog="exit status: 0 done; 2 bad input or flags (nothing translated);\n"
               "130 interrupted (rerun to resume)")
    p.add_argument("--run-dir", required=True, help="run folder of noise_gan.train")
    p.add_argument("--direction", required=True, choices=DIRECTIONS,
                   help="translate SDSS cubes to CFHT, or back")
    p.add_argument("--input", required=True, nargs="+",
                   help="FITS files and/or folders of *.fits")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=None,
                   help="reproducible noise (default: fresh random noise)")
    p.add_argument("--no-noise", action="store_true",
                   help="generator output only, no emulator noise")
    p.add_argument("--batch-size", type=int, default=16, help="cubes per model call")
    p.add_argument("--overwrite", action="store_true", help="redo existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    return p


def list_fits(inputs) -> list[Path]:
    """Files named in ``inputs`` (a path or a list of paths: FITS files, or folders whose
    ``*.fits`` are taken in sorted order); a ``DataError`` if one is missing or none."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(p.glob("*.fits"))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError(f"no .fits files in {', '.join(map(str, inputs))}")
    return files


def read_input(path: Path, size: int):
    """``([size, size, 5] float32 nanomaggies, header, wcs)`` of one cube; ``DataError``
    naming the file for a wrong size, a missing band or NaN/inf pixels."""
    from data.cube import BANDS, read_cube  # astropy: see the module docstring
    cube, wcs, hdr = read_cube(path)  # raises for unreadable files and non-[5, H, W]
    bands = str(hdr.get("BANDS", "".join(BANDS)))
    if bands != "".join(BANDS):
        missing = [b for b in BANDS if b not in bands]
        raise DataError(f"{path}: missing band(s) {', '.join(missing) or '?'} "
                        f"(BANDS = {bands!r}, need ugriz)")
    if cube.shape[1:] != (size, size):
        raise DataError(f"{path}: cube is {cube.shape[2]}x{cube.shape[1]} px, this "
                        f"direction needs {size}x{size}")
    bad = ~np.isfinite(cube)
    if bad.any():
        band = BANDS[int(np.argmax(bad.reshape(len(BANDS), -1).any(axis=1)))]
        raise DataError(f"{path}: {int(bad.sum())} NaN/inf pixels (band {band} first)")
    return np.ascontiguousarray(cube.transpose(1, 2, 0)), hdr, wcs


def centre_of(hdr, wcs, size: int) -> tuple[float, float]:
    """Sky position (deg) of the stamp: header RA/DEC, else the WCS at its centre."""
    if "RA" in hdr and "DEC" in hdr:
        return float(hdr["RA"]), float(hdr["DEC"])
    ra, dec = wcs.all_pix2world([(size - 1) / 2.0], [(size - 1) / 2.0], 0)
    return float(ra[0]), float(dec[0])


def file_seed(seed: int, stem: str) -> int:
    """The noise seed of one file: a function of ``seed`` and the file's stem only."""
    return (int(seed) * 1_000_003 + zlib.crc32(stem.encode())) % (2**31 - 1)


def predict(run_dir, direction: str, inputs, out_dir, *, seed: int | None = None,
            noise: bool = True, batch_size: int = 16, overwrite: bool = False,
            progress: bool = True) -> list[Path]:
    """Translate every cube of ``inputs`` with the run at ``run_dir``; returns the output
    paths in input order (new and existing)."""
    # astropy and TensorFlow: see the module docstring.
    from data.cube import cube_header, stamp_wcs, write_cube
    from data.lin_pipeline import stretch, unstretch

    if direction not in DIRECTIONS:
        raise ValueError(f"--direction must be one of {', '.join(DIRECTIONS)}, "
                         f"got {direction!r}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    clean_stale_tmp(out_dir)
    files = list_fits(inputs)
    outputs = output_paths(files, out_dir, "fits")  # refuses two inputs -> one output
    todo = [f for f in files if overwrite or not outputs[f].exists()]
    if todo:
        import tensorflow as tf

        from noise_gan.trainer import load_translator
        tr = load_translator(run_dir)
        cfg = tr.cfg
        if cfg.bands != 5:  # FITS cubes in and out are ugriz (issue 13's band subsets)
            raise ValueError(f"{run_dir} was trained on bands {cfg.band_set!r}; predict "
                             f"writes ugriz cubes and needs a run trained on all five")
        to_cfht = direction == "sdss_to_cfht"
        in_size, out_size = ((cfg.sdss_size, tr.cfht_out_size) if to_cfht
                             else (cfg.cfht_size, cfg.sdss_size))
        target = surveys.CFHT if to_cfht else surveys.SDSS
        # (g)/(h) write regridded CFHT: the same sky on fewer, larger pixels.
        pixscale = target.pixel_scale * (cfg.cfht_size / out_size if to_cfht else 1.0)
        translate = tr.sdss_to_cfht if to_cfht else tr.cfht_to_sdss
        emulate = tr.noise_cfht if to_cfht else tr.noise_sdss
        with_noise = noise and tr.has_noise
        per_file = noise and tr.latent_dim > 0  # (h): a latent draw per file
        if noise and not tr.has_noise and not per_file:
            print(f"note: variant {cfg.variant} has no noise emulators; writing generator "
                  f"outputs")
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="predict")
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            read = [read_input(f, in_size) for f in chunk]
            x = tf.constant(stretch(np.stack([r[0] for r in read])).astype(np.float32))
            out = None if per_file else translate(x, noise=False).numpy()
            for k, (f, (_, hdr, wcs)) in enumerate(zip(chunk, read)):
                s = None if seed is None else file_seed(seed, f.stem)
                y = (translate(x[k:k + 1], noise=True, seed=s).numpy()[0] if per_file
                     else out[k])
                if with_noise:
                    y = y + emulate(1, seed=s).numpy()[0]
                cube = unstretch(y).astype(np.float32).transpose(2, 0, 1)
                ra, dec = centre_of(hdr, wcs, in_size)
                header = cube_header(
                    stamp_wcs(ra, dec, out_size, pixscale), target,
                    str(hdr.get("OBJID", f.stem)), ra, dec,
                    extra={"SAMPLING": ("translated", "noise_gan generator output"),
                           "TRANSLAT": (direction, "noise_gan.predict direction"),
                           "NOISE": (bool(with_noise or per_file),
                                     "emulator noise added / latent drawn"),
                           "PIXSCALE": (pixscale, "arcsec/px"),
                           "NSEED": (-1 if seed is None else int(seed),
                                     "--seed (-1: fresh random)"),
                           "SRCFILE": f.name[:68],
                           "RUNITER": (int(tr.iteration), "training iterations")})
                write_cube(outputs[f], np.ascontiguousarray(cube), header)
            bar.update(len(chunk))
        bar.close()
    print(f"{len(todo)} translated, {len(files) - len(todo)} already done: wrote "
          f"{len(todo)} FITS cubes to {out_dir}/")
    return [outputs[f] for f in files]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow
    return run_cli(lambda: predict(args.run_dir, args.direction, args.input, args.out,
                                   seed=args.seed, noise=not args.no_noise,
                                   batch_size=args.batch_size, overwrite=args.overwrite,
                                   progress=not args.no_progress))


if __name__ == "__main__":
    exit_process(main())
