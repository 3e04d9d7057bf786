"""Bad training data through the training CLIs, as a user meets it: one error line naming
the file, exit code 2, and no run folder left behind (issue 14, item 13; issue 18,
item 4). The run is fresh, so everything it created is removed with it."""
import shutil

import numpy as np
import pytest

from cascade import train as cascade_cli
from data.layout import image_path
from pix2wgan import train as pix2wgan_cli
from tests.fakes import make_fake, write_jpeg

SIZE = 64


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return make_fake(tmp_path_factory.mktemp("clean") / "ds", size=SIZE, n_train=4,
                     n_test=2)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def _blank(path):  # an out-of-footprint cutout: the viewer's uniform grey (32 for HSC)
    write_jpeg(path, np.full((SIZE, SIZE, 3), 32, np.uint8))


def _wrong_size(path):
    write_jpeg(path, np.full((SIZE // 2, SIZE // 2, 3), 90, np.uint8) + np.eye(
        SIZE // 2, dtype=np.uint8)[..., None])


def _missing(path):
    path.unlink()


@pytest.mark.parametrize("cli, defect, message", [
    (pix2wgan_cli, _truncated, "not a readable JPEG"),
    (pix2wgan_cli, _blank, "blank"),
    (pix2wgan_cli, _wrong_size, f"expected a {SIZE}x{SIZE}x3 RGB image, got 32x32"),
    (pix2wgan_cli, _missing, "g01.jpg"),
    (cascade_cli, _blank, "blank"),
    (cascade_cli, _missing, "g01.jpg"),
])
def test_bad_training_image_is_one_line_and_leaves_no_run(cli, defect, message, clean,
                                                          tmp_path, capsys):
    data = tmp_path / "ds"
    shutil.copytree(clean, data)
    victim = image_path(data, "train", "hsc", "g01")
    defect(victim)
    run = tmp_path / "run"
    code = cli.main(["--data", str(data), "--out", str(run), "--epochs", "1",
                     "--width", "2", "--image-size", str(SIZE), "--batch-size", "2",
                     "--n-critic", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and message in err[0], err[0]
    assert "g01" in err[0]
    assert not run.exists(), sorted(p.name for p in run.iterdir())


def test_a_failed_start_keeps_what_was_there(clean, tmp_path, capsys):
    # A folder the user made (with a note in it) is not removed, only what the run added
    # (a truncated JPEG is found while training, after config.json and logs/ exist).
    data = tmp_path / "ds"
    shutil.copytree(clean, data)
    _truncated(image_path(data, "train", "hsc", "g01"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    assert pix2wgan_cli.main(["--data", str(data), "--out", str(run), "--epochs", "1",
                              "--width", "2", "--image-size", str(SIZE),
                              "--batch-size", "2", "--n-critic", "1"]) == 2
    capsys.readouterr()
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
