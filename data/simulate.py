"""Mock SDSS / DECaLS / HSC cutout triplets made with GalSim.

The command line of both simulated setups (the simulators live in ``data.sim_luo`` and
``data.sim_lin``, on the sky of ``data.scene``)::

    python -m data.simulate --out DIR --n-train N --n-test M --seed S
    python -m data.simulate --setup lin [--out DIR] [--n-paired-train N]
        [--n-paired-test N] [--n-unpaired-sdss N] [--n-unpaired-cfht N] [--seed S]
        [--workers W]

``--setup luo`` (the default): Luo et al. JPEG triplets (:class:`data.sim_luo.SimConfig`);
``--setup lin``: Lin et al. (2021) ugriz FITS cubes (:class:`data.sim_lin.LinSimConfig`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import Parser, non_negative_float, non_negative_int, positive_int
from common.errors import run_cli
from data import layout
from data.sim_lin import LIN_GROUPS, LinSimConfig, default_lin_dir, simulate_lin
from data.sim_luo import TRUTH_CHOICES, SimConfig, simulate
from data.surveys import LIN_SURVEYS, LUO_SURVEYS

def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate {text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {text!r} must lie in [0, 1]")
    return v


#: What each ``--rate-<name>`` switches on (per galaxy; defects per galaxy and survey).
_RATE_HELP = {"companion": "a second galaxy 4-9\" away", "star": ">= 1 foreground star",
              "streak": "a satellite trail, per survey",
              "saturated": "a saturated bright star, per survey",
              "noisy": "x3-5 sky noise, per survey",
              "blurred": "x1.7-2.3 PSF FWHM, per survey"}

#: ``--setup`` choices: ``luo`` (Luo et al. JPEG triplets, the default) or ``lin``.
SETUPS = ("luo", "lin")


def _setup_of(argv: list[str] | None) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--setup", choices=SETUPS, default="luo")
    return pre.parse_known_args(argv)[0].setup


def parse_args(argv: list[str] | None = None) -> SimConfig | LinSimConfig:
    """Command line -> ``SimConfig`` (``--setup luo``, the default) or ``LinSimConfig``
    (``--setup lin``); bad values end in a one-line argparse error."""
    if _setup_of(argv) == "lin":
        return parse_lin_args(argv)
    d = SimConfig.__dataclass_fields__
    ap = Parser(prog="python -m data.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", choices=SETUPS, default="luo",
                    help="luo: Luo et al. JPEG triplets; lin: Lin et al. ugriz FITS "
                         "(see --setup lin --help)")
    ap.add_argument("--out", type=Path, default=layout.default_sim_dir(),
                    help="dataset folder")
    ap.add_argument("--n-train", type=non_negative_int, default=d["n_train"].default, metavar="N",
                    help="training galaxies")
    ap.add_argument("--n-test", type=non_negative_int, default=d["n_test"].default, metavar="N",
                    help="test galaxies")
    ap.add_argument("--seed", type=int, default=d["seed"].default,
                    help="every random number derives from it (default: %(default)s)")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="processes (default: all CPUs)")
    ap.add_argument("--truth", choices=TRUTH_CHOICES, default=d["truth"].default,
                    help="splits that get noise-free truth/<id>.npy")
    ap.add_argument("--size", type=positive_int, default=d["size"].default,
                    help="cutout side in 0.168\" pixels")
    for name in SimConfig().rates():
        ap.add_argument(f"--rate-{name}", type=_rate, default=d[f"rate_{name}"].default,
                        metavar="P", help=f"probability of {_RATE_HELP[name]}")
    for s in LUO_SURVEYS:
        ap.add_argument(f"--noise-{s}", type=non_negative_float, default=d[f"noise_{s}"].default,
                        metavar="X", help=f"multiply {s}'s depth-derived sky noise")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    a = ap.parse_args(argv)
    if a.size < 8:
        ap.error(f"argument --size: {a.size} must be >= 8")
    kw = {k: v for k, v in vars(a).items() if k not in ("no_progress", "setup")}
    return SimConfig(progress=not a.no_progress, **kw)


def parse_lin_args(argv: list[str] | None = None) -> LinSimConfig:
    """``--setup lin`` command line -> ``LinSimConfig``."""
    d = LinSimConfig.__dataclass_fields__
    ap = Parser(
        prog="python -m data.simulate --setup lin",
        description="Mock SDSS / CFHT ugriz FITS cubes for Lin et al. (2021): paired\n"
                    "train/test and unpaired sets in the layout of data.layout.")
    ap.add_argument("--setup", choices=SETUPS, default="lin",
                    help="lin: these ugriz FITS sets; luo: see --help")
    ap.add_argument("--out", type=Path, default=default_lin_dir(), help="dataset folder")
    for g in LIN_GROUPS:
        ap.add_argument(f"--n-{g.replace('_', '-')}", dest=f"n_{g}", type=non_negative_int,
                        default=d[f"n_{g}"].default, metavar="N",
                        help=f"galaxies in {g.replace('_', ' ')}")
    ap.add_argument("--seed", type=non_negative_int, default=d["seed"].default,
                    help="every random number derives from it (default: %(default)s)")
    ap.add_argument("--workers", type=positive_int, default=None,
                    help="processes (default: all CPUs)")
    ap.add_argument("--sdss-size", type=positive_int, default=d["sdss_size"].default,
                    help="SDSS stamp side in 0.396\" pixels")
    ap.add_argument("--cfht-size", type=positive_int, default=d["cfht_size"].default,
                    help="CFHT stamp side in 0.187\" pixels")
    ap.add_argument("--no-truth", action="store_true",
                    help="no noise-free paired_test/truth_{sdss,cfht}/ cubes")
    for name in ("companion", "star"):
        ap.add_argument(f"--rate-{name}", type=_rate, default=d[f"rate_{name}"].default,
                        metavar="P", help=f"probability of {_RATE_HELP[name]}")
    ap.add_argument("--depth-dex", type=non_negative_float, default=d["depth_dex"].default,
                    metavar="X", help="scatter (dex) of the per-image sky-noise factor")
    ap.add_argument("--seeing-frac", type=non_negative_float, default=d["seeing_frac"].default,
                    metavar="X", help="scatter (ln) of the per-image PSF FWHM factor")
    ap.add_argument("--cfht-corr", type=_rate, default=d["cfht_corr"].default,
                    metavar="A", help="neighbour weight of the CFHT noise kernel (0: white)")
    for s in LIN_SURVEYS:
        ap.add_argument(f"--noise-{s}", type=non_negative_float, default=d[f"noise_{s}"].default,
                        metavar="X", help=f"multiply {s}'s depth-derived sky noise")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    a = ap.parse_args(argv)
    for s in LIN_SURVEYS:
        if getattr(a, f"{s}_size") < 4:
            ap.error(f"argument --{s}-size: must be >= 4")
    kw = {k: v for k, v in vars(a).items()
          if k not in ("no_progress", "no_truth", "setup")}
    return LinSimConfig(progress=not a.no_progress, truth=not a.no_truth, **kw)


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (bad input: one ``error:`` line, 2)."""
    def job():
        cfg = parse_args(argv)  # in here: a value argparse lets through is one line too
        if isinstance(cfg, LinSimConfig):
            out = simulate_lin(cfg)
            c = cfg.counts()
            what = (f"{c['paired_train']} + {c['paired_test']} pairs (paired_train, "
                    f"paired_test), {c['unpaired_sdss']} unpaired SDSS + "
                    f"{c['unpaired_cfht']} unpaired CFHT galaxies")
            man = out / layout.LIN_MANIFEST
        else:
            out = simulate(cfg)
            what = (f"{cfg.n_train + cfg.n_test} galaxies ({cfg.n_train} train, "
                    f"{cfg.n_test} test)")
            man = layout.manifest_path(out)
        print(f"wrote {what}, seed {cfg.seed}, to {out} (manifest: {man})")
    return run_cli(job)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
