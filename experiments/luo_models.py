"""Table 1's trained models and their data, shared by table1.py and every Luo figure script.

* :data:`MODELS`: the four models of Table 1 and their run-folder suffixes;
* :func:`effective_settings` / :func:`train_config`: one training schedule for all four
  models, the preset's (:data:`experiments.presets.LUO_PRESETS`) with flag overrides;
* :func:`ensure_data`: the preset's dataset (simulated on first use) or a given folder;
* :func:`run_base` / :func:`run_dir` / :func:`epochs_done`: where a model's run lives
  (``runs/table1-<preset>``, ``-cascade``, ...) and how far it trained;
* :func:`load_or_train`: a finished run loaded, an unfinished one resumed, a missing one
  trained; :func:`chain`: networks applied one after the other (the cascade G2∘G1).

Model functions map ``[B, H, W, 3]`` float32 in [-1, 1] to the same. Nothing here imports
TensorFlow at module level: ``--help`` of every script stays fast.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from data.layout import REPO_ROOT, data_root, default_sim_dir
from experiments.presets import LUO_PRESETS

#: The trained models: key -> (what, run-folder suffix). Pix2WGAN keeps the plain folder.
MODELS = {
    "pix2wgan": ("Pix2WGAN DECaLS->HSC (Pseudo-HSC¹)", ""),
    "cascade": ("Cascade Pix2WGAN SDSS->DECaLS->HSC (Pseudo-HSC²)", "-cascade"),
    "pix2pix": ("classic pix2pix (BCE) DECaLS->HSC", "-pix2pix"),
    "direct": ("Pix2WGAN SDSS->HSC without the cascade", "-direct"),
}

#: The training settings a flag can override, and the flag.
TRAIN_FLAGS = {"width": "--width", "epochs": "--epochs", "batch_size": "--batch-size",
               "precision": "--precision"}


def flag_overrides(args) -> dict:
    """``{setting: value or None}`` of the :data:`TRAIN_FLAGS` a parsed command line
    has (a script without a flag, e.g. the figures' missing ``--precision``: None)."""
    return {name: getattr(args, name, None) for name in TRAIN_FLAGS}


def effective_settings(preset: dict, overrides: dict | None = None) -> tuple[dict, dict]:
    """``(settings, overridden)``: the training settings the four models get (the
    preset's departures from the paper's defaults, then every non-None value of
    ``overrides`` (``{setting: value}``, :data:`TRAIN_FLAGS`), precision resolved, e.g.
    ``auto`` -> ``bf16``), and ``{name: the value the override replaced}`` (None: the
    paper's default) for each setting overridden."""
    from common.training import resolve_precision
    settings, overridden = dict(preset["train"]), {}
    for name, value in (overrides or {}).items():
        if value is not None:
            overridden[name] = settings.get(name)
            settings[name] = value
    if "precision" in settings:
        settings["precision"] = resolve_precision(settings["precision"])
    return settings, overridden


def ensure_data(preset: str, data: str | Path | None = None, progress: bool = True) -> Path:
    """The dataset root: ``data``, or the simulated set of
    :data:`experiments.presets.LUO_PRESETS` ``[preset]`` (made if missing)."""
    if data:
        return Path(data)
    from data.sim_luo import SimConfig, ensure_simulated
    pre = LUO_PRESETS[preset]
    root = default_sim_dir() if pre["folder"] is None else data_root() / pre["folder"]
    return ensure_simulated(SimConfig(out=root, progress=progress, **pre["sim"]))


def train_config(preset: dict, root: Path, key: str = "pix2wgan", seed: int = 0,
                 overrides: dict | None = None):
    """The config of model ``key`` (see :data:`MODELS`) under ``preset`` (a
    :data:`experiments.presets.LUO_PRESETS` entry) and ``overrides``, with training seed
    ``seed``; one schedule for all four models (:func:`effective_settings`)."""
    from pix2wgan.config import Pix2WGANConfig
    settings, _ = effective_settings(preset, overrides)
    settings["seed"] = seed
    if key == "cascade":
        from cascade.config import CascadeConfig
        return CascadeConfig(data=str(root), **settings).validate()
    source, loss = {"pix2wgan": ("decals", "wgan-gp"), "pix2pix": ("decals", "bce"),
                    "direct": ("sdss", "wgan-gp")}[key]
    return Pix2WGANConfig(data=str(root), source=source, target="hsc", loss=loss,
                          **settings).validate()


def run_base(run: str | Path | None, preset: str, seed: int = 0) -> Path:
    """Pix2WGAN's run folder of ``seed`` (the others add :data:`MODELS` suffixes):
    ``run`` or ``runs/table1-PRESET``, with ``-seedS`` for seeds after the first."""
    base = str(run or REPO_ROOT / "runs" / f"table1-{preset}")
    return Path(base + (f"-seed{seed}" if seed else ""))


def run_dir(run: str | Path | None, preset: str, key: str) -> Path:
    """Run folder of model ``key`` (seed 0): the folder table1.py trains."""
    return Path(f"{run_base(run, preset)}{MODELS[key][1]}")


def epochs_done(run: Path) -> int:
    """Epochs recorded in ``run/history.csv`` (0 if none): its distinct epoch numbers, so
    that runs written before history.csv counted from 1 (0-based) count alike."""
    hist = run / "history.csv"
    if not hist.is_file():
        return 0
    try:
        df = pd.read_csv(hist)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return 0
    return int(df["epoch"].nunique())


def load_or_train(preset: str, root: Path, key: str, run: str | Path | None = None,
                  skip_train: bool = False, overrides: dict | None = None,
                  quiet: bool = False):
    """``(fn, note)``: model ``key`` ("pix2wgan" or "cascade") of ``preset``.

    Loads the finished run that table1.py trained (``generator.keras`` or
    ``g1.keras``/``g2.keras`` present and all the preset's epochs in history.csv);
    otherwise resumes/trains it with table1's settings, unless ``skip_train``.
    ``fn``: ``[B, H, W, 3]`` float32 in [-1, 1] -> pseudo-HSC, same shape and range.
    """
    from cascade.trainer import G1_FILE, load_cascade
    from pix2wgan.trainer import GENERATOR_FILE, load_generator
    from pix2wgan.model import chain

    folder = run_dir(run, preset, key)
    what = MODELS[key][0]
    cfg = train_config(LUO_PRESETS[preset], root, key, overrides=overrides)
    final = folder / (G1_FILE if key == "cascade" else GENERATOR_FILE)
    done = epochs_done(folder)
    if final.is_file() and (done >= cfg.epochs or skip_train):
        nets = load_cascade(folder) if key == "cascade" else (load_generator(folder),)
        note = f"{what}: finished run {folder} ({done} epochs)"
    elif skip_train:
        raise FileNotFoundError(f"{what}: no finished model in {folder} (--skip-train); "
                                f"train it with `python experiments/table1.py --preset "
                                f"{preset}` or drop --skip-train")
    else:
        from cascade.trainer import train as train_cascade
        from pix2wgan.trainer import train
        has_ckpt = (folder / "checkpoints" / "checkpoint").is_file()
        print(f"=== {what}: {'resuming' if has_ckpt else 'training'} {folder} "
              f"(Table 1's settings, preset {preset}) ===")
        t0 = time.time()
        fit = train_cascade if key == "cascade" else train
        model = fit(cfg, folder, resume=has_ckpt, verbose=0 if quiet else "auto")
        nets = ((model.stage1.generator, model.stage2.generator) if key == "cascade"
                else (model.generator,))
        note = f"{what}: trained here, run {folder} ({time.time() - t0:.0f} s)"
    return chain(nets), note
