"""data.shard (TFRecord packing) and data.pipeline reading shards, on 32x32 fakes."""
import hashlib
import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common.errors import DataError
from data import pipeline, shard
from data.layout import image_path, read_manifest
from tests import fakes

SIZE = 32
SURVEYS = list(fakes.SURVEYS)
MB = 0.01  # 10 kB shards: a 32x32 record is ~3 kB, so ~3 galaxies per shard


@pytest.fixture
def root(tmp_path):
    return fakes.make_fake(tmp_path / "ds", size=SIZE, n_train=8, n_test=3)


@pytest.fixture
def packed(root):
    shard.write_shards(root, shard_mb=MB, progress=False)
    return root


def _index(root):
    return json.loads((root / "shards" / "index.json").read_text())


def _records(root, split):
    """(file, id, {survey: bytes}) of every record, in shard order."""
    spec = {k: tf.io.FixedLenFeature([], tf.string)
            for k in ["id"] + [shard.feature_key(s) for s in SURVEYS]}
    out = []
    for e in _index(root)["splits"][split]["shards"]:
        for r in tf.data.TFRecordDataset(str(root / "shards" / e["file"])):
            ex = tf.io.parse_single_example(r, spec)
            out.append((e["file"], ex["id"].numpy().decode(),
                        {s: ex[shard.feature_key(s)].numpy() for s in SURVEYS}))
    return out


def _ds(root, split="test", **kw):
    kw.setdefault("training", False)
    kw.setdefault("progress", False)
    return pipeline.make_dataset(root, split, "sdss", "hsc", kw.pop("batch_size", 2),
                                 image_size=SIZE, **kw)


def _arrays(ds):
    return [tuple(t.numpy() for t in b) for b in ds]


