"""data.pipeline on a tiny hand-made dataset (32x32 JPEGs, no simulator)."""
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from common import images
from common.errors import DataError
from data import checks, pipeline
from data.layout import image_path
from data.render import blank_level
from data.surveys import get_survey
from tests import fakes

SIZE = 32
SURVEYS = fakes.SURVEYS
N_TRAIN, N_TEST = 6, 3


def _decode(path):
    return np.asarray(Image.open(path).convert("RGB"))


def make_fake(root, identical=False, seed=0):
    return fakes.make_fake(root, size=SIZE, n_train=N_TRAIN, n_test=N_TEST,
                           identical=identical, seed=seed)


@pytest.fixture
def root(tmp_path):
    return make_fake(tmp_path / "ds")


def _ds(root, split="test", source="sdss", target="hsc", batch_size=2, **kw):
    kw.setdefault("training", False)
    kw.setdefault("progress", False)
    return pipeline.make_dataset(root, split, source, target, batch_size,
                                 image_size=SIZE, **kw)


def _d4(img):
    """All 8 flips/rotations of [H, W, C]."""
    return [np.rot90(f, k) for f in (img, img[:, ::-1]) for k in range(4)]


# ------------------------------------------------------------------ scaling
def test_normalize_denormalize_round_trip_and_ranges():
    u = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    x = images.normalize(u)
    assert x.dtype == tf.float32
    assert float(tf.reduce_min(x)) == -1.0 and float(tf.reduce_max(x)) == 1.0
    assert float(images.normalize(np.float32(127.5))) == 0.0  # eq. 8's midpoint
    np.testing.assert_array_equal(images.denormalize(x, tf.uint8).numpy(), u)
    np.testing.assert_allclose(images.denormalize(x).numpy(), u, atol=1e-4)
    # generator output slightly out of [-1, 1] is clipped into [0, 255]
    np.testing.assert_array_equal(images.denormalize([-1.5, 0.0, 1.2]).numpy(),
                                  [0.0, 127.5, 255.0])


# ------------------------------------------------------------------ reading
def test_eval_batches_shape_dtype_range_and_values(root):
    batches = list(_ds(root, with_ids=True))
    assert [b[0].shape[0] for b in batches] == [2, 1]  # eval keeps the partial batch
    ids = [i.decode() for b in batches for i in b[2].numpy()]
    assert ids == ["g06", "g07", "g08"]  # manifest order
    for x, y, gids in batches:
        for t in (x, y):
            assert t.dtype == tf.float32 and t.shape[1:] == (SIZE, SIZE, 3)
            assert -1.0 <= float(tf.reduce_min(t)) and float(tf.reduce_max(t)) <= 1.0
        for k, gid in enumerate(gids.numpy()):
            for t, s in ((x, "sdss"), (y, "hsc")):
                want = images.normalize(_decode(image_path(root, "test", s, gid.decode())))
                np.testing.assert_allclose(t[k].numpy(), want.numpy(), atol=1e-6)


def test_training_augments_input_and_target_identically(tmp_path):
    root = make_fake(tmp_path / "same", identical=True)
    ds = _ds(root, "train", "sdss", "hsc", batch_size=3, training=True, seed=3,
             with_ids=True)
    changed = 0
    for _ in range(2):  # two epochs: 12 pairs, each P(unchanged) = 1/8
        for x, y, gids in ds:
            np.testing.assert_array_equal(x.numpy(), y.numpy())
            for k, gid in enumerate(gids.numpy()):
                orig = images.normalize(
                    _decode(image_path(root, "train", "sdss", gid.decode()))).numpy()
                errs = [np.abs(x[k].numpy() - c).max() for c in _d4(orig)]
                assert min(errs) < 1e-6  # it is one of the 8 flips/rotations
                changed += int(np.argmin(errs) != 0)
    assert changed > 0


def test_training_defaults_drop_remainder_and_yields_pairs(root):
    batches = list(_ds(root, "train", batch_size=4, training=True, seed=0))
    assert len(batches) == 1 and len(batches[0]) == 2
    assert batches[0][0].shape == (4, SIZE, SIZE, 3)


