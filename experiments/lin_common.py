"""Shared by the Lin et al. (2021) figure scripts (lin_fig3..6): the cases' configs and
runs, and the cached translation of the paired test set.

The presets live in :data:`experiments.presets.LIN_PRESETS`. A case ("ours" or an
ablation "a".."f", ``noise_gan.config.VARIANTS``) is trained once per preset into
``runs/lin/<preset>/<case>/`` (resumed if a run was killed, reused when finished; the
locks and helper processes: :mod:`experiments.scheduler`); its translation of the paired
test set is cached in ``results/lin/<preset>/<case>_test.npz`` under a key made of the
checkpoint files, the data and the noise seed, so a second figure script (or a rerun)
costs no training and no inference.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from common.cli import add_verbose, positive_int
from common.io import atomic_write, file_sha256
from common.errors import DataError
from data.layout import REPO_ROOT, data_root
from experiments.presets import LIN_CASES, LIN_PRESETS

CASE_LABELS = {"ours": "Ours", "a": "(a) Ad.pix2pix", "b": "(b) Ad.CycleGAN",
               "c": "(c) Ad.CycleGAN+PID", "d": "(d) Ad.CycleGAN+ID",
               "e": "(e) Ad.CycleGAN+ID+PS", "f": "(f) Ours-Auto", "g": "(g) CycleGAN",
               "h": "(h) AugCGAN"}


def with_seed(preset: str, seed: int) -> str:
    """The name of ``preset`` trained with seed ``seed`` (``--train-seed``): ``preset``
    itself for 0, else ``"<preset>-seed<seed>"``, registered in
    :data:`experiments.presets.LIN_PRESETS` on first use as the same preset with that
    ``NoiseGANConfig.seed``. Runs, caches and figures of each seed then stay apart
    (``runs/lin/cpu-seed1/``), so a seed spread is a rerun away."""
    if seed == 0:
        return preset
    name = f"{preset}-seed{seed}"
    if name not in LIN_PRESETS:
        base = LIN_PRESETS[preset]
        LIN_PRESETS[name] = {**base, "train": {**base["train"], "seed": seed},
                         "seed_of": (preset, seed)}
    return name


#: Lin et al. (2021) §IV-D facts, printed next to our numbers.
PAPER = {
    "test": "evaluation on the 2,500 paired test galaxies and their 5,000 reconstructions",
    "fig5": ("methods with the identity loss (ours, a, d, e, f, h) lie lower than the "
             "others and stay nearly flat with flux; the others grow with flux; case (f) "
             "is lower than ours for low-flux images (smaller noise-like fluctuations); "
             "the flux difference cannot reach zero because of noise (lines: sigma = "
             "median summed noise of the Noise Emulators, sqrt(2) sigma = perfect "
             "reconstruction with noise)"),
    "fig6": ("ours resembles the original map, the other methods are distinctive; high "
             "central (highest-frequency) peaks for (e), (g), (h) (PixelShuffle or "
             "deconvolutions); (f) comparable to ours on SDSS but fails on CFHT"),
}

DIRECTIONS = {"sdss": "CFHT -> SDSS (reconstructed SDSS)",
              "cfht": "SDSS -> CFHT (reconstructed CFHT)"}


def describe_preset(name: str) -> str:
    """One line: the preset's data and its departures from §IV-B's settings."""
    pre = LIN_PRESETS[name]
    changes = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                        for k, v in pre["train"].items()) or "none"
    data = ("the downloaded paired FITS sets (datasets/lin2021)" if pre["real"] else
            f"simulated set {pre['folder'] or 'sim-lin'} "
            f"({', '.join(f'{k} {v}' for k, v in pre['sim'].items()) or 'default counts'})")
    return (f"preset {name}: data {data}; changes from the paper's training settings "
            f"(§IV-B): {changes}; sigma from {pre['n_noise']} Noise-Emulator draws")


def ensure_data(preset: str, data: str | Path | None = None, progress: bool = True) -> Path:
    """The dataset root: ``data`` if given, else the preset's default (simulated and
    made if missing, or the downloaded FITS set for ``paper``)."""
    if data:
        root = Path(data)
        if not root.is_dir():
            raise DataError(f"data folder {root} does not exist")
        return root
    pre = LIN_PRESETS[preset]
    if pre["real"]:
        from data.cube import default_out
        root = default_out()
        if not (root / "lin_manifest.csv").is_file():
            raise DataError(
                f"preset {preset} uses the downloaded Lin et al. sets, but {root} has no "
                f"lin_manifest.csv: download them (python -m data.download sdss-fits / "
                f"cfht-fits / pairs) or pass --data ROOT")
        return root
    from data.sim_lin import LinSimConfig, default_lin_dir, ensure_lin_simulated
    out = default_lin_dir() if pre["folder"] is None else data_root() / pre["folder"]
    return ensure_lin_simulated(LinSimConfig(out=out, progress=progress, **pre["sim"]))


#: Recipe fields of a preset (issue 13) -> the ``NoiseGANConfig`` property a case needs
#: for the field to act on it: a case without those networks trains without the field.
RECIPE_NEEDS = {"lr_auto": "two_step", "lr_pretrain": "two_step",
                "auto_pretrain": "two_step", "step2_iterations": "two_step",
                "step2_lr_drop": "two_step", "step2_lr_drop_every": "two_step",
                "step2_weight_sdss": "two_step", "step2_weight_cfht": "two_step",
                "lr_noise": "has_noise", "noise_init": "has_noise"}


def case_config(case: str, preset: str, root: Path | str):
    """``NoiseGANConfig`` of ``case`` under ``preset`` on the data at ``root`` (the
    preset's recipe fields that need networks the case lacks are left out)."""
    from noise_gan.config import NoiseGANConfig
    if case not in LIN_CASES:
        raise ValueError(f"unknown case {case!r}; choose one of {', '.join(LIN_CASES)}")
    probe = NoiseGANConfig(variant=case)
    train = {k: v for k, v in LIN_PRESETS[preset]["train"].items()
             if getattr(probe, RECIPE_NEEDS.get(k, "variant"))}
    if "band_set" in train:
        train["bands"] = len(train["band_set"])
    return NoiseGANConfig(variant=case, data=str(root), **train).validate()


def runs_dir(preset: str, runs_root: Path | str | None = None) -> Path:
    return Path(runs_root or REPO_ROOT / "runs") / "lin" / preset


def run_dir_of(case: str, preset: str, runs_root: Path | str | None = None) -> Path:
    """``runs/lin/<preset>/<case>``."""
    return runs_dir(preset, runs_root) / case


# --- training: once per (preset, case) ---------------------------------------------------

def final_step(case: str) -> str:
    """The step whose checkpoint holds the translator: "2" for ours, "1" for (a)-(f)."""
    from noise_gan.config import TWO_STEP
    return "2" if case in TWO_STEP else "1"


def is_finished(run_dir: Path | str, case: str, iterations: int) -> bool:
    """Has the run at ``run_dir`` finished every step of ``case`` (``iterations``: those
    of its final step, ``cfg.iterations_of(final_step(case))``)?"""
    from noise_gan.trainer import step_finished
    done = step_finished(Path(run_dir), final_step(case))
    return done is not None and done >= iterations


def case_finished(case: str, preset: str, data_root, runs_root=None) -> bool:
    """Has ``case`` finished training under ``preset`` (all its final step's iterations)?"""
    cfg = case_config(case, preset, data_root)
    return is_finished(run_dir_of(case, preset, runs_root), case,
                       cfg.iterations_of(final_step(case)))


#: Fields a run may differ in from its preset and still be reused or resumed.
REUSABLE_DIFFERENCES = ("data", "eager", "jit_compile")


def check_settings(run_dir: Path, cfg, preset: str) -> None:
    """Raise :class:`common.errors.DataError` when ``run_dir`` holds a run trained with
    other settings than ``cfg`` (e.g. under an older version of the preset), so a figure
    never shows a model the preset no longer describes."""
    import dataclasses
    from common.training import CONFIG_FILE, load_config
    if not (Path(run_dir) / CONFIG_FILE).is_file():
        return
    old = load_config(type(cfg), run_dir)
    diff = [f.name for f in dataclasses.fields(cfg) if f.name not in REUSABLE_DIFFERENCES
            and getattr(old, f.name) != getattr(cfg, f.name)]
    if diff:
        raise DataError(
            f"{run_dir} was trained with other settings than preset {preset} has now "
            f"({', '.join(f'{k} {getattr(old, k)!r} -> {getattr(cfg, k)!r}' for k in diff[:3])}"
            f"{', ...' if len(diff) > 3 else ''}): move it away, or pass --runs DIR, to "
            f"train it anew")


# --- the paired test set and its translations, cached ------------------------------------

def results_dir(preset: str, results_root: Path | str | None = None) -> Path:
    """``results/lin/<preset>``: the translation caches."""
    return Path(results_root or REPO_ROOT / "results") / "lin" / preset


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def checkpoint_key(run_dir: Path | str) -> str:
    """A digest of the translator's newest checkpoint files (content), so a cache built
    on an older or different model is never used."""
    import tensorflow as tf
    from noise_gan.trainer import step_dir
    from common.training import CHECKPOINTS, load_config
    from noise_gan.config import NoiseGANConfig
    run_dir = Path(run_dir)
    cfg = load_config(NoiseGANConfig, run_dir)
    latest = tf.train.latest_checkpoint(
        str(step_dir(run_dir, final_step(cfg.variant)) / CHECKPOINTS))
    if latest is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint of the translator yet")
    files = sorted(Path(latest).parent.glob(Path(latest).name + ".*"))
    return _digest(*(f"{f.name}:{file_sha256(f)}" for f in files))


def data_key(root: Path | str) -> str:
    """A digest of the dataset's manifest (ids, subsets, files)."""
    path = Path(root) / "lin_manifest.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing: {root} is not a Lin et al. FITS set")
    return _digest(file_sha256(path))


