"""The predict CLIs (pix2wgan, cascade, noise_gan) on bad or awkward input: which model
made an output, unfinished runs, colliding outputs, duplicate ids, failed rows, bad
inputs reported together, stale temporaries, --help. Tiny sizes (16 px, width 2-4)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cascade import predict as cascade_cli
from common import io as common_io
from data.layout import REPO_ROOT
from noise_gan import predict as noise_cli
from pix2wgan import predict as cli
from pix2wgan.convert import convert, read_tag
from pix2wgan.layers import build_unet
from pix2wgan.survey import shard_name
from tests.fakes import fake_image, write_jpeg
from tests.test_predict_shard import S, catalogue, model  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of four good S x S JPEGs."""
    folder = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(1)
    for k in range(4):
        write_jpeg(folder / f"g{k}.jpg", fake_image(rng, S))
    return folder


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second tiny generator (other weights, other file)."""
    path = tmp_path_factory.mktemp("other") / "generator.keras"
    build_unet(2, 2, name="generator").save(path)
    return path


@pytest.fixture(scope="module")
def cascade_run(tmp_path_factory, model, other):
    """A finished cascade run folder: g1.keras, g2.keras."""
    run = tmp_path_factory.mktemp("cascade")
    shutil.copy(model, run / "g1.keras")
    shutil.copy(other, run / "g2.keras")
    return run


def _main(module, *args) -> int:
    return module.main([str(a) for a in args])


def _run(capsys, module, *args) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of one ``module.main`` call."""
    capsys.readouterr()
    code = _main(module, *args)
    out, err = capsys.readouterr()
    return code, out, err


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float32)


def _expected(fn, src) -> np.ndarray:
    """``fn`` applied in memory to the JPEG ``src``, as the uint8 pixels predict writes."""
    x = _pixels(src)[None] / 127.5 - 1.0
    return np.clip(np.rint(np.asarray(fn(x))[0] * 127.5 + 127.5), 0, 255)


def _one_line(err: str) -> str:
    err = err.strip()
    assert err.count("\n") == 0, err
    return err


# --- 2: which model made the outputs ---------------------------------------------------

