"""``train(config, run_dir)``: the importable Cascade Pix2WGAN job behind the CLI.

Trained through the shared harness (:func:`common.training.setup_run`,
:func:`common.training.fit_epochs`), as Pix2WGAN: config.json, checkpoints of the four
networks, four optimizers and the epoch, history.csv, TensorBoard logs, sample grids,
ending with ``g1.keras`` (SDSS -> pseudo-DECaLS) and ``g2.keras`` (-> pseudo-HSC).
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from cascade.config import CascadeConfig
from cascade.data import make_triplets
from cascade.model import CascadePix2WGAN
from common import training
from common.saved import Saved, find_saved, load_archive, restore_nets, save_archive
from data import pipeline
from data.layout import read_manifest
from data.sim_luo import ensure_simulated

G1_FILE, G2_FILE = "g1.keras", "g2.keras"


def build(cfg: CascadeConfig,
          strategy: tf.distribute.Strategy | None = None) -> CascadePix2WGAN:
    """Networks + four Adam optimizers (§4.2 settings) for ``cfg``, created under
    ``strategy``'s scope (default: the current strategy)."""
    training.set_precision(cfg.precision)
    training.seed_everything(cfg.seed)  # the initialisers and dropout draw from it
    with (strategy or tf.distribute.get_strategy()).scope():
        model = CascadePix2WGAN.from_config_dataclass(cfg)
        model.compile([training.make_adam(cfg.lr, cfg.beta_1, cfg.beta_2, cfg.precision)
                       for _ in range(4)], jit_compile=cfg.jit_compile)
    return model


def run_state(model: CascadePix2WGAN, run_dir: Path) -> training.RunState:
    s1, s2 = model.stage1, model.stage2
    return training.RunState(
        run_dir, g1=s1.generator, d1=s1.critic, g2=s2.generator, d2=s2.critic,
        g1_optimizer=s1.g_optimizer, d1_optimizer=s1.d_optimizer,
        g2_optimizer=s2.g_optimizer, d2_optimizer=s2.d_optimizer,
        seed1=s1.seed_generator.state, seed2=s2.seed_generator.state,
        dropout_seeds=training.layer_seeds(s1.generator, s1.critic, s2.generator, s2.critic))


def train(cfg: CascadeConfig, run_dir: Path, resume: bool = False,
          verbose: int | str = "auto", strategy: str = "default",
          gpus: int = 0) -> CascadePix2WGAN:
    """Train (or resume) a cascade run; returns the model. Everything lands in ``run_dir``.
    ``strategy``, ``gpus`` and the per-replica batch: see :func:`common.training.setup_run`."""
    with training.undone_if_failed(run_dir):  # a failed start leaves no files
        run = training.setup_run(cfg, run_dir, resume, strategy, gpus, build_fn=build,
                                 state_fn=run_state, manifest=read_manifest,
                                 default_data=ensure_simulated)
        cfg, root, train_ids, test_ids = run.cfg, run.root, run.train_ids, run.test_ids
        model, first_epoch = run.model, run.first_epoch
        n_rep = training.replicas(run.strategy)
        print(f"data {root}: {len(train_ids)} train / {len(test_ids)} test galaxies; "
              f"{cfg.source} -> {cfg.bridge} -> {cfg.target}; stage-2 gradient into G1 "
              f"{'on' if cfg.stage2_grad else 'off'}; starting at epoch {first_epoch + 1} "
              f"of {cfg.epochs}")

        def triplets(split, batch, ids, train_mode, drop=None):
            return make_triplets(root, split, cfg.source, cfg.bridge, cfg.target, batch,
                                 training=train_mode, seed=cfg.seed, ids=ids,
                                 image_size=cfg.image_size, drop_remainder=drop,
                                 epochs=(first_epoch, cfg.epochs))
        # The epochs still to run, each ordered by (seed, epoch) alone (see
        # data.pipeline.epoch_seed). Global batch = per-replica iteration batch x replicas.
        global_batch = cfg.iteration_batch * n_rep
        train_ds, checked = triplets("train", global_batch, train_ids, True)
        n_val = training.N_VAL
        vb, vdrop = training.val_batch(cfg, min(len(test_ids), n_val), n_rep)
        val_ds, _ = triplets("test", vb, test_ids[:n_val], False, drop=vdrop)
        sdss, _, hsc = next(iter(triplets("test", cfg.n_samples, test_ids[:cfg.n_samples],
                                          False)[0]))

        def columns():  # SDSS | pseudo-DECaLS | pseudo-HSC | HSC
            mid = model.bridge(sdss, training=False)
            return sdss, mid, model.stage2.generator(mid, training=False), hsc

        # An unreadable image behind `checked` becomes one DataError naming it.
        with pipeline.data_errors(checked):
            training.fit_epochs(run, run_dir, train_ds, val_ds, model.optimizers, columns,
                                pipeline.batches_per_epoch(len(train_ids), global_batch),
                                verbose)
        save_archive(model.stage1.generator, Path(run_dir) / G1_FILE)
        save_archive(model.stage2.generator, Path(run_dir) / G2_FILE)
        training.say_wrote(run_dir, [G1_FILE, G2_FILE], cfg.epochs, "cascade.predict")
        return model


def find_cascade(path: Path | str) -> Saved:
    """:func:`common.saved.find_saved` for a cascade run folder (``g1.keras`` and
    ``g2.keras``, or the newest checkpoint of an unfinished run)."""
    return find_saved(path, (G1_FILE, G2_FILE), "cascade.train")


def load_cascade(path: Path | str | Saved):
    """``(g1, g2)`` from a cascade run folder (``g1.keras``, ``g2.keras``); from an
    unfinished run, built from its config.json and restored from its newest checkpoint."""
    saved = path if isinstance(path, Saved) else find_cascade(path)
    if saved.checkpoint is None:
        return tuple(load_archive(f) for f in saved.files)
    nets = restore_nets(saved, CascadeConfig, build, lambda m: {
        "g1": m.stage1.generator, "g2": m.stage2.generator})
    return nets["g1"], nets["g2"]
