"""Issue 18, item 2: a resumed run equals a run that was never stopped.

For each trainer (Pix2WGAN, Cascade Pix2WGAN, noise_gan) a run stopped after epoch (or
iteration) ``k`` -- ``train(epochs=k)`` then ``train(epochs=N, resume=True)`` -- must end
in the state of one uninterrupted ``epochs=N`` run in another folder:

* every variable of every trackable, bit for bit: the networks' weights and batch-norm
  statistics, every optimizer variable (``iterations``, Adam's moments, the learning
  rate, plus the rate of the next update where it comes from a schedule), the models'
  seed-generator states (WGAN-GP's α, noise_gan's emulator noise), the checkpoint's
  own counters, and the networks' own seed states (the Dropout layers'
  ``SeedGenerator``, which Keras 3 lists in ``Layer.variables``). Two views are
  compared: both final checkpoints restored into a fresh build (what a new process
  resumes from; every name saved in the checkpoint is covered) and the live models the
  runs ended with (which also hold whatever the checkpoint left out);
* the data order: a fingerprint of every batch a ``train_step`` received;
* history.csv (1-based ``epoch`` / ``iteration``), parsed as floats.

Exact comparisons, no tolerance: ``common.training.seed_everything`` documents that the
same seed gives bit-identical weights on CPU, and every passing test here confirms it.

Findings, when this file was written (each was an ``xfail(strict=True)`` test naming
the cause until fixed; companion tests take a cause away and show that everything else
resumes bit for bit):

1. Fixed: Pix2WGAN and cascade, data order (:data:`DATA_ORDER`; each epoch's order and
   augmentation now come from ``(seed, epoch)``, ``data.pipeline.epoch_seed``).
2. Fixed: Pix2WGAN and cascade, Dropout seed states not checkpointed
   (:data:`DROPOUT_SEEDS`; ``common.training.layer_seeds``).
3. Fixed: noise_gan step 1, the sample grid drew from the training seed
   (:data:`NG_GRID_SEED`; the grid now draws seeded noise).
4. Fixed: noise_gan, a step resumed mid-way restarted its data stream
   (:data:`NG_REPLAY`; ``lin_dataset(start=...)``, ``dataset.skip``).

Tiny and eager: 32 px, width 2, depth 3, batch 2, n_critic 1, two training galaxies
(one step an epoch, still shuffled and augmented), 2 epochs stopped after 1; noise_gan
at 8 / 24 px, one band, width 2, 2 iterations a step stopped after 1.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from cascade import trainer as cascade_trainer
from cascade.config import CascadeConfig
from cascade.model import CascadePix2WGAN
from common import callbacks, training
from data import pipeline
from data.layout import image_path
from noise_gan import trainer as ng
from noise_gan.config import NoiseGANConfig
from noise_gan.model import NoiseStep1, NoiseStep2
from pix2wgan import trainer as p2w
from pix2wgan.config import Pix2WGANConfig
from pix2wgan.model import Pix2WGAN
from tests.conftest import eagerly
from tests.fakes import SURVEYS, make_fake, write_manifest

#: fit runs eagerly here (see ``eager``); tf.data warns that this does not apply to it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Even though the `tf.config.experimental_run_functions_eagerly`:UserWarning")

#: Epochs of every Pix2WGAN / cascade run, and the epoch the interrupted one stops after.
EPOCHS, STOP = 2, 1
#: Training galaxies: one batch of 2 an epoch.
N_TRAIN = 2
TINY = dict(width=2, depth=3, image_size=32, batch_size=2, n_critic=1, n_samples=2)

DATA_ORDER = (
    "data order: a resumed run re-creates its training stream with seed "
    "cfg.seed + first_epoch (pix2wgan/trainer.py train(), cascade/trainer.py train()): "
    "its epoch k+1 is the first pass of another seed's shuffle and D4 augmentation, not "
    "the uninterrupted run's epoch k+1 (the next reshuffle of the seed-cfg.seed stream)")
DROPOUT_SEEDS = (
    "the generators' Dropout layers' SeedGenerator states are not checkpointed "
    "(common.training.RunState, as pix2wgan/trainer.py / cascade/trainer.py run_state() "
    "fill it, saves the networks' weights, the optimizers and the models' own seed "
    "only): a resumed run restarts the dropout masks from their initial seed state")
NG_GRID_SEED = (
    "noise_gan step 1: the sample grid (samples.sample_columns -> NoiseStep1.self_map "
    "-> emulate) draws emulator noise from the model's training seed_generator, and "
    "SampleGrids runs before the Checkpoint callback; a grid is drawn at the step's last "
    "iteration, so a run stopped by --iterations k draws one at k that the uninterrupted "
    "run does not, and checkpoints a seed state 4 draws ahead")
NG_REPLAY = (
    "noise_gan: a step resumed mid-way calls fit on the injected dataset from its first "
    "element again (trainer.train_step_of), replaying the batches the stopped run "
    "trained on instead of continuing after them (with lin_dataset it re-creates the "
    "stream with seed cfg.seed + done instead)")


# --- snapshots of trainable state ----------------------------------------------------------

def _values(trackables: dict) -> list[tuple[str, str, np.ndarray]]:
    """A snapshot ``[(key, label, value)]`` of every variable of every trackable.

    ``key`` (trackable name + index) pairs the variables of two separately built models
    (Keras' automatic names, e.g. ``seed_generator_3``, differ between builds in one
    process); ``label`` adds the variable's path, for messages. Keras layers and models
    give ``.variables`` (weights, batch-norm statistics, seed states), optimizers
    ``.variables`` (iterations, learning rate, moments) plus the learning rate of their
    next update (a schedule's value is no variable); anything else is one variable.
    """
    out = []
    for name, obj in trackables.items():
        if hasattr(obj, "variables"):
            for i, v in enumerate(obj.variables):
                out.append((f"{name}[{i}]", f"{name}[{i}] {v.path}", np.array(v)))
            if hasattr(obj, "iterations"):
                out.append((f"{name}.lr", f"{name} learning rate of the next update",
                            np.array(callbacks.current_lr(obj))))
        elif isinstance(obj, list):  # a list of variables (the Dropout seed states)
            out += [(f"{name}[{i}]", f"{name}[{i}] {v.path}", np.array(v))
                    for i, v in enumerate(obj)]
        else:
            out.append((name, name, np.array(obj)))
    return out


def _assert_same(a: list, b: list, what: str):
    """Snapshots ``a`` and ``b`` are bit-identical; else name every variable that
    differs with its largest difference."""
    assert [k for k, _, _ in a] == [k for k, _, _ in b], f"{what}: other variables"
    diffs = []
    for (_, label, x), (_, _, y) in zip(a, b):
        if x.shape != y.shape:
            diffs.append(f"{label}: shape {x.shape} != {y.shape}")
        elif not np.array_equal(x, y):
            gap = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
            diffs.append(f"{label}: max |a - b| = {gap:.3g}")
    assert not diffs, (f"{what}: {len(diffs)} of {len(a)} variables differ:\n  "
                       + "\n  ".join(diffs[:20])
                       + (f"\n  ... {len(diffs) - 20} more" if len(diffs) > 20 else ""))


def _restore_each(state: training.RunState, trackables: dict, paths: dict) -> dict:
    """``{name: snapshot}`` of one freshly built model with each checkpoint ``paths[name]``
    restored in turn (every checkpointed variable is overwritten by each restore; what
    the checkpoint lacks keeps its value from the build). The snapshot also holds the
    checkpoint's counters (``epoch``, ``save_counter``), and each checkpoint's top-level
    names must all be among the compared ones."""
    tracked = {**trackables, "epoch": state.epoch,
               "save_counter": state.checkpoint.save_counter}
    out = {}
    for name, path in paths.items():
        state.checkpoint.restore(str(path)).assert_existing_objects_matched()
        saved = {n.split("/")[0] for n, _ in tf.train.list_variables(str(path))}
        assert saved - {"_CHECKPOINTABLE_OBJECT_GRAPH"} <= set(tracked), (path, saved)
        out[name] = _values(tracked)
    return out


def _ckpt(run_dir: Path, number: int) -> Path:
    return Path(run_dir) / training.CHECKPOINTS / f"ckpt-{number}"


def _assert_same_history(path_a: Path, path_b: Path, unit: str, rows: int):
    """Same columns, ``unit`` counting 1..rows (1-based), the same values."""
    a, b = pd.read_csv(path_a), pd.read_csv(path_b)
    assert list(a.columns) == list(b.columns)
    assert len(a) == rows and a[unit].tolist() == b[unit].tolist()
    np.testing.assert_array_equal(a.to_numpy(np.float64), b.to_numpy(np.float64),
                                  err_msg=f"{path_a} vs {path_b}")


# --- the batches each train_step receives ------------------------------------------------

def _digest(*tensors) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(np.ascontiguousarray(np.asarray(t)).tobytes())
    return h.hexdigest()[:12]


class BatchLog:
    """Wraps ``train_step`` of the given ``keras.Model`` classes so that each call first
    notes a fingerprint of its batch (a ``tf.py_function``: works eagerly and inside a
    compiled train function); :meth:`take` returns and clears the notes."""

    def __init__(self, monkeypatch, *classes):
        self.seen: list[str] = []
        for cls in classes:
            monkeypatch.setattr(cls, "train_step", self._wrap(cls.train_step))

    def _wrap(self, step):
        seen = self.seen

        def train_step(model, data):
            def note(*tensors):
                seen.append(_digest(*tensors))
                return np.int32(0)
            done = tf.py_function(note, tf.nest.flatten(data), Tout=tf.int32)
            with tf.control_dependencies([done]):
                return step(model, data)
        return train_step

    def take(self) -> list[str]:
        out = list(self.seen)
        self.seen.clear()
        return out


@pytest.fixture(scope="module", autouse=True)
def eager():
    """Every run of this file fits eagerly (same ops; the compiled path's same-seed
    determinism is checked by tests/test_pix2wgan.py)."""
    with eagerly():
        yield


# --- an order-free JPEG set ----------------------------------------------------------------

def _d4(a: np.ndarray) -> list[np.ndarray]:
    """The eight flips / quarter turns of an ``[H, W, ...]`` array."""
    return [np.rot90(b, k) for b in (a, a[:, ::-1]) for k in range(4)]


def make_order_free(root: Path, *, size=32, n_train=N_TRAIN, n_test=2) -> Path:
    """A set on which the data order cannot matter: every galaxy has the same image in a
    survey (shuffling changes nothing), invariant under the pipeline's eight flips /
    quarter turns: a 4 x 4 pattern of ``size / 4`` px blocks, one grey for the corners,
    one for the centre, one for the edges (the three orbits of the dihedral group),
    saved without chroma subsampling, so that the JPEG decodes each 8 x 8 block to a
    constant and the decoded image stays symmetric."""
    ids, splits = write_manifest(root, n_train, n_test)
    for k, survey in enumerate(SURVEYS):
        m = np.full((4, 4), 60.0 + 20 * k)            # edges
        m[[0, 0, 3, 3], [0, 3, 0, 3]] = 40.0 + 10 * k  # corners
        m[1:3, 1:3] = 200.0 - 30 * k                   # centre
        rgb = np.stack([m, 0.8 * m + 10, 0.6 * m + 20], -1)
        img = np.kron(rgb, np.ones((size // 4, size // 4, 1))).astype(np.uint8)
        assert all(np.array_equal(img, g) for g in _d4(img))
        for gid, split in zip(ids, splits):
            path = image_path(root, split, survey, gid)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path, format="JPEG", quality=95, subsampling=0)
    return root


def _assert_order_free(root: Path, source: str, target: str, size: int):
    """The premise of the companion tests, checked on the pipeline itself: whatever the
    seed and the pass, the augmented, shuffled training stream yields one batch."""
    batches = set()
    for seed in (0, 1):
        ds = pipeline.make_dataset(root, "train", source, target, 2, training=True,
                                   seed=seed, image_size=size)
        batches |= {_digest(*b) for _ in range(2) for b in ds}
    assert len(batches) == 1, "the order-free set is not order-free"


# --- Pix2WGAN and cascade ------------------------------------------------------------------

@dataclass
class Trainer:
    """What the shared tests need of a Pix2WGAN-shaped trainer module."""
    name: str
    module: object       # train(cfg, run_dir, resume=, verbose=), build(cfg), run_state
    config: type
    model_cls: type
    trackables: object   # model -> {name in the checkpoint: trackable}, as run_state saves
    pairs: tuple         # (source, target) streams its training data is made of

    def restore_each(self, cfg, paths: dict) -> dict:
        """:func:`_restore_each` on one fresh ``build(cfg)``."""
        model = self.module.build(cfg)
        state = self.module.run_state(model, Path(next(iter(paths.values()))).parents[1])
        return _restore_each(state, self.trackables(model), paths)


def _p2w_trackables(m) -> dict:
    """What :func:`pix2wgan.trainer.run_state` checkpoints, under its names."""
    return {"generator": m.generator, "critic": m.critic, "g_optimizer": m.g_optimizer,
            "d_optimizer": m.d_optimizer, "seed": m.seed_generator.state,
            "dropout_seeds": training.layer_seeds(m.generator, m.critic)}


def _cascade_trackables(m) -> dict:
    """What :func:`cascade.trainer.run_state` checkpoints, under its names."""
    s1, s2 = m.stage1, m.stage2
    return {"g1": s1.generator, "d1": s1.critic, "g2": s2.generator, "d2": s2.critic,
            "g1_optimizer": s1.g_optimizer, "d1_optimizer": s1.d_optimizer,
            "g2_optimizer": s2.g_optimizer, "d2_optimizer": s2.d_optimizer,
            "seed1": s1.seed_generator.state, "seed2": s2.seed_generator.state,
            "dropout_seeds": training.layer_seeds(s1.generator, s1.critic, s2.generator,
                                                  s2.critic)}


TRAINERS = {
    "pix2wgan": Trainer("pix2wgan", p2w, Pix2WGANConfig, Pix2WGAN, _p2w_trackables,
                        (("decals", "hsc"),)),
    "cascade": Trainer("cascade", cascade_trainer, CascadeConfig, CascadePix2WGAN,
                       _cascade_trackables, (("sdss", "decals"), ("sdss", "hsc"))),
}


@dataclass
class Runs:
    """An uninterrupted ``EPOCHS``-epoch run in ``tmp/full``; a run in ``tmp/resumed``
    stopped after ``STOP`` epochs, then resumed to ``EPOCHS``. ``live``: snapshots of the
    models the calls returned (full, stopped, resumed); ``batches``: the fingerprints of
    the batches each call trained on; ``restored``: snapshots of checkpoints
    (``"full"``/``"resumed"``: the final ones, ``"full@1"``/``"resumed@1"``: after epoch
    ``STOP``) restored into one fresh build."""
    full_dir: Path
    resumed_dir: Path
    live: dict = field(default_factory=dict)
    batches: dict = field(default_factory=dict)
    restored: dict = field(default_factory=dict)


def _run_pair(t: Trainer, cfg, tmp: Path, log: BatchLog) -> Runs:
    runs = Runs(tmp / "full", tmp / "resumed")
    for name, epochs, run_dir, resume in (("full", EPOCHS, runs.full_dir, False),
                                          ("stopped", STOP, runs.resumed_dir, False),
                                          ("resumed", EPOCHS, runs.resumed_dir, True)):
        model = t.module.train(cfg(epochs=epochs), run_dir, resume=resume, verbose=0)
        runs.live[name] = _values(t.trackables(model))
        runs.batches[name] = log.take()
    runs.restored = t.restore_each(cfg(epochs=EPOCHS), {
        "full": _ckpt(runs.full_dir, EPOCHS), "resumed": _ckpt(runs.resumed_dir, EPOCHS),
        f"full@{STOP}": _ckpt(runs.full_dir, STOP),
        f"resumed@{STOP}": _ckpt(runs.resumed_dir, STOP)})
    return runs


@pytest.fixture(scope="module", params=list(TRAINERS))
def gan_runs(request, tmp_path_factory):
    """Per trainer, the two runs on a tiny ordinary set (shuffled, augmented, the
    generators' dropout 0.5: as trained for real)."""
    t = TRAINERS[request.param]
    tmp = tmp_path_factory.mktemp(t.name)
    data = make_fake(tmp / "ds", size=TINY["image_size"], n_train=N_TRAIN, n_test=2)

    def cfg(**kw):
        return t.config(data=str(data), **{**TINY, **kw})
    with pytest.MonkeyPatch.context() as mp:
        runs = _run_pair(t, cfg, tmp, BatchLog(mp, t.model_cls))
    return t, runs, cfg


def test_resume_equals_uninterrupted(gan_runs):
    """Stopped after epoch 1 and resumed to 2 == 2 epochs in one go: history.csv, every
    variable of the restored final checkpoints and of the returned models."""
    t, runs, _ = gan_runs
    _assert_same(runs.restored["full"], runs.restored["resumed"],
                 f"{t.name}: final checkpoints")
    _assert_same(runs.live["full"], runs.live["resumed"], f"{t.name}: returned models")
    _assert_same_history(runs.full_dir / training.HISTORY,
                         runs.resumed_dir / training.HISTORY, "epoch", EPOCHS)


def test_resume_keeps_counters_learning_rate_and_seed_states(gan_runs):
    """What resuming already gets right: the stopped run's epoch-1 checkpoint and history
    row are the uninterrupted run's, bit for bit; at the end both agree on the epoch
    counter, the optimizers' iteration counts, the per-epoch learning rate (logged and in
    every optimizer) and the models' seed states (α of the gradient penalty)."""
    t, runs, cfg = gan_runs
    _assert_same(runs.restored[f"full@{STOP}"], runs.restored[f"resumed@{STOP}"],
                 f"{t.name}: checkpoints after epoch {STOP}")
    a = pd.read_csv(runs.full_dir / training.HISTORY)
    b = pd.read_csv(runs.resumed_dir / training.HISTORY)
    assert a["epoch"].tolist() == b["epoch"].tolist() == list(range(1, EPOCHS + 1))
    np.testing.assert_array_equal(a.iloc[:STOP].to_numpy(), b.iloc[:STOP].to_numpy())
    np.testing.assert_array_equal(a["lr"], b["lr"])
    steps = N_TRAIN // TINY["batch_size"] * EPOCHS
    rate = cfg().lr / cfg().lr_decay ** (EPOCHS - 1)
    checked = 0
    for (key, label, x), (_, _, y) in zip(runs.restored["full"], runs.restored["resumed"]):
        if key in ("epoch", "save_counter") or key.startswith("seed"):
            expected = x  # the same in both
        elif label.endswith("/iteration"):
            expected = steps
        elif label.endswith("/learning_rate") or key.endswith(".lr"):
            expected = rate
        else:
            continue
        checked += 1
        np.testing.assert_array_equal(x, y, err_msg=label)
        np.testing.assert_allclose(x, expected, rtol=1e-6, err_msg=label)
    keys = [k for k, _, _ in runs.restored["full"]]
    n_seeds = sum(k.startswith("seed") for k in keys)
    n_optimizers = sum(k.endswith(".lr") for k in keys)
    assert n_seeds == len(t.pairs) and n_optimizers == 2 * len(t.pairs)
    # epoch, save_counter, the seed(s); iteration, rate, next rate of each optimizer
    assert checked == 2 + n_seeds + 3 * n_optimizers


def test_resumed_epochs_train_on_the_uninterrupted_batches(gan_runs):
    """The batches of epoch 1 (stopped run) then epoch 2 (resumed run) are, in order,
    the uninterrupted run's (same shuffle, same flips and rotations)."""
    _, runs, _ = gan_runs
    per_epoch = N_TRAIN // TINY["batch_size"]
    full = runs.batches["full"]
    assert len(full) == per_epoch * EPOCHS and len(set(full)) == len(full)
    assert runs.batches["stopped"] == full[:per_epoch * STOP]  # deterministic so far
    assert runs.batches["resumed"] == full[per_epoch * STOP:]


def test_checkpoint_holds_every_variable(gan_runs):
    """Everything that steers training is in the checkpoint: the final checkpoint of the
    uninterrupted run, restored into a fresh build, equals the live model it was saved
    from in every variable, the networks' seed states included."""
    t, runs, _ = gan_runs
    _assert_same(runs.live["full"], [v for v in runs.restored["full"]
                                     if v[0] not in ("epoch", "save_counter")],
                 f"{t.name}: live model vs its checkpoint")


@pytest.mark.parametrize("name", list(TRAINERS))
def test_resume_is_bit_identical_when_data_order_and_dropout_cannot_matter(
        name, tmp_path, monkeypatch):
    """Both causes taken away (an order-free set, ``dropout=0``), the resumed run equals
    the uninterrupted one bit for bit: history.csv, and every variable (weights,
    batch-norm statistics, every optimizer variable, the seed states, the checkpoint
    counters) of the final checkpoints and of the returned models."""
    t = TRAINERS[name]
    data = make_order_free(tmp_path / "ds")
    for source, target in t.pairs:
        _assert_order_free(data, source, target, TINY["image_size"])

    def cfg(**kw):
        return t.config(data=str(data), dropout=0.0, **{**TINY, **kw})
    runs = _run_pair(t, cfg, tmp_path, BatchLog(monkeypatch, t.model_cls))
    _assert_same(runs.restored["full"], runs.restored["resumed"],
                 f"{name}: final checkpoints")
    _assert_same(runs.live["full"], runs.live["resumed"], f"{name}: returned models")
    _assert_same_history(runs.full_dir / training.HISTORY,
                         runs.resumed_dir / training.HISTORY, "epoch", EPOCHS)


# --- noise_gan -----------------------------------------------------------------------------

#: Tiny noise_gan configs (as tests/test_noise_gan.py): 8 / 24 px, one band, width 2; the
#: rate divided by 5 every iteration, so a schedule off by one iteration shows.
NG_TINY = dict(width=2, noise_hidden=4, sdss_size=8, cfht_size=24, bands=1,
               batch_unpaired=2, batch_paired=2, n_samples=2, eager=True, lr_drop_every=1)


def _ng_cfg(**kw) -> NoiseGANConfig:
    return NoiseGANConfig(**{**NG_TINY, **kw}).validate()


def _ng_batch(cfg, seed) -> dict:
    """One training element ``{"sdss", "cfht", "pair_sdss", "pair_cfht"}`` drawn from
    the stateless seed ``seed`` (an int64 tensor ``[2]``)."""
    def img(n, size, k):
        return 0.5 * tf.random.stateless_normal((n, size, size, cfg.bands),
                                                seed + tf.constant([0, k], tf.int64))
    bu, bp, s, c = cfg.batch_unpaired, cfg.batch_paired, cfg.sdss_size, cfg.cfht_size
    return {"sdss": img(bu, s, 0), "cfht": img(bu, c, 1), "pair_sdss": img(bp, s, 2),
            "pair_cfht": img(bp, c, 3)}


def _constant_stream(cfg) -> tf.data.Dataset:
    """An infinite stream of one element: the data order cannot matter."""
    return tf.data.Dataset.from_tensors(
        _ng_batch(cfg, tf.constant([5, 0], tf.int64))).repeat()


def _varied_stream(cfg) -> tf.data.Dataset:
    """An infinite stream whose element ``i`` is drawn from seed ``(i, 7)``: all batches
    differ, so any change of order shows."""
    return tf.data.Dataset.range(1 << 40).map(
        lambda i: _ng_batch(cfg, tf.stack([i, tf.constant(7, tf.int64)])))


class NoiseRun:
    """``noise_gan.trainer.train`` on one run folder. Keeps snapshots of the models the
    steps ended with (``live[step]``, taken from ``train_step_of``'s return value) and
    the fingerprints of the batches each call trained on (``batches``, one list a
    call)."""

    def __init__(self, run_dir: Path, monkeypatch, log: BatchLog):
        self.run_dir, self.log = Path(run_dir), log
        self.live: dict = {}
        self.batches: list[list[str]] = []
        original = ng.train_step_of  # the wrapped one when another NoiseRun came first

        def keep(cfg, run_dir, step, *args):
            model = original(cfg, run_dir, step, *args)
            if Path(run_dir) == self.run_dir:
                self.live[step] = _values(ng.trackables(model))
            return model
        monkeypatch.setattr(ng, "train_step_of", keep)

    def __call__(self, cfg, step, dataset, resume=False):
        ng.train(cfg, self.run_dir, step=step, resume=resume, dataset=dataset,
                 progress=False)
        self.batches.append(self.log.take())



def _ng_restored(cfg, step: str, paths: dict) -> dict:
    """Snapshots of the step-``step`` checkpoints ``paths`` (``{name: ckpt prefix}``)
    restored in turn into one fresh ``build_step``."""
    model = ng.build_step(cfg, step)
    state = ng.run_state(model, Path(next(iter(paths.values()))).parents[2], step)
    return _restore_each(state, ng.trackables(model), paths)


def _ng_ckpt(run: NoiseRun, step: str, iteration: int) -> Path:
    return _ckpt(ng.step_dir(run.run_dir, step), iteration)


def _noise_runs(tmp: Path, monkeypatch) -> tuple[NoiseRun, NoiseRun]:
    log = BatchLog(monkeypatch, NoiseStep1, NoiseStep2)
    return (NoiseRun(tmp / "full", monkeypatch, log),
            NoiseRun(tmp / "resumed", monkeypatch, log))


@pytest.fixture
def noise_runs(tmp_path, monkeypatch):
    """An uninterrupted and an interrupted noise_gan run, in ``full`` and ``resumed``."""
    return _noise_runs(tmp_path, monkeypatch)


def _assert_noise_runs_equal(cfg, full: NoiseRun, resumed: NoiseRun, iterations: dict):
    """Per step (``iterations``: step -> its count): history.csv, every variable of the
    restored final checkpoints and of the live models the steps ended with, and each
    live model equal to its checkpoint (nothing that steers training left out)."""
    for step, n in iterations.items():
        got = _ng_restored(cfg, step, {"full": _ng_ckpt(full, step, n),
                                       "resumed": _ng_ckpt(resumed, step, n)})
        a, b = got["full"], got["resumed"]
        assert int(dict((k, v) for k, _, v in a)["epoch"]) == n
        _assert_same(a, b, f"noise_gan step {step}: final checkpoints")
        _assert_same(full.live[step], resumed.live[step], f"noise_gan step {step}: live")
        _assert_same(full.live[step], [v for v in a if v[0] not in ("epoch",
                                                                     "save_counter")],
                     f"noise_gan step {step}: live model vs its checkpoint")
        _assert_same_history(ng.step_dir(full.run_dir, step) / training.HISTORY,
                             ng.step_dir(resumed.run_dir, step) / training.HISTORY,
                             "iteration", n // cfg.steps_per_epoch_of(step))


def test_noise_gan_mid_step_stops_resume_bit_identical_when_order_and_grids_cannot_matter(
        noise_runs):
    """Variant "ours", one checkpoint an iteration: step 1 stopped after iteration 1; then
    ``--step both --resume`` finishes step 1 and runs step 2 to iteration 1; then
    ``--step both --resume`` finds step 1 finished and resumes step 2 to 2. Equals
    ``--step both`` in one go, bit for bit: both steps' history.csv and every variable
    (three optimizers in step 1, one in step 2: iterations, moments, the rate schedule;
    the frozen emulators; the seed state). The two causes are taken away: a one-element
    stream (order cannot matter) and a sample grid at every checkpoint (both runs draw
    the same grids, see :data:`NG_GRID_SEED`)."""
    full, resumed = noise_runs
    kw = dict(checkpoint_every=1, sample_every=1)
    cfg = _ng_cfg(iterations=2, step2_iterations=2, **kw)
    data = _constant_stream(cfg)
    full(cfg, "both", data)
    resumed(_ng_cfg(iterations=1, **kw), "1", data)
    resumed(_ng_cfg(iterations=2, step2_iterations=1, **kw), "both", data, resume=True)
    resumed(cfg, "both", data, resume=True)
    assert [len(b) for b in resumed.batches] == [1, 2, 1]
    _assert_noise_runs_equal(cfg, full, resumed, {"1": 2, "2": 2})
    np.testing.assert_allclose(
        pd.read_csv(ng.step_dir(resumed.run_dir, "2") / training.HISTORY)["lr"],
        [cfg.lr / 5, cfg.lr / 25], rtol=1e-6)


def test_noise_gan_step1_then_step2_equals_both_with_one_epoch_a_step(noise_runs):
    """``checkpoint_every`` larger than a step's iterations (one Keras epoch = the whole
    step): ``--step 1`` then ``--step 2`` == ``--step both``, on a stream whose batches
    all differ and with the default sample grids: the same batches in the same order,
    and bit-identical history.csv and variables of both steps (a stop at a step
    boundary loses nothing)."""
    full, resumed = noise_runs
    cfg = _ng_cfg(iterations=2, checkpoint_every=1000)
    assert cfg.steps_per_epoch_of("1") == cfg.steps_per_epoch_of("2") == 2
    data = _varied_stream(cfg)
    full(cfg, "both", data)
    resumed(cfg, "1", data)
    resumed(cfg, "2", data)
    assert len(full.batches[0]) == 4 and len(set(full.batches[0])) == 2
    assert resumed.batches[0] + resumed.batches[1] == full.batches[0]
    _assert_noise_runs_equal(cfg, full, resumed, {"1": 2, "2": 2})


@pytest.fixture(scope="module")
def noise_stopped_mid_step(tmp_path_factory):
    """Step 1 of "ours", one checkpoint an iteration, the default sample grids, on a
    stream whose batches all differ: 2 iterations in one go, and 1 then resumed to 2."""
    with pytest.MonkeyPatch.context() as mp:
        full, resumed = _noise_runs(tmp_path_factory.mktemp("noise_mid"), mp)
        cfg = _ng_cfg(iterations=2, checkpoint_every=1)
        data = _varied_stream(cfg)
        full(cfg, "1", data)
        resumed(_ng_cfg(iterations=1, checkpoint_every=1), "1", data)
        resumed(cfg, "1", data, resume=True)
    return cfg, full, resumed


def test_noise_gan_mid_step_resume_equals_uninterrupted(noise_stopped_mid_step):
    """Step 1 stopped after iteration 1 and resumed == 2 iterations in one go:
    history.csv and every variable."""
    cfg, full, resumed = noise_stopped_mid_step
    _assert_noise_runs_equal(cfg, full, resumed, {"1": 2})


def test_noise_gan_stopped_checkpoint_is_the_uninterrupted_runs(noise_stopped_mid_step):
    """The stopped run's checkpoint after iteration 1 is the uninterrupted run's
    checkpoint after iteration 1, every variable (both trained on the same first batch,
    so only what else moved the state can differ)."""
    cfg, full, resumed = noise_stopped_mid_step
    assert resumed.batches[0] == full.batches[0][:1]
    got = _ng_restored(cfg, "1", {"full": _ng_ckpt(full, "1", 1),
                                  "resumed": _ng_ckpt(resumed, "1", 1)})
    _assert_same(got["full"], got["resumed"],
                 "noise_gan step 1: checkpoints after iteration 1")


def test_noise_gan_mid_step_resume_continues_the_stream(noise_stopped_mid_step):
    """The resumed iteration trains on the batch the uninterrupted run trained on at
    iteration 2, not on the stopped run's batch again."""
    _, full, resumed = noise_stopped_mid_step
    assert len(set(full.batches[0])) == 2
    assert resumed.batches[0] + resumed.batches[1] == full.batches[0]