def _flip_byte(path, where=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------ writing
def test_round_trip_bytes_pixels_and_manifest_order(packed):
    for split in ("train", "test"):
        recs = _records(packed, split)
        assert [gid for _, gid, _ in recs] == list(read_manifest(packed, split)["id"])
        for _, gid, jpegs in recs:
            for s in SURVEYS:
                path = image_path(packed, split, s, gid)
                assert jpegs[s] == path.read_bytes()  # not re-encoded
                got = tf.io.decode_jpeg(jpegs[s], dct_method="INTEGER_ACCURATE").numpy()
                np.testing.assert_array_equal(got, np.asarray(Image.open(path)))


def test_record_size_is_exact_and_shard_limit_respected(root):
    for gid, sizes in [("g1", {"sdss": 3, "hsc": 300}), ("x" * 90, {"hsc": 200_000})]:
        rec = shard.encode_record(gid, {s: b"\xff" * n for s, n in sizes.items()})
        assert shard.record_bytes(gid, sizes) == len(rec) + 16  # TFRecord framing
    rep = shard.write_shards(root, shard_mb=MB, progress=False)
    e = rep.index["splits"]["train"]
    assert len(e["shards"]) >= 3
    sizes = [(root / "shards" / s["file"]).stat().st_size for s in e["shards"]]
    assert max(sizes) <= MB * 1e6
    # greedy packing: no shard could have taken the next shard's first record
    first_rec = [shard.record_bytes(r[1], {s: len(r[2][s]) for s in SURVEYS})
                 for r in _records(root, "train")]
    for s, nxt in zip(e["shards"], e["shards"][1:]):
        assert s["bytes"] + first_rec[nxt["first"]] > MB * 1e6
    # a limit below one record: one record per shard (the only way to exceed it)
    rep = shard.write_shards(root, root / "tiny", shard_mb=0.001, progress=False)
    assert [s["records"] for s in rep.index["splits"]["test"]["shards"]] == [1, 1, 1]


def test_index_contents_and_checksums(packed):
    idx = _index(packed)
    assert idx["format"] == shard.FORMAT and set(idx["splits"]) == {"train", "test"}
    for split, n in (("train", 8), ("test", 3)):
        e = idx["splits"][split]
        assert e["complete"] and e["surveys"] == SURVEYS and e["image_size"] == SIZE
        assert e["ids"] == list(read_manifest(packed, split)["id"]) and e["records"] == n
        assert sum(s["records"] for s in e["shards"]) == n
        assert [s["first"] for s in e["shards"]] == list(
            np.cumsum([0] + [s["records"] for s in e["shards"]][:-1]))
        k = len(e["shards"])
        for j, s in enumerate(e["shards"]):
            p = packed / "shards" / s["file"]
            assert s["file"] == f"{split}-{j:05d}-of-{k:05d}.tfrecord"
            assert p.stat().st_size == s["bytes"]
            assert hashlib.sha256(p.read_bytes()).hexdigest() == s["sha256"]
    leftovers = [p.name for p in (packed / "shards").iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


def test_resume_rewrites_only_damaged_shards(packed):
    out = packed / "shards"
    before = _index(packed)
    files = [s["file"] for s in before["splits"]["train"]["shards"]]
    stamp = {f: (out / f).stat().st_mtime_ns for f in files}
    rep = shard.write_shards(packed, shard_mb=MB, progress=False)
    assert rep.written == [] and len(rep.kept) == len(files) + len(
        before["splits"]["test"]["shards"])
    _flip_byte(out / files[1])
    (out / files[2]).unlink()
    rep = shard.write_shards(packed, shard_mb=MB, progress=False)
    assert sorted(rep.written) == [files[1], files[2]]
    assert _index(packed) == before  # deterministic bytes: same checksums again
    for f in set(files) - {files[1], files[2]}:
        assert (out / f).stat().st_mtime_ns == stamp[f]
    # a changed input file invalidates exactly its shard
    e = before["splits"]["test"]["shards"][0]
    gid = before["splits"]["test"]["ids"][e["first"]]
    fakes.write_jpeg(image_path(packed, "test", "decals", gid),
                     fakes.fake_image(np.random.default_rng(9), SIZE))
    rep = shard.write_shards(packed, shard_mb=MB, splits=["test"], progress=False)
    assert rep.written == [e["file"]]
    assert _records(packed, "test")[0][2]["decals"] == image_path(
        packed, "test", "decals", gid).read_bytes()


def test_killed_run_leaves_no_partial_shard_and_resumes(root, monkeypatch):
    calls, real = [], shard.encode_record

    def dying(gid, jpegs):
        calls.append(gid)
        if len(calls) == 5:  # inside the second shard of train
            raise KeyboardInterrupt
        return real(gid, jpegs)
    monkeypatch.setattr(shard, "encode_record", dying)
    with pytest.raises(KeyboardInterrupt):
        shard.write_shards(root, shard_mb=MB, progress=False)
    monkeypatch.setattr(shard, "encode_record", real)
    e = _index(root)["splits"]["train"]
    assert not e["complete"] and len(e["shards"]) == 1  # the finished first shard
    assert sorted(p.name for p in (root / "shards").iterdir()) == sorted([
        e["shards"][0]["file"], "index.json"])  # no temporary, no manifest copy yet
    with pytest.raises(DataError, match="only partly packed"):
        _ds(root, "train")
    rep = shard.write_shards(root, shard_mb=MB, progress=False)
    assert rep.kept == [e["shards"][0]["file"]] and len(rep.written) >= 3


def test_bad_file_named_before_packing(root):
    path = image_path(root, "train", "hsc", "g03")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=rf"^{path}: not a readable JPEG"):
        shard.write_shards(root, shard_mb=MB, progress=False)
    assert list(root.glob("shards/*")) + list(root.glob("shards/.*")) == []
    with pytest.raises(ValueError, match="'lsst'"):
        shard.write_shards(root, surveys=["sdss", "lsst"])
    with pytest.raises(ValueError, match="shard_mb must be > 0"):
        shard.write_shards(root, shard_mb=0)


# ------------------------------------------------------------------ reading
def test_make_dataset_shards_equal_files(packed):
    want = _arrays(_ds(packed, layout="files", with_ids=True))
    for kw in ({}, {"layout": "shards"}):  # auto-detects ROOT/shards/index.json
        got = _arrays(_ds(packed, with_ids=True, **kw))
        assert len(got) == len(want) == 2
        for g, w in zip(got, want):
            for a, b in zip(g, w):
                np.testing.assert_array_equal(a, b)
    # the shard folder alone is a dataset root: no JPEGs needed
    alone = shutil.copytree(packed / "shards", packed.parent / "elsewhere")
    assert read_manifest(alone, "train").equals(read_manifest(packed, "train"))
    train = _arrays(_ds(alone, "train", batch_size=3, with_ids=True))
    want = _arrays(_ds(packed, "train", batch_size=3, with_ids=True, layout="files"))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in train]),
                                  np.concatenate([b[0] for b in want]))
    for kw in ({}, {"ids": ["g01", "g05", "g06"]}):  # known length, as with files
        for lay in ("files", "shards"):
            assert int(_ds(packed, "train", layout=lay, **kw).cardinality()) == \
                {0: 4, 3: 2}[len(kw.get("ids", []))]
    sub = _arrays(_ds(packed, "train", ids=["g01", "g05"], with_ids=True))
    assert [g.decode() for g in sub[0][2]] == ["g01", "g05"]
    with pytest.raises(DataError, match="manifest order"):
        _ds(packed, "train", ids=["g05", "g01"])
    with pytest.raises(DataError, match="'g99'"):
        _ds(packed, ids=["g99"])
    with pytest.raises(DataError, match="repeat an id; first: 'g05'"):
        _ds(packed, "train", ids=["g01", "g05", "g02", "g05"], training=True)