def test_rerun_with_another_model_refuses_unless_overwrite(model, other, inputs,
                                                           tmp_path, capsys):
    out = tmp_path / "out"
    code, text, _ = _run(capsys, cli, "--model", model, "--input", inputs, "--out", out)
    sha = cli.generator_model(model).sha256
    assert code == 0 and text.strip().splitlines()[-1] == \
        f"4 converted, 0 already done: wrote 4 PNGs to {out}/ (model sha256 {sha[:16]})"
    assert {read_tag(p) for p in out.iterdir()} == {sha}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, text, err = _run(capsys, cli, "--model", other, "--input", inputs, "--out", out)
    err = _one_line(err)
    assert code == 2 and "4 of the 4 existing outputs" in err and sha[:12] in err
    assert "--overwrite" in err and {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, text, _ = _run(capsys, cli, "--model", other, "--input", inputs, "--out", out,
                         "--overwrite")
    assert code == 0 and "4 converted, 0 already done" in text
    assert {read_tag(p) for p in out.iterdir()} == {cli.generator_model(other).sha256}
    # Outputs with no record (an earlier predict version) are not silently kept either.
    Image.fromarray(np.zeros((S, S, 3), np.uint8)).save(out / "g0.png")
    code, _, err = _run(capsys, cli, "--model", other, "--input", inputs, "--out", out)
    assert code == 2 and "unrecorded model" in _one_line(err)


def test_shard_of_another_model_is_refused_and_merge_checks_models(catalogue, model,
                                                                   other, tmp_path,
                                                                   capsys):
    out = tmp_path / "out"
    args = ["--manifest", catalogue, "--out", out, "--allow-failures"]
    assert _main(cli, "--model", model, *args, "--shard", "0/2") == 0
    code, _, err = _run(capsys, cli, "--model", other, *args, "--shard", "0/2")
    assert code == 2 and "--overwrite" in _one_line(err)
    assert _main(cli, "--model", other, *args, "--shard", "0/2", "--overwrite") == 0
    sha = cli.generator_model(other).sha256
    record = json.loads((out / f"{shard_name(0, 2)}.model.json").read_text())
    assert record["sha256"] == sha and list(record["files"]) == [str(other)]
    assert {read_tag(p) for p in (out / shard_name(0, 2)).iterdir()} == {sha}
    assert _main(cli, "--model", model, *args, "--shard", "1/2") == 0
    code, _, err = _run(capsys, cli, "--merge", out)
    assert code == 2 and "different models" in _one_line(err)


def test_cascade_model_is_both_generators_and_the_stage(cascade_run, model, inputs,
                                                        tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(cascade_cli, "--model", cascade_run, "--input", inputs, "--out", out,
                 "--format", "jpg") == 0
    two = cascade_cli.cascade_model(cascade_run, 2)
    assert two.sha256 != cascade_cli.cascade_model(cascade_run, 1).sha256
    assert list(two.hashes) == [str(cascade_run / "g1.keras"), str(cascade_run / "g2.keras")]
    assert {read_tag(p) for p in out.iterdir()} == {two.sha256}  # JPEG comment
    code, _, err = _run(capsys, cascade_cli, "--model", cascade_run, "--input", inputs,
                        "--out", out, "--format", "jpg", "--stage", "1")
    assert code == 2 and "--overwrite" in _one_line(err)


# --- 3, 4: two inputs never share an output ----------------------------------------------

def test_inputs_sharing_a_stem_are_refused_before_anything_is_written(model, tmp_path,
                                                                     capsys):
    rng = np.random.default_rng(2)
    for name in ("a.jpg", "a.jpeg", "b.jpg"):
        write_jpeg(tmp_path / "in" / name, fake_image(rng, S))
    code, _, err = _run(capsys, cli, "--model", model, "--input", tmp_path / "in", "--out",
                        tmp_path / "out")
    err = _one_line(err)
    assert code == 2 and "a.jpeg and" in err and "a.jpg would" in err and "a.png" in err
    assert not (tmp_path / "out").exists()


def test_duplicate_manifest_ids_are_refused_before_anything_is_converted(
        catalogue, model, tmp_path, capsys):
    rows = [("a", "img/c000.jpg"), ("b", "img/c001.jpg"), ("a", "img/c002.jpg")]
    cat = catalogue.parent / "dup.csv"
    pd.DataFrame(rows, columns=["id", "path"]).to_csv(cat, index=False)
    out = tmp_path / "out"
    code, _, err = _run(capsys, cli, "--model", model, "--manifest", cat, "--out", out)
    err = _one_line(err)
    assert code == 2 and "rows 1 and 3" in err and "'a'" in err and "c002.jpg" in err
    assert not list(out.rglob("*.png")) and not list(out.glob("*.csv"))
    pd.DataFrame(rows[:2] + [("A", "img/c002.jpg")], columns=["id", "path"]).to_csv(
        cat, index=False)
    code, _, err = _run(capsys, cli, "--model", model, "--manifest", cat, "--out", out)
    assert code == 2 and "differ only in case" in _one_line(err)


# --- 6: failed rows fail the run ----------------------------------------------------------

def test_failed_rows_exit_2_unless_allow_failures(catalogue, model, tmp_path, capsys):
    args = ["--model", model, "--manifest", catalogue, "--out", tmp_path]
    code, text, err = _run(capsys, cli, *args)
    assert code == 2 and "24 ok, 6 failed" in text
    err = err.strip().splitlines()[-1]  # after the progress bar's line
    assert err.startswith("error: 6 of 30 rows") and "--allow-failures" in err
    assert _main(cli, *args) == 2  # a finished shard with failures still fails
    code, text, _ = _run(capsys, cli, *args, "--allow-failures")
    assert code == 0 and "already complete (24 ok, 6 failed)" in text


# --- 8: a run killed before its end -------------------------------------------------------

def _unfinished(run, build, run_state, cfg, epoch):
    """A run folder as a kill leaves it: config.json and checkpoints, no .keras."""
    from common import training
    trained = build(cfg)
    training.save_config(cfg, run)
    run_state(trained, run).save(epoch)
    return trained


def test_unfinished_run_predicts_with_its_newest_checkpoint(inputs, tmp_path, capsys):
    from pix2wgan.config import Pix2WGANConfig
    from pix2wgan.trainer import build, run_state
    run, out = tmp_path / "run", tmp_path / "out"
    cfg = Pix2WGANConfig(width=4, depth=2, image_size=S, epochs=10)
    trained = _unfinished(run, build, run_state, cfg, 3)
    code, _, err = _run(capsys, cli, "--model", run, "--input", inputs, "--out", out)
    warning = err.splitlines()[0]
    assert code == 0 and "unfinished run" in warning and "epoch 3 of 10" in warning
    gen = trained.generator
    want = _expected(lambda x: gen(x, training=False), inputs / "g1.jpg")
    assert np.abs(_pixels(out / "g1.png") - want).max() <= 1
    # The model hash covers the checkpoint used: a newer one is another model.
    gen.set_weights([w + 0.01 for w in gen.get_weights()])
    run_state(trained, run).save(4)
    code, _, err = _run(capsys, cli, "--model", run, "--input", inputs, "--out", out)
    assert code == 2 and "--overwrite" in err.strip().splitlines()[-1]


def test_unfinished_cascade_run_predicts_with_its_newest_checkpoint(inputs, tmp_path,
                                                                     capsys):
    from cascade.config import CascadeConfig
    from cascade.trainer import build, run_state
    run, out = tmp_path / "run", tmp_path / "out"
    cfg = CascadeConfig(width=4, depth=2, image_size=S, epochs=5)
    trained = _unfinished(run, build, run_state, cfg, 2)
    code, _, err = _run(capsys, cascade_cli, "--model", run, "--input", inputs, "--out",
                        out)
    assert code == 0 and "epoch 2 of 5" in err.splitlines()[0]
    g1, g2 = trained.stage1.generator, trained.stage2.generator
    want = _expected(lambda x: g2(g1(x, training=False), training=False),
                     inputs / "g2.jpg")
    assert np.abs(_pixels(out / "g2.png") - want).max() <= 1


# --- 13, 17: bad flags ----------------------------------------------------------------------

@pytest.mark.parametrize("module", [cli, cascade_cli])
def test_fits_survey_is_a_one_line_error_pointing_to_noise_gan(module, inputs, tmp_path,
                                                                capsys):
    with pytest.raises(SystemExit) as exc:
        _main(module, "--model", "m", "--input", inputs, "--out", tmp_path, "--survey",
              "cfht")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cfht cutouts are ugriz FITS" in err and "noise_gan.predict" in err
    with pytest.raises(ValueError, match="noise_gan.predict"):
        convert(lambda: None, inputs, tmp_path, survey="CFHT")


def test_text_file_named_keras_is_not_a_model(inputs, tmp_path, capsys):
    fake = tmp_path / "x.keras"
    fake.write_text("not a model\n")
    code, _, err = _run(capsys, cli, "--model", fake, "--input", inputs, "--out",
                        tmp_path / "o")
    err = _one_line(err)
    assert code == 2 and f"{fake}: not a Keras model archive" in err


# --- 21, 22: inputs checked together, before anything is converted -------------------------

def test_mixed_sizes_name_one_file_of_each_and_other_sizes_are_noted(model, tmp_path,
                                                                      capsys):
    from common.training import save_config
    from pix2wgan.config import Pix2WGANConfig
    rng = np.random.default_rng(3)
    for name, size in (("a.jpg", S), ("b.jpg", S), ("c.jpg", 2 * S)):
        write_jpeg(tmp_path / "in" / name, fake_image(rng, size))
    code, _, err = _run(capsys, cli, "--model", model, "--input", tmp_path / "in", "--out",
                        tmp_path / "out")
    err = _one_line(err)
    assert code == 2 and f"a.jpg is {S}x{S}" in err and f"c.jpg is {2 * S}x{2 * S}" in err
    assert "mix sizes" in err and not (tmp_path / "out").exists()
    # One size, other than the training size: converted, with a note.
    (tmp_path / "in" / "c.jpg").unlink()
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model, run / "generator.keras")
    save_config(Pix2WGANConfig(width=2, depth=2, image_size=2 * S), run)
    code, text, _ = _run(capsys, cli, "--model", run, "--input", tmp_path / "in", "--out",
                         tmp_path / "out")
    assert code == 0 and f"trained on {2 * S}x{2 * S} px" in text


def test_every_bad_input_of_a_folder_in_one_report(model, tmp_path, capsys):
    rng = np.random.default_rng(4)
    folder = tmp_path / "in"
    for k in range(2):
        write_jpeg(folder / f"good{k}.jpg", fake_image(rng, S))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.fromarray(fake_image(rng, S)).save(folder / "png.jpg", format="PNG")
    Image.fromarray(fake_image(rng, S)[..., 0]).save(folder / "grey.jpg", format="JPEG")
    code, _, err = _run(capsys, cli, "--model", model, "--input", folder, "--out",
                        tmp_path / "out")
    assert code == 2 and "3 problems with the 5 inputs, nothing converted" in err
    for name, why in (("broken.jpg", "not a readable image"),
                      ("png.jpg", "not a JPEG"), ("grey.jpg", "RGB")):
        assert any(name in line and why in line for line in err.splitlines()), name
    assert not (tmp_path / "out").exists()


# --- 10: temporaries of a killed run --------------------------------------------------------

def _stale_tmp(folder, name):
    """A temporary as a writer killed by kill -9 leaves it (common.io naming)."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names no live process now
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp~{common_io._host()}~{dead.pid}~0badf00d.png"
    tmp.touch()
    return tmp


@pytest.mark.parametrize("how", ["pix2wgan", "shard", "cascade", "noise_gan"])
def test_a_rerun_removes_temporaries_of_a_killed_run(how, model, cascade_run, inputs,
                                                     catalogue, tmp_path):
    out = tmp_path / "out"
    if how == "shard":
        stale = [_stale_tmp(out, "x.csv"), _stale_tmp(out / shard_name(0, 1), "c1.png")]
        assert _main(cli, "--model", model, "--manifest", catalogue, "--out", out,
                     "--allow-failures") == 0
    elif how == "noise_gan":  # the cleaning comes first, even before a bad --input
        stale = [_stale_tmp(out, "a.fits")]
        (tmp_path / "empty").mkdir()
        assert _main(noise_cli, "--run-dir", tmp_path, "--direction", "sdss_to_cfht",
                     "--input", tmp_path / "empty", "--out", out) == 2
    else:
        stale = [_stale_tmp(out, "g0.png")]
        module, where = (cli, model) if how == "pix2wgan" else (cascade_cli, cascade_run)
        assert _main(module, "--model", where, "--input", inputs, "--out", out) == 0
    assert not any(p.exists() for p in stale)
    assert not [p for p in out.rglob(".*") if ".tmp~" in p.name]


# --- --help -------------------------------------------------------------------------------

@pytest.mark.parametrize("module", [cli, cascade_cli, noise_cli])
def test_help_shows_every_default(module):
    import argparse
    parser = module.build_parser()
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"default: {action.default}" in text or \
                "default" in (action.help or ""), action.dest


def test_help_is_fast_and_imports_no_tensorflow():
    """In a fresh interpreter: every predict --help, then no TensorFlow/Keras loaded."""
    code = textwrap.dedent("""
        import contextlib, io, json, sys, time
        t0 = time.perf_counter()
        from cascade import predict as c
        from noise_gan import predict as n
        from pix2wgan import predict as p
        out = io.StringIO()
        for m in (p, c, n):
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
                m.main(["--help"])
        print(json.dumps({"s": time.perf_counter() - t0, "help": out.getvalue(),
                          "tf": [k for k in sys.modules
                                 if k.split(".")[0] in ("tensorflow", "keras")]}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO_ROOT, env=env, timeout=60, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["tf"] == []
    assert got["s"] < 2.0
    assert got["help"].count("usage: python -m") == 3
    assert "(default: 32)" in got["help"] and "(default: 16)" in got["help"]