def test_augment_off_shuffles_only(root):
    x, _, gids = next(iter(_ds(root, "train", batch_size=6, training=True, seed=0,
                               augment=False, with_ids=True)))
    order = [g.decode() for g in gids.numpy()]
    assert sorted(order) == [f"g0{i}" for i in range(N_TRAIN)]
    assert order != sorted(order)  # shuffled (fixed seed: not by luck)
    for k, gid in enumerate(order):
        want = images.normalize(_decode(image_path(root, "train", "sdss", gid)))
        np.testing.assert_array_equal(x[k].numpy(), want.numpy())


def test_seed_determinism_reshuffle_and_any_epoch_rebuilt_alone(root):
    def epochs(seed, first=0, last=2):  # the stream's batches, cut into its epochs
        ds = _ds(root, "train", batch_size=2, training=True, seed=seed, with_ids=True,
                 epochs=(first, last))
        batches = [(x.numpy(), y.numpy(), i.numpy()) for x, y, i in ds]
        per = pipeline.batches_per_epoch(N_TRAIN, 2)
        assert len(batches) == per * (last - first)
        return [batches[k:k + per] for k in range(0, len(batches), per)]

    def flat(epoch, part):
        return np.concatenate([b[part] for b in epoch])

    a, b, c = epochs(7), epochs(7), epochs(8)
    for ea, eb in zip(a + epochs(7, 1, 2), b + b[1:]):
        # same seed: same order and augmentation, epoch by epoch; and epoch 1 built on
        # its own (a resumed run) is the full stream's epoch 1
        for part in range(3):
            np.testing.assert_array_equal(flat(ea, part), flat(eb, part))
    # A new epoch reshuffles and re-augments; another seed differs.
    assert not np.array_equal(flat(a[0], 2), flat(a[1], 2))
    assert not np.array_equal(flat(a[0], 0), flat(a[1], 0))
    assert not np.array_equal(flat(a[0], 0), flat(c[0], 0))


def test_streams_from_files_at_iteration_time(root):
    ds = _ds(root, batch_size=3, with_ids=True)
    # built from path strings, not arrays of pixels
    path = image_path(root, "test", "hsc", "g07")
    new = np.full((SIZE, SIZE, 3), 200, np.uint8)
    new[:4] = 10
    fakes.write_jpeg(path, new)  # replaced after the dataset was built
    x, y, gids = next(iter(ds))
    k = [g.decode() for g in gids.numpy()].index("g07")
    np.testing.assert_allclose(y[k].numpy(), images.normalize(_decode(path)).numpy(),
                               atol=1e-6)


def test_source_and_target_any_survey(root):
    x, y = next(iter(_ds(root, source="hsc", target="decals")))
    want = images.normalize(_decode(image_path(root, "test", "decals", "g06")))
    np.testing.assert_allclose(y[0].numpy(), want.numpy(), atol=1e-6)


def test_image_dataset_folder_file_and_list(root):
    folder = root / "test" / "decals"
    ds = pipeline.image_dataset(folder, 2, survey="decals", image_size=SIZE,
                                progress=False)
    batches = list(ds)
    paths = [p.decode() for _, b in batches for p in b.numpy()]
    assert paths == sorted(str(folder / f"g0{i}.jpg") for i in (6, 7, 8))
    imgs = np.concatenate([b.numpy() for b, _ in batches])
    assert imgs.shape == (3, SIZE, SIZE, 3) and imgs.dtype == np.float32
    assert imgs.min() >= -1 and imgs.max() <= 1
    one = list(pipeline.image_dataset(paths[1], 4, image_size=SIZE, progress=False))
    np.testing.assert_array_equal(one[0][0].numpy()[0], imgs[1])
    assert len(list(pipeline.image_dataset(paths, 4, image_size=SIZE,
                                           progress=False))) == 1
    with pytest.raises(DataError, match="no .jpg"):
        pipeline.image_dataset(root, 2, image_size=SIZE)  # root holds only a csv
    with pytest.raises(DataError, match="nope.jpg"):
        pipeline.image_dataset([folder / "nope.jpg"], 2, image_size=SIZE)


# ------------------------------------------------------------------ validation cache
def test_validate_split_caches_until_a_file_changes(root):
    n = len(SURVEYS) * N_TRAIN
    assert checks.validate_split(root, "train", image_size=SIZE, progress=False) == n
    assert checks.validate_split(root, "train", image_size=SIZE, progress=False) == 0
    assert checks.validate_split(root, "train", image_size=SIZE, cache=False,
                                   progress=False) == n
    path = image_path(root, "train", "decals", "g02")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert checks.validate_split(root, "train", image_size=SIZE, progress=False) == n