def _load_cache(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None


def save_npz(path: Path | str, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz, uncompressed) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    atomic_write(path, write)


_ORIGINALS: dict = {}


def paired_test_originals(root: Path | str, cache_dir: Path | str, batch: int = 32) -> dict:
    """The paired test set, stretched, sorted by id, cached per dataset:
    ``{"id": [N] str, "sdss": [N, 64, 64, 5], "cfht": [N, 136, 136, 5]}`` float32, plus
    ``truth_sdss`` / ``truth_cfht`` (the simulator's noise-free cubes, stretched) when
    the set has them."""
    key = data_key(root)
    path = Path(cache_dir) / "test_originals.npz"
    memo = _ORIGINALS.get(str(path))
    if memo is not None and str(memo["key"]) == key:
        return memo                       # one copy per process, shared by every case
    got = _load_cache(path, key)
    if got is not None:
        _ORIGINALS[str(path)] = got
        return got
    from data.lin_pipeline import paired_test_dataset
    ids, arrays = [], {}
    for b in paired_test_dataset(Path(root), batch):
        ids += [i.decode() if isinstance(i, bytes) else str(i) for i in b["id"].numpy()]
        for k, v in b.items():
            if k != "id":
                arrays.setdefault(k, []).append(v.numpy().astype(np.float32))
    if not ids:
        raise DataError(f"{root}: the paired test set is empty")
    out = {"key": np.array(key), "id": np.array(ids),
           **{k: np.concatenate(v) for k, v in arrays.items()}}
    save_npz(path, out)
    _ORIGINALS[str(path)] = out
    return out


def translate_test_set(run_dir: Path | str, root: Path | str, seed: int = 0,
                       cache_dir: Path | str | None = None, n_noise: int = 0,
                       batch: int = 32) -> dict:
    """Translations of the paired test set by one trained case, cached.

    Returns float32 stretched-domain arrays, galaxies sorted by id:
    ``id [N]``, ``sdss [N, 64, 64, 5]`` and ``cfht [N, 136, 136, 5]`` (originals),
    ``cfht_rec = F^{X->Y}(sdss)`` ``[N, 136, 136, 5]`` and
    ``sdss_rec = F^{Y->X}(cfht)`` ``[N, 64, 64, 5]``, with emulator noise for the
    cases that have it (ours, f; noise draw per batch seeded from ``seed``), and, when
    ``n_noise`` > 0 and the case has noise emulators, ``noise_sum_sdss`` /
    ``noise_sum_cfht`` ``[n_noise, 5]``: summed |noise| per draw and band (σ of Fig. 5).
    ``has_noise`` says whether the case adds noise; ``bands`` which bands it was trained
    on (the others are NaN); ``cfht_size`` the side of its CFHT images: 64 for (g) and
    (h), whose ``cfht`` (and ``truth_cfht``) are then the originals regridded to it.

    The cache (``cache_dir/<case>_test.npz``, default ``results/lin/<preset>/``) is keyed
    by the checkpoint files, the dataset manifest and ``seed``; the noise draws by that
    key and ``n_noise`` (with ``n_noise`` = 0, draws already cached are returned too).
    """
    from noise_gan import evaluate as ev
    from noise_gan.trainer import load_translator
    run_dir = Path(run_dir)
    cache_dir = Path(cache_dir) if cache_dir else results_dir(run_dir.parent.name)
    orig = paired_test_originals(root, cache_dir, batch)
    key = _digest(checkpoint_key(run_dir), orig["key"], seed)
    path = cache_dir / f"{run_dir.name}_test.npz"
    got = _load_cache(path, key)
    tr = None
    if got is None:
        tr = load_translator(run_dir)
        idx = tr.cfg.band_indices
        cfht_rec, sdss_rec = [], []
        for k, lo in enumerate(range(0, len(orig["id"]), batch)):
            s = seed * 1_000_003 + 2 * k
            x, y = (orig[d][lo:lo + batch][..., idx] for d in ("sdss", "cfht"))
            cfht_rec.append(np.asarray(tr.sdss_to_cfht(x, seed=s)))
            sdss_rec.append(np.asarray(tr.cfht_to_sdss(y, seed=s + 1)))
        got = {"key": np.array(key), "has_noise": np.array(bool(tr.has_noise)),
               "bands": np.array(tr.cfg.band_set),
               "cfht_size": np.array(tr.cfht_out_size),
               "cfht_rec": to_ugriz(np.concatenate(cfht_rec), idx),
               "sdss_rec": to_ugriz(np.concatenate(sdss_rec), idx)}
    # Noise draws for sigma: stored beside the translations, under their own key, so
    # figures asking for none (Figs. 3, 4) and for some (Fig. 5) share one cache.
    noise_key = _digest(key, n_noise)
    want_noise = n_noise > 0 and bool(got["has_noise"])
    if want_noise and str(got.get("noise_key", "")) != noise_key:
        tr = tr or load_translator(run_dir)
        for survey, draw in (("sdss", tr.noise_sdss), ("cfht", tr.noise_cfht)):
            sums = []
            for k, lo in enumerate(range(0, n_noise, batch)):
                n = min(batch, n_noise - lo)
                z = np.asarray(draw(n, seed=seed * 1_000_003 + 7_919 + k))
                sums.append(np.stack([ev.total_flux(z, b) for b in range(z.shape[-1])], -1))
            got[f"noise_sum_{survey}"] = to_ugriz(np.concatenate(sums),
                                                  tr.cfg.band_indices)
        got["noise_key"] = np.array(noise_key)
        save_npz(path, got)
    elif tr is not None:
        save_npz(path, got)
    out = {**{k: v for k, v in orig.items() if k != "key"}, **got}
    size = int(got.get("cfht_size", orig["cfht"].shape[1]))
    if size != orig["cfht"].shape[1]:   # (g), (h): compared with the regridded originals
        from noise_gan.cyclegan import regrid_cfht
        for k in ("cfht", "truth_cfht"):
            if k in out:
                out[k] = np.asarray(regrid_cfht(out[k], size), np.float32)
    return out


def to_ugriz(planes, idx) -> np.ndarray:
    """``[..., k]`` planes of the bands at channels ``idx`` of ugriz -> ``[..., 5]``
    float32 with NaN in every band the case was not trained on (a run of issue 13's
    ``--band-set``), so a figure never mistakes a missing band for a reconstruction."""
    from noise_gan.config import ALL_BANDS
    planes = np.asarray(planes, np.float32)
    out = np.full(planes.shape[:-1] + (len(ALL_BANDS),), np.nan, np.float32)
    out[..., list(idx)] = planes
    return out


def bands_of(translated: dict) -> str:
    """The bands a :func:`translate_test_set` result has reconstructions of ("ugriz"
    unless the case was trained on a ``--band-set``)."""
    from noise_gan.config import ALL_BANDS
    return str(translated.get("bands", ALL_BANDS))


def check_band(translated: dict, band: str) -> str:
    """``band`` if every case in ``translated`` (``{case: result}``) was trained on it,
    else a ``ValueError`` naming the bands they have."""
    have = {c: bands_of(t) for c, t in translated.items()}
    lacking = [c for c, b in have.items() if band not in b]
    if lacking:
        raise ValueError(f"--band {band}: case {lacking[0]} was trained on band(s) "
                         f"{have[lacking[0]]} only (its preset's band set); choose one of "
                         f"those")
    return band


def sigma_of(translated: dict, survey: str, band: str = "r") -> float:
    """σ of Fig. 5 from a :func:`translate_test_set` result: the median over emulator
    draws of the summed |noise| in ``band`` (``noise_gan.evaluate.noise_sigma``)."""
    from noise_gan import evaluate as ev
    sums = translated.get(f"noise_sum_{survey}")
    if sums is None:
        raise ValueError("this translation has no noise draws (a case without noise "
                         "emulators, or n_noise = 0)")
    return float(np.median(np.asarray(sums)[:, ev.band_index(band)]))


# --- command line and output ---------------------------------------------------------------

def add_common_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--preset", choices=LIN_PRESETS, default="cpu",
                   help="training/data settings (default cpu: issue 13's recipe, r band, "
                        "within 30 min on 2 cores; paper = §IV-B, a GPU job)")
    p.add_argument("--data", help="Lin et al. FITS root (default: the preset's set; "
                                  "simulated ones are generated on first use)")
    p.add_argument("--runs", help="runs root (default runs/); cases train into "
                                  "RUNS/lin/PRESET/CASE")
    p.add_argument("--cache", help="translation cache folder (default results/lin/PRESET)")
    p.add_argument("--galaxy", action="append", default=None, metavar="ID",
                   help="paired-test galaxy id to show (repeatable; default: a stated rule)")
    p.add_argument("--seed", type=int, default=0, help="noise-draw seed of the translations")
    p.add_argument("--train-seed", type=int, default=0,
                   help="training seed of every case (default 0; N > 0 trains into "
                        "runs/lin/PRESET-seedN/ and writes results/lin_figK-PRESET-seedN/, "
                        "for the spread over seeds)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="processes training missing cases side by side (default 1: one "
                        "process uses every core; more only pay off with cores to spare)")
    add_verbose(p)
    return p


def add_cases_arg(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--cases``: the cases to train and plot (default: the preset's ``cases``)."""
    p.add_argument("--cases", nargs="+", choices=LIN_CASES + ("all",), metavar="CASE",
                   help=f"cases to train and plot, of {' '.join(LIN_CASES)}, or all "
                        f"(default: the preset's: "
                        + "; ".join(f"{k} {' '.join(v['cases'])}"
                                    for k, v in LIN_PRESETS.items())
                        + ")")
    return p


def resolve_cases(args, first: tuple = ()) -> list[str]:
    """``args.cases`` made concrete: the preset's default for none, every case for "all",
    ``first`` (cases a figure needs) put in front; sets and returns ``args.cases``."""
    asked = args.cases or LIN_PRESETS[args.preset]["cases"]
    cases = list(LIN_CASES) if "all" in asked else list(asked)
    args.cases = list(dict.fromkeys([*first, *cases]))
    return args.cases


def out_dir(args, name: str) -> Path:
    """``args.out``, else ``results/<name>`` (cpu preset) or ``results/<name>-<preset>``, so
    presets do not overwrite each other's figures."""
    if args.out:
        return Path(args.out)
    return REPO_ROOT / "results" / (name if args.preset == "cpu" else f"{name}-{args.preset}")


def start(args, name: str) -> tuple[Path, Path]:
    """Print the preset (made seed-specific by ``--train-seed``) and make the data;
    returns ``(data_root, cache_dir)``."""
    args.preset = with_seed(args.preset, args.train_seed)
    print(f"{name}: {describe_preset(args.preset)}", flush=True)
    print(f"paper (§IV-D): {PAPER['test']}; here: the paired test set of the data below",
          flush=True)
    root = ensure_data(args.preset, args.data, progress=not args.quiet)
    cache = Path(args.cache) if args.cache else results_dir(args.preset)
    print(f"data: {root}", flush=True)
    return root, cache


def pick_galaxies(ids, sdss, n: int, chosen=None, band: str = "r") -> list[int]:
    """Indices of the galaxies to show: those of ``chosen`` ids (in the given order), or
    else the rule "the ``n`` brightest in ``band`` of the SDSS originals" (largest summed
    stretched flux), brightest first."""
    ids = [str(i) for i in ids]
    if chosen:
        missing = [c for c in chosen if c not in ids]
        if missing:
            raise ValueError(f"--galaxy {missing[0]} is not in the paired test set "
                             f"(ids like {ids[0]})")
        return [ids.index(c) for c in chosen]
    from noise_gan import evaluate as ev
    flux = ev.total_flux(sdss, band)
    return [int(i) for i in np.argsort(-flux, kind="stable")[:n]]


def save_figure(fig, out_dir: Path | str, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf`` atomically; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, kw in (("png", dict(dpi=150)), ("pdf", {})):
        path = out_dir / f"{stem}.{ext}"
        atomic_write(path, lambda t, ext=ext, kw=kw: fig.savefig(t, format=ext,
                                                                 bbox_inches="tight", **kw))
        paths.append(path)
    return paths


def save_csv(df, out_dir: Path | str, name: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    atomic_write(path, lambda t: df.to_csv(t, index=False, float_format="%.6g"))
    return path


def write_json(path: Path | str, obj) -> Path:
    return atomic_write(Path(path), lambda t: Path(t).write_text(json.dumps(obj, indent=1)))