def test_training_over_shards_covers_each_galaxy_once_and_is_seeded(packed):
    def epochs(seed, first=0, last=2):  # 8 galaxies: 4 batches an epoch
        ds = _ds(packed, "train", batch_size=2, training=True, seed=seed, with_ids=True,
                 drop_remainder=False, epochs=(first, last), shuffle_buffer=4)
        batches = _arrays(ds)
        return [batches[k:k + 4] for k in range(0, len(batches), 4)]
    a, b = epochs(4), epochs(4)
    for ea, eb in zip(a + epochs(4, 1, 2), b + b[1:]):  # epoch 1 alone: a resumed run
        for ba, bb in zip(ea, eb):
            for x, y in zip(ba, bb):
                np.testing.assert_array_equal(x, y)
    order = [[g.decode() for bt in e for g in bt[2]] for e in a]
    assert sorted(order[0]) == sorted(order[1]) == [f"g0{i}" for i in range(8)]
    assert order[0] != order[1]  # a new order every epoch
    assert order[0] != [g.decode() for bt in epochs(5, 0, 1)[0] for g in bt[2]]


def test_unusable_index_is_a_data_error(packed):
    idx_path = packed / "shards" / "index.json"
    idx = _index(packed)
    idx["splits"]["test"]["complete"] = False
    idx_path.write_text(json.dumps(idx))
    with pytest.raises(DataError, match=r"index.json: the 'test' split is only partly"):
        _ds(packed)
    assert len(_arrays(_ds(packed, layout="files"))) == 2  # files still readable
    idx["splits"]["test"]["complete"] = True
    idx["splits"]["test"]["ids"][0] = "g99"
    idx_path.write_text(json.dumps(idx))
    with pytest.raises(DataError, match=r"stale.*'g08' vs 'g99'"):
        _ds(packed)
    shard.write_shards(packed, shard_mb=MB, surveys=["sdss", "decals"], progress=False)
    with pytest.raises(DataError, match=r"hold sdss, decals, not 'hsc'"):
        _ds(packed)
    idx_path.write_text("{not json")
    with pytest.raises(DataError, match=rf"^{idx_path}: not a readable shard index"):
        _ds(packed)
    with pytest.raises(DataError, match="shards/index.json is missing"):
        _ds(packed / "nowhere", layout="shards")
    with pytest.raises(ValueError, match="unknown layout 'tar'"):
        _ds(packed, layout="tar")


def test_damaged_shards_named(packed):
    e = _index(packed)["splits"]["test"]["shards"]
    path = packed / "shards" / e[0]["file"]
    _flip_byte(path, 0.6)  # inside a JPEG: the TFRecord CRC no longer matches
    with pytest.raises(DataError, match=rf"^{path}: shard is damaged"):
        list(pipeline.iterate_checked(_ds(packed)))
    path.write_bytes(path.read_bytes()[:-5])  # truncated: caught up front
    with pytest.raises(DataError, match=rf"^{path}: {e[0]['bytes'] - 5} bytes"):
        _ds(packed)
    path.unlink()
    with pytest.raises(DataError, match=rf"^{path}: shard is missing"):
        _ds(packed)


