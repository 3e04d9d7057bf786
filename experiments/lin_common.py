"""Shared by the Lin et al. (2021) figure scripts (lin_fig3..6): presets, train-once cache
of every case, and the cached translation of the paired test set.

One source of truth for the presets: :data:`PRESETS`. A case ("ours" or an ablation
"a".."f", ``noise_gan.config.VARIANTS``) is trained once per preset into
``runs/lin/<preset>/<case>/`` (resumed if a run was killed, reused when finished); its
translation of the paired test set is cached in ``results/lin/<preset>/<case>_test.npz``
under a key made of the checkpoint files, the data and the noise seed, so a second
figure script (or a rerun) costs no training and no inference.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.cli import Parser, add_verbose, positive_int  # noqa: E402
from common.io import atomic_write, file_sha256  # noqa: E402
from common.errors import DataError
from data.layout import REPO_ROOT, data_root  # noqa: E402

#: Cases in the paper's order (Figs. 4-6). (g) CycleGAN and (h) Augmented CycleGAN
#: translate CFHT regridded to the SDSS grid (§IV-B; ``noise_gan.cyclegan``): their CFHT
#: reconstructions are compared with the regridded originals.
CASES = ("ours", "a", "b", "c", "d", "e", "f", "g", "h")
CASE_LABELS = {"ours": "Ours", "a": "(a) Ad.pix2pix", "b": "(b) Ad.CycleGAN",
               "c": "(c) Ad.CycleGAN+PID", "d": "(d) Ad.CycleGAN+ID",
               "e": "(e) Ad.CycleGAN+ID+PS", "f": "(f) Ours-Auto", "g": "(g) CycleGAN",
               "h": "(h) AugCGAN"}

#: Presets. ``sim``: ``data.simulate.LinSimConfig`` fields of the preset's simulated set,
#: ``folder``: its name under the data root (None = the default set ``sim-lin``), or
#: ``real``: the preset's default data is the downloaded FITS set
#: (``python -m data.download pairs``); ``train``: ``NoiseGANConfig`` changes from the
#: paper's settings (§IV-B; recipe fields a case has no networks for are left out of its
#: config, :data:`RECIPE_NEEDS`); ``cases``: the cases the figure scripts train and plot
#: by default (``--cases all``: every one); ``n_noise``: Noise-Emulator draws behind σ of
#: Fig. 5.
#:
#: ``cpu``: issue 13's recipe, meant to show Figs. 5-6's claims from scratch within 30
#: min on an idle 2-core CPU (docs/noise_gan.md has the measured times and the
#: measurements behind each value). r band only (Figs. 5-6 are r; ~2.5x cheaper per
#: step), width 8, batches 4 + 4 + 4; the emulators start at the robust noise estimate of
#: the training images; the autoencoders are pre-trained 5,000 iterations so the critic
#: compares noise with noise, not with blur (at 1,000 the CFHT critic wins on the
#: autoencoder's residuals within 400 iterations and pushes the emulator down); critics
#: and emulators at the paper's 1e-4 (at 3e-3 the critic wins within ~200 iterations),
#: autoencoders and generators at 1e-3; 1,500 iterations for step one and the ablations,
#: with no rate drops; step two 3,000, its rate divided by 10 after 2,000 (at a constant
#: 1e-3 the generators end wherever their swing is: 4,000 iterations gave one seed a
#: sky offset above the CFHT noise and 0 % in the band, from 44 % at 2,000). Step two's
#: CFHT-domain terms weigh 25x: the ratio of the two domains' noise variances in r
#: (robust estimates 0.0112² / 0.00224²), so each domain's errors count in units of its
#: own noise (measured at 2,000: 50 % of the CFHT reconstructions in the noise band,
#: against 31 % at 8x and 4 % at 1:1; SDSS 80-81 % in all three).
#: ``paper``: §IV-B unchanged (width 64, 60,000 iterations per step, 24 + 24 + 24,
#: lr 1e-4 / 5 every 20,000, ugriz) on the downloaded paired sets (a GPU job).
#: ``tiny``: for tests, seconds per case (plus tracing).
PRESETS = {
    "tiny": dict(folder="sim-lin-tiny", real=False,
                 sim=dict(n_paired_train=4, n_paired_test=6, n_unpaired_sdss=4,
                          n_unpaired_cfht=4),
                 train=dict(width=2, noise_hidden=2, iterations=2, batch_unpaired=2,
                            batch_paired=2, checkpoint_every=2, sample_every=2,
                            n_samples=1, lr=1e-3, lr_drop_every=1),
                 cases=CASES, n_noise=8),
    "cpu": dict(folder=None, real=False, sim=dict(),
                train=dict(band_set="r", width=8, noise_hidden=16, batch_unpaired=4,
                           batch_paired=4, iterations=1500, step2_iterations=3000,
                           step2_lr_drop=10.0, step2_lr_drop_every=2000,
                           noise_init="data", auto_pretrain=5000, lr=1e-3, lr_disc=1e-4,
                           lr_noise=1e-4, lr_drop=1.0, step2_weight_cfht=25.0,
                           checkpoint_every=100, sample_every=500, n_samples=4),
                cases=("ours", "a"), n_noise=500),
    "paper": dict(folder=None, real=True, sim=dict(), train=dict(), cases=CASES,
                  n_noise=2500),
}


def with_seed(preset: str, seed: int) -> str:
    """The name of ``preset`` trained with seed ``seed`` (``--train-seed``): ``preset``
    itself for 0, else ``"<preset>-seed<seed>"``, registered in :data:`PRESETS` on first
    use as the same preset with that ``NoiseGANConfig.seed``. Runs, caches and figures
    of each seed then stay apart (``runs/lin/cpu-seed1/``), so a seed spread is a rerun
    away."""
    if seed == 0:
        return preset
    name = f"{preset}-seed{seed}"
    if name not in PRESETS:
        base = PRESETS[preset]
        PRESETS[name] = {**base, "train": {**base["train"], "seed": seed},
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
    pre = PRESETS[name]
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
    pre = PRESETS[preset]
    if pre["real"]:
        from data.fits_download import default_out
        root = default_out()
        if not (root / "lin_manifest.csv").is_file():
            raise DataError(
                f"preset {preset} uses the downloaded Lin et al. sets, but {root} has no "
                f"lin_manifest.csv: download them (python -m data.download sdss-fits / "
                f"cfht-fits / pairs) or pass --data ROOT")
        return root
    from data.simulate import LinSimConfig, default_lin_dir, ensure_lin_simulated
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
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; choose one of {', '.join(CASES)}")
    probe = NoiseGANConfig(variant=case)
    train = {k: v for k, v in PRESETS[preset]["train"].items()
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
    """Raise :class:`DataError` when ``run_dir`` holds a run trained with other settings
    than ``cfg`` (e.g. under an older version of the preset), so a figure never shows a
    model the preset no longer describes."""
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


class CaseLocked(Exception):
    """Another live process is training this case (its lock file names the pid)."""


def _pid_alive(pid: int) -> bool:
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(lock: Path) -> None:
    """Create ``lock`` holding our pid; a lock of a dead process is taken over; one of a
    live process raises :class:`CaseLocked`."""
    import os
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise CaseLocked(f"{lock}: pid {pid} is training this case") from None
            lock.unlink(missing_ok=True)        # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return
    raise CaseLocked(f"{lock}: could not take the lock")


def ensure_case(case: str, preset: str, data_root: Path | str,
                runs_root: Path | str | None = None, progress: bool = True,
                wait: bool = True) -> Path:
    """Train ``case`` under ``preset`` into ``runs/lin/<preset>/<case>`` unless finished.

    "ours" trains both steps, the ablations their single step. A killed run resumes
    from its newest checkpoint (``noise_gan.trainer.train(resume=True)``); a finished
    one is reused at no cost. Two scripts started together do not train one case twice:
    ``runs/lin/<preset>/<case>.lock`` holds the trainer's pid; the other script waits
    for it (``wait``) or raises :class:`CaseLocked`. Returns the run folder.
    """
    from noise_gan.trainer import train
    cfg = case_config(case, preset, data_root)
    run_dir = run_dir_of(case, preset, runs_root)
    check_settings(run_dir, cfg, preset)
    lock = run_dir.with_name(f"{case}.lock")
    while True:
        if case_finished(case, preset, data_root, runs_root):
            print(f"case {case}: finished run {run_dir} reused")
            return run_dir
        try:
            _acquire(lock)
            break
        except CaseLocked as err:
            if not wait:
                raise
            print(f"case {case}: waiting: {err}", flush=True)
            time.sleep(20)
    try:
        if case_finished(case, preset, data_root, runs_root):   # finished while we waited
            return run_dir
        resume = (run_dir / "config.json").is_file()
        print(f"\n=== case {case} ({CASE_LABELS[case]}): "
              f"{'resuming' if resume else 'training'} {run_dir} under "
              f"{describe_preset(preset)} ===", flush=True)
        t0 = time.time()
        train(cfg, run_dir, step="both", resume=resume, progress=progress)
        print(f"case {case}: trained in {time.time() - t0:.0f} s", flush=True)
    finally:
        lock.unlink(missing_ok=True)
    return run_dir


def ensure_cases(cases, preset: str, data_root: Path | str,
                 runs_root: Path | str | None = None, progress: bool = True,
                 jobs: int = 1) -> dict:
    """``{case: run_dir}`` for every case, training the missing ones in order; a case
    another process is training is left for later (then waited for).

    ``jobs`` > 1 starts ``jobs - 1`` helper processes (:func:`train_cases_main`) that
    walk the same list from other starting points; the case locks keep any case from
    training twice. Worth it on CPU: a step's graph trace (~25 s at width 8) is
    single-threaded Python, so one process traces while the other computes. A helper's
    output goes to ``runs/lin/<preset>/helper<k>.log``; a helper that dies leaves a
    stale lock, and its case is then trained here.
    """
    todo = [c for c in cases if not case_finished(c, preset, data_root, runs_root)]
    helpers = [_start_helper(k, todo[k:] + todo[:k], preset, data_root, runs_root)
               for k in range(1, min(jobs, len(todo)))]
    try:
        later = []
        for c in cases:
            try:
                ensure_case(c, preset, data_root, runs_root, progress, wait=False)
            except CaseLocked as err:
                print(f"case {c}: {err}; coming back to it", flush=True)
                later.append(c)
        for c in later:
            ensure_case(c, preset, data_root, runs_root, progress, wait=True)
    except BaseException:
        for proc, _ in helpers:
            proc.terminate()                # we are failing: do not leave them running
        raise
    finally:
        for proc, log in helpers:
            if proc.wait() != 0:
                print(f"helper process failed (exit {proc.returncode}); its log: {log}",
                      flush=True)
    return {c: run_dir_of(c, preset, runs_root) for c in cases}


def _start_helper(k: int, cases, preset: str, data_root, runs_root):
    """Start helper ``k`` training ``cases`` in a subprocess; ``(Popen, log path)``."""
    import subprocess
    log = runs_dir(preset, runs_root) / f"helper{k}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    base, seed = PRESETS[preset].get("seed_of", (preset, 0))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--preset", base,
           "--train-seed", str(seed),
           "--data", str(data_root), "--cases", *cases]
    if runs_root:
        cmd += ["--runs", str(runs_root)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    print(f"helper {k} (pid {proc.pid}) trains alongside, starting with case {cases[0]}; "
          f"log {log}", flush=True)
    return proc, log


def train_cases_main(argv=None) -> int:
    """``python experiments/lin_common.py --preset P --data ROOT --cases C...``: train
    the cases one after another (skipping finished or locked ones, then waiting for
    those); the helper behind ``ensure_cases(jobs > 1)``."""
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    p = Parser(prog="python experiments/lin_common.py",
               description=train_cases_main.__doc__.split(";")[0])
    p.add_argument("--preset", choices=PRESETS, required=True)
    p.add_argument("--data", required=True, help="Lin et al. FITS root")
    p.add_argument("--runs", help="runs root (default runs/)")
    p.add_argument("--cases", nargs="+", choices=CASES, required=True)
    p.add_argument("--train-seed", type=int, default=0, help="training seed (default 0)")
    add_verbose(p)
    args = p.parse_args(argv)
    args.preset = with_seed(args.preset, args.train_seed)
    quiet_tensorflow(args.verbose)

    def run():
        root = ensure_data(args.preset, args.data, progress=False)  # given: must exist
        runs = ensure_cases(args.cases, args.preset, root, args.runs, progress=False)
        print(f"wrote the runs of case(s) {', '.join(runs)} in "
              f"{runs_dir(args.preset, args.runs)}")
    return run_cli(run)


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
    p.add_argument("--preset", choices=PRESETS, default="cpu",
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
    p.add_argument("--cases", nargs="+", choices=CASES + ("all",), metavar="CASE",
                   help=f"cases to train and plot, of {' '.join(CASES)}, or all (default: "
                        f"the preset's: "
                        + "; ".join(f"{k} {' '.join(v['cases'])}" for k, v in PRESETS.items())
                        + ")")
    return p


def resolve_cases(args, first: tuple = ()) -> list[str]:
    """``args.cases`` made concrete: the preset's default for none, every case for "all",
    ``first`` (cases a figure needs) put in front; sets and returns ``args.cases``."""
    asked = args.cases or PRESETS[args.preset]["cases"]
    cases = list(CASES) if "all" in asked else list(asked)
    args.cases = list(dict.fromkeys([*first, *cases]))
    return args.cases


def translate_cases(args, root: Path, cache: Path) -> dict:
    """``{case: translate_test_set(...)}`` for ``args.cases``, training missing cases
    first; only "ours" carries Noise-Emulator draws (Fig. 5's sigma)."""
    runs = ensure_cases(args.cases, args.preset, root, args.runs, not args.quiet, args.jobs)
    n_noise = PRESETS[args.preset]["n_noise"]
    return {c: translate_test_set(r, root, args.seed, cache,
                                  n_noise=n_noise if c == "ours" else 0)
            for c, r in runs.items()}


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


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(train_cases_main())