# ------------------------------------------------------------------ errors
def _corrupt(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_missing_file_named_up_front(root):
    path = image_path(root, "test", "hsc", "g07")
    path.unlink()
    with pytest.raises(DataError, match=rf"1 of 6 files .*first: {path}$"):
        _ds(root)


def test_file_deleted_after_building_is_named_while_iterating(root):
    ds = _ds(root)
    path = image_path(root, "test", "sdss", "g07")
    path.unlink()
    with pytest.raises(DataError, match=rf"^{path}: file is missing$"):
        list(pipeline.iterate_checked(ds))


def test_manifest_row_without_files(root):
    df = pd.read_csv(root / "manifest.csv", dtype={"id": str})
    df.loc[len(df)] = ["ghost", 150.5, 2.5, "test"]
    df.to_csv(root / "manifest.csv", index=False)
    with pytest.raises(DataError, match=str(image_path(root, "test", "sdss", "ghost"))):
        _ds(root)


def test_corrupt_jpeg(root):
    path = image_path(root, "test", "sdss", "g08")
    _corrupt(path)
    with pytest.raises(DataError, match=rf"^{path}: not a readable JPEG"):
        _ds(root)
    # Skipping validation, the error while iterating still names the file.
    ds = _ds(root, validate=False)
    with pytest.raises(DataError, match=rf"^{path}: not a readable JPEG"):
        list(pipeline.iterate_checked(ds))


def test_not_a_jpeg(root):
    path = image_path(root, "test", "hsc", "g06")
    Image.fromarray(fakes.fake_image(np.random.default_rng(1), SIZE)).save(path, format="PNG")
    with pytest.raises(DataError, match=rf"^{path}: not a JPEG file"):
        _ds(root)
    with pytest.raises(DataError, match=rf"^{path}: not a JPEG file$"):
        with pipeline.data_errors():  # the in-graph check alone names the file
            list(_ds(root, validate=False))


def test_wrong_size(root):
    path = image_path(root, "test", "hsc", "g07")
    fakes.write_jpeg(path, np.zeros((SIZE, SIZE + 8, 3), np.uint8) + 90)
    msg = rf"^{path}: expected a 32x32x3 RGB image, got 40x32"  # PIL: W x H
    with pytest.raises(DataError, match=msg):
        _ds(root)
    with pytest.raises(DataError, match=rf"^{path}: expected a 32x32x3 RGB image, "
                                        r"got 32x40x3$"):  # TF: H x W x C
        with pipeline.data_errors():
            list(_ds(root, validate=False))
    grey = image_path(root, "test", "sdss", "g06")
    Image.fromarray(np.full((SIZE, SIZE), 90, np.uint8)).save(grey, format="JPEG")
    with pytest.raises(DataError, match=rf"^{grey}: .* got 32x32 L"):
        _ds(root)


@pytest.mark.parametrize("survey", ["sdss", "hsc"])
def test_blank_cutout(root, survey):
    blank = blank_level(get_survey(survey))
    assert blank == {"sdss": 22, "hsc": 32}[survey]
    path = image_path(root, "test", survey, "g07")
    fakes.write_jpeg(path, np.full((SIZE, SIZE, 3), blank, np.uint8))
    with pytest.raises(DataError, match=rf"^{path}: blank cutout"):
        _ds(root, source="sdss", target="hsc")
    with pytest.raises(DataError, match=rf"^{path}: blank cutout"):
        with pipeline.data_errors():
            list(_ds(root, source="sdss", target="hsc", validate=False))


def test_uniform_but_not_blank_grey_is_accepted(root):
    # A flat image far from the blank level is odd but not an out-of-footprint cutout.
    fakes.write_jpeg(image_path(root, "test", "hsc", "g07"), np.full((SIZE, SIZE, 3), 90, np.uint8))
    assert len(list(_ds(root))) == 2


def test_unknown_survey_and_bad_root_and_ids(root, tmp_path):
    with pytest.raises(ValueError, match="'lsst'"):
        _ds(root, source="lsst")
    with pytest.raises(ValueError, match="'euclid'"):
        _ds(root, target="euclid")
    with pytest.raises(DataError, match="does not exist"):
        _ds(tmp_path / "nowhere")
    with pytest.raises(DataError, match="'g99'"):
        _ds(root, ids=["g06", "g99"])
    x, _ = next(iter(_ds(root, ids=["g08"], batch_size=4)))
    assert x.shape[0] == 1