def test_jpeg_changed_after_packing_refuses_the_shards(packed):
    """A JPEG replaced after `data.shard` (here truncated): the pipeline would train on
    the stale shard; it refuses, naming the file and the command that repacks."""
    idx = _index(packed)["splits"]["test"]
    gid = idx["ids"][1]
    path = image_path(packed, "test", "hsc", gid)
    shard_file = packed / "shards" / idx["shards"][0]["file"]
    good = path.read_bytes()
    fix = re.escape(f"; rerun `python -m data.shard --data {packed}`")

    def refused(how):
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: changed since it "
                           rf"was packed into {re.escape(str(shard_file))} \({how}\){fix}$"):
            _ds(packed)
    path.write_bytes(good[:len(good) // 2])
    refused(f"{len(good) // 2} bytes, {len(good)} when packed")
    path.write_bytes(good[:-1] + b"\x00")
    refused("other bytes")
    path.write_bytes(good)  # same bytes, new mtime: still not what was packed
    refused("new modification time")
    shard.write_shards(packed, shard_mb=MB, splits=["test"], progress=False)
    assert len(_arrays(_ds(packed))) == 2  # repacked: accepted again
    shutil.rmtree(packed / "test")  # JPEGs removed after packing: the shards are the data
    assert len(_arrays(_ds(packed))) == 2


def _rewrite_record(root, gid, survey, payload):
    """Replace one record's JPEG with ``payload`` (checksums updated: an intact shard
    holding bad data, as a buggy writer would leave)."""
    idx = _index(root)
    e = next(s for s in idx["splits"]["test"]["shards"]
             if gid in idx["splits"]["test"]["ids"][s["first"]:s["first"] + s["records"]])
    path = root / "shards" / e["file"]
    recs = [r for r in _records(root, "test") if r[0] == e["file"]]
    with tf.io.TFRecordWriter(str(path)) as w:
        for _, g, jpegs in recs:
            w.write(shard.encode_record(g, dict(jpegs, **({survey: payload}
                                                          if g == gid else {}))))
    e["bytes"] = path.stat().st_size
    e["sha256"] = shard.file_sha256(path)
    (root / "shards" / "index.json").write_text(json.dumps(idx))
    return path


def test_bad_record_named_by_shard_and_id(packed):
    good = image_path(packed, "test", "hsc", "g09").read_bytes()
    png = packed / "x.png"
    Image.fromarray(fakes.fake_image(np.random.default_rng(1), SIZE)).save(png)
    path = _rewrite_record(packed, "g09", "hsc", png.read_bytes())
    with pytest.raises(DataError, match=rf"^{path} \(id g09, hsc\): not a JPEG file$"):
        list(pipeline.iterate_checked(_ds(packed)))  # in-graph check
    path = _rewrite_record(packed, "g09", "hsc", good[:len(good) // 2])
    with pytest.raises(DataError, match=rf"^{path} \(id g09, hsc\): not a readable JPEG"):
        list(pipeline.iterate_checked(_ds(packed)))  # decode error, traced with PIL


# ------------------------------------------------------------------ CLI
def test_cli_end_to_end(root, capsys):
    assert shard.main(["--data", str(root), "--shard-mb", str(MB), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train: 8 galaxies in" in out and "(" in out and "written, 0 kept" in out
    n = sum(len(e["shards"]) for e in _index(root)["splits"].values())
    assert out.splitlines()[-1] == (f"wrote {n} shard(s), kept 0 in {root / 'shards'}; "
                                    f"index: {root / 'shards' / 'index.json'}")
    assert shard.main(["--data", str(root), "--shard-mb", str(MB), "--no-progress",
                       "--splits", "test"]) == 0
    out = capsys.readouterr().out
    assert "test: 3 galaxies in" in out and "0 written," in out and "train" not in out
    assert shard.main(["--data", str(root / "nope"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope does not exist" in err


@pytest.mark.parametrize("argv, message", [
    (["--shard-mb", "0"], "argument --shard-mb: must be > 0, got '0'"),
    (["--shard-mb", "big"], "argument --shard-mb: not a number: 'big'"),
    (["--surveys", "sdss,lsst"], "unknown survey 'lsst'"),
    (["--surveys", "hsc,hsc"], "repeated name"),
    (["--splits", "val"], "unknown split 'val'"),
    (["--image-size", "0"], "--image-size: must be a positive integer, got '0'"),
])
def test_cli_rejects_bad_flags(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        shard.main(["--data", str(tmp_path)] + argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
