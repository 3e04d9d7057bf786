"""``train(config, run_dir)``: the importable Pix2WGAN training job behind the CLI, and
``find_generator`` / ``load_generator`` for prediction and figures.

Training goes through the shared harness (:func:`common.training.setup_run`,
:func:`common.training.fit_epochs`): config.json, checkpoints, history.csv, TensorBoard
logs and sample grids in ``run_dir``, ending with ``generator.keras``.
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from common import training
from common.saved import Saved, find_saved, load_archive, restore_nets, save_archive
from data import pipeline
from data.layout import read_manifest
from data.sim_luo import ensure_simulated
from pix2wgan.config import Pix2WGANConfig
from pix2wgan.model import Pix2WGAN

GENERATOR_FILE = "generator.keras"


def build(cfg: Pix2WGANConfig, strategy: tf.distribute.Strategy | None = None) -> Pix2WGAN:
    """Networks + optimizers for ``cfg`` (sets the global precision policy first), their
    variables created under ``strategy``'s scope (default: the current strategy)."""
    training.set_precision(cfg.precision)
    training.seed_everything(cfg.seed)  # the initialisers and dropout draw from it
    with (strategy or tf.distribute.get_strategy()).scope():
        model = Pix2WGAN.from_config_dataclass(cfg)
        model.compile(
            g_optimizer=training.make_adam(cfg.lr, cfg.beta_1, cfg.beta_2, cfg.precision),
            d_optimizer=training.make_adam(cfg.lr, cfg.beta_1, cfg.beta_2, cfg.precision),
            jit_compile=cfg.jit_compile)
    return model


def run_state(model: Pix2WGAN, run_dir: Path) -> training.RunState:
    return training.RunState(run_dir, generator=model.generator, critic=model.critic,
                             g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer,
                             seed=model.seed_generator.state,
                             dropout_seeds=training.layer_seeds(model.generator, model.critic))


def train(cfg: Pix2WGANConfig, run_dir: Path, resume: bool = False,
          verbose: int | str = "auto", strategy: str = "default",
          gpus: int = 0) -> Pix2WGAN:
    """Train (or resume) a run; returns the model. Everything lands in ``run_dir``.

    ``strategy``/``gpus``: see :func:`common.training.make_strategy` (a hardware choice,
    so not part of the saved config: a run may be resumed on another machine).
    ``cfg.batch_size`` is per replica; the global batch is that times the replicas.
    """
    with training.undone_if_failed(run_dir):  # a failed start leaves no files
        run = training.setup_run(cfg, run_dir, resume, strategy, gpus, build_fn=build,
                                 state_fn=run_state, manifest=read_manifest,
                                 default_data=ensure_simulated)
        cfg, root, train_ids, test_ids = run.cfg, run.root, run.train_ids, run.test_ids
        model, first_epoch = run.model, run.first_epoch
        n_rep = training.replicas(run.strategy)
        print(f"data {root}: {len(train_ids)} train / {len(test_ids)} test galaxies; "
              f"{cfg.source} -> {cfg.target}; starting at epoch {first_epoch + 1} of "
              f"{cfg.epochs}")

        # The epochs still to run; each epoch's order depends on (seed, epoch) alone, so
        # a resumed run gets the batches of an uninterrupted one. Keras splits each
        # global batch along axis 0 into one slice per replica, and each replica splits
        # its slice into n_critic critic batches (model.train_step).
        global_batch = cfg.iteration_batch * n_rep
        train_ds = pipeline.make_dataset(root, "train", cfg.source, cfg.target,
                                         global_batch, training=True,
                                         seed=cfg.seed, epochs=(first_epoch, cfg.epochs),
                                         ids=train_ids, image_size=cfg.image_size)
        n_val = training.N_VAL
        vb, vdrop = training.val_batch(cfg, min(len(test_ids), n_val), n_rep)
        val_ds = pipeline.make_dataset(root, "test", cfg.source, cfg.target, vb,
                                       training=False, ids=test_ids[:n_val],
                                       image_size=cfg.image_size, drop_remainder=vdrop)
        x_low, x_high = next(iter(pipeline.make_dataset(
            root, "test", cfg.source, cfg.target, cfg.n_samples, training=False,
            ids=test_ids[:cfg.n_samples], image_size=cfg.image_size)))

        # An unreadable image becomes one DataError naming it.
        with pipeline.data_errors(train_ds):
            training.fit_epochs(
                run, run_dir, train_ds, val_ds, [model.g_optimizer, model.d_optimizer],
                lambda: (x_low, model.generator(x_low, training=False), x_high),
                pipeline.batches_per_epoch(len(train_ids), global_batch), verbose)
        save_archive(model.generator, Path(run_dir) / GENERATOR_FILE)
        training.say_wrote(run_dir, [GENERATOR_FILE], cfg.epochs, "pix2wgan.predict")
        return model


def find_generator(path: Path | str) -> Saved:
    """:func:`common.saved.find_saved` for a Pix2WGAN generator (``generator.keras``)."""
    return find_saved(path, (GENERATOR_FILE,), "pix2wgan.train")


def load_generator(path: Path | str | Saved):
    """Load a generator from a ``.keras`` file or from a run folder holding one; from an
    unfinished run folder, build it from config.json and restore its newest checkpoint."""
    saved = path if isinstance(path, Saved) else find_generator(path)
    if saved.checkpoint is None:
        return load_archive(saved.files[0])
    return restore_nets(saved, Pix2WGANConfig, build,
                        lambda m: {"generator": m.generator})["generator"]
