import numpy as np
import pytest

from pix2wgan.layers import build_patch_critic, build_unet, unet_widths


def test_unet_widths_follow_pix2pix():
    assert unet_widths(64) == [64, 128, 256, 512, 512, 512]
    assert unet_widths(4, depth=4) == [4, 8, 16, 32]


@pytest.mark.parametrize("size", [64, 128])
def test_unet_is_fully_convolutional_with_tanh_range(size):
    gen = build_unet(width=4)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    y = gen(x, training=False).numpy()
    assert y.shape == (2, size, size, 3)
    assert y.dtype == np.float32
    assert np.all(np.abs(y) <= 1.0)


def test_unet_has_six_encoder_and_decoder_modules_and_three_dropouts():
    gen = build_unet(width=4, image_size=128)
    names = [layer.name for layer in gen.layers]
    assert sum(n.startswith("enc") and n.endswith("_conv") for n in names) == 6
    assert sum(n.startswith("dec") and n.endswith("_conv") for n in names) == 6
    assert [n for n in names if n.endswith("_dropout")] == [
        "dec1_dropout", "dec2_dropout", "dec3_dropout"]
    # the bottleneck of a 128-px input is 2x2
    assert gen.get_layer("enc6_act").output.shape[1:3] == (2, 2)


def test_patch_critic_gives_14x14_on_128():
    critic = build_patch_critic(width=4, image_size=128)
    assert critic.output_shape == (None, 14, 14, 1)
    convs = [l for l in critic.layers if l.name.endswith("_conv")]
    assert len(convs) == 5
    x = np.zeros((3, 128, 128, 3), "float32")
    assert critic([x, x]).shape == (3, 14, 14, 1)


def test_patch_critic_on_other_size():
    critic = build_patch_critic(width=4)
    x = np.zeros((1, 64, 64, 3), "float32")
    assert critic([x, x]).shape == (1, 6, 6, 1)


def test_unknown_norm_fails_loudly():
    with pytest.raises(ValueError, match="unknown normalisation 'group'"):
        build_patch_critic(width=4, norm="group")
