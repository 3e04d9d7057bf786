"""Benchmark cases (g) CycleGAN and (h) Augmented CycleGAN (AugCGAN) of Lin, Fouchez &
Pasquet (2021), §IV-B, trained in one step like ablations (a)-(f).

(g) "Two-way translation with only the cycle-consistency loss, using the 6-residual-block
CycleGAN architecture as presented in [17]" (Zhu et al. 2017). (h) "The semi-supervised
two-way translation setting of Augmented CycleGAN as presented in [24]" (Almahairi et al.
2018), "based on the CycleGAN architecture with the identity loss, having random seeds
injected to the Generators to enable stochastic mappings". Both work on "the regridded
64x64 CFHT images" (§IV-A: CFHT regridded to the SDSS grid by bilinear interpolation): the
data stream still yields 136 px CFHT, and :func:`regrid_cfht` regrids it inside the model.

Domains as in ``noise_gan.model``: X = SDSS ``[B, s, s, bands]``, Y = CFHT regridded to
``[B, s, s, bands]`` (s = ``sdss_size``, 64), stretched (roughly ``[-1, 10]``).

Networks (``width`` w = 64 is the papers' ngf/ndf; tests use 2-4):
  * generator (Zhu et al. appendix, 6 blocks): c7s1-w, d2w, d4w, R4w x 6, u2w, uw,
    c7s1-bands. c7s1-k = reflection pad 3, 7x7 conv, instance norm, ReLU; dk = 3x3 conv
    stride 2 (zero pad 1), IN, ReLU; Rk = two reflection-padded 3x3 convs with IN (ReLU
    between), added to the input; uk = 3x3 transposed convolution stride 2 (the
    "fractional-strided" up-sampling of Zhu et al.; Lin et al. Fig. 6 traces the central
    Fourier peaks of (e), (g), (h) to such layers), IN, ReLU. Instance norm without affine
    parameters (Zhu et al.'s code), kernels ~ N(0, 0.02).
  * discriminator: the 70x70 PatchGAN, C w (no norm) - C 2w - C 4w (4x4, stride 2) - C 8w
    (4x4, stride 1) - 4x4 conv to one map, zero padding 1 each, IN, LeakyReLU 0.2; a 64 px
    image gives a 6x6 map of patch scores. It needs images of at least 24 px.
  * (h) only: the generators take a latent code z ~ N(0, I_16) of their *target* domain
    (``G^{X->Y}(x, z_y)``, ``G^{Y->X}(y, z_x)``), injected by conditional instance
    normalisation (CIN): every instance norm of the generator becomes
    ``IN(h) * (1 + gamma(z)) + beta(z)`` with gamma, beta linear in z (Almahairi et al.
    §5: CIN in the generators). Encoders ``E^X(x, y) -> z_x`` and ``E^Y(x, y) -> z_y``
    read both domains (Almahairi et al.: E_A, E_B on A x B), and latent discriminators
    ``D^{Z_X}, D^{Z_Y}`` (MLPs) match the inferred codes to the prior.

Losses (``noise_gan.losses``): least-squares GAN (LSGAN) as in CycleGAN (Zhu et al. §4:
``D`` minimises ``1/2 [(D(real) - 1)^2 + D(fake)^2]``, ``G`` minimises ``(D(fake) - 1)^2``,
means over patches and batch); L1 cycle terms of weight ``CYCLE_WEIGHT`` = 10 (Zhu et al.'s
lambda). (h) adds the latent cycle (L1, ``LATENT_CYCLE_WEIGHT``), the latent adversarial
terms, and the supervised identity terms on the pairs (L1, ``IDENTITY_WEIGHT``).

Departures (docs/noise_gan.md): the optimiser, rate schedule, clipping, batches and
iterations are Lin et al.'s (Adam defaults, 1e-4 / 5 every 20,000, global norm 5), not
Zhu et al.'s (beta1 0.5, 2e-4, linear decay); no history pool of 50 fakes; a linear last
layer instead of tanh; no batch norm anywhere (Almahairi et al.'s encoders and latent
discriminators use it): batch statistics would be state outside a sub-step's own weights.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from common.gan import build_optimizer, trainable
from noise_gan.losses import f32, l1, lsgan_discriminator_loss, lsgan_generator_loss
from noise_gan.model import LinGAN

#: §IV-B: the benchmark cases built here; both use CFHT regridded to the SDSS grid.
BENCHMARKS = ("g", "h")
#: Lin et al. §IV-B: "the 6-residual-block CycleGAN architecture" (Zhu et al.: 6 blocks for
#: 128 px images, 9 for 256).
RES_BLOCKS = 6
#: Almahairi et al.: 16-dimensional latent codes per domain (their code's ``nlatent``).
LATENT_DIM = 16
#: Zhu et al. eq. 3: lambda = 10, the weight of the (L1) cycle-consistency loss.
CYCLE_WEIGHT = 10.0
#: (h): weight of the supervised identity terms on the pairs. Lin et al. always weigh
#: identity and cycle alike (step 2: 1 and 1; (d): 1000 and 1000), so 10 as the cycle.
IDENTITY_WEIGHT = 10.0
#: (h): weight of the latent cycle ``||E(x, G(x, z)) - z||_1``: Almahairi et al.'s ratio
#: of latent to image cycle weight (0.025 : 1), scaled to the image cycle's 10.
LATENT_CYCLE_WEIGHT = 0.025 * CYCLE_WEIGHT
#: Zhu et al.: kernels initialised ~ N(0, 0.02).
INIT_STD = 0.02
#: PatchGAN stride-2 layers (Zhu et al.'s n_layers = 3: the 70x70 receptive field).
PATCH_LAYERS = 3

_SIDES = ("sdss", "cfht")


# --- regridding ------------------------------------------------------------------------

def regrid_cfht(y, size: int):
    """CFHT images on the SDSS grid: ``[B, 136, 136, C]`` -> ``[B, size, size, C]`` float32.

    Bilinear interpolation of the pixel *values* (§IV-A: "regridding original CFHT images
    with the Bilinear Interpolation"): each output pixel, centred at input coordinate
    ``(i + 0.5) * 136 / size - 0.5``, is the bilinear mix of its four nearest input pixels
    (``tf.image.resize``, half-pixel centres, no anti-aliasing, no flux rescaling; unlike
    Lin eq. 6's ``noise_gan.losses.to_sdss_grid`` it is not multiplied by the pixel
    ratio). A constant image stays that constant, a linear ramp stays a linear ramp. It
    acts on the stretched images the data stream yields (the paper regridded before
    stretching; the stretch is monotonic and smooth, so the two differ only at second
    order).
    """
    if size < 1:
        raise ValueError(f"regrid size must be >= 1, got {size}")
    y = tf.convert_to_tensor(y)
    if y.shape.rank != 4:
        raise ValueError(f"regrid_cfht needs [B, H, W, C] images, got shape {y.shape}")
    return tf.image.resize(tf.cast(y, tf.float32), [size, size], method="bilinear",
                           antialias=False)


# --- building blocks -----------------------------------------------------------------------

def _init():
    return keras.initializers.RandomNormal(0.0, INIT_STD)


def _reflect(x, pad: int):
    return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")


def _conv(x, filters, kernel, name, strides=1, dtype=None):
    return layers.Conv2D(filters, kernel, strides=strides, padding="valid",
                         kernel_initializer=_init(), dtype=dtype, name=name)(x)


def _norm(x, name, z=None):
    """Instance norm without affine parameters (Zhu et al.); with a latent ``z``,
    conditional instance norm ``IN(x) * (1 + gamma(z)) + beta(z)`` (Almahairi et al.)."""
    x = layers.GroupNormalization(groups=-1, center=False, scale=False, epsilon=1e-5,
                                  name=name)(x)
    if z is None:
        return x
    c = x.shape[-1]
    gamma = layers.Reshape((1, 1, c), name=f"{name}_gamma_map")(
        layers.Dense(c, kernel_initializer=_init(), name=f"{name}_gamma")(z))
    beta = layers.Reshape((1, 1, c), name=f"{name}_beta_map")(
        layers.Dense(c, kernel_initializer=_init(), name=f"{name}_beta")(z))
    return x * (1.0 + gamma) + beta


def _c7s1(x, filters, name, z=None):
    x = _conv(_reflect(x, 3), filters, 7, name)
    return layers.ReLU(name=f"{name}_relu")(_norm(x, f"{name}_in", z))


def _down(x, filters, name, z=None):
    x = _conv(layers.ZeroPadding2D(1, name=f"{name}_pad")(x), filters, 3, name, strides=2)
    return layers.ReLU(name=f"{name}_relu")(_norm(x, f"{name}_in", z))


def _residual(x, name, z=None):
    c = x.shape[-1]
    h = _conv(_reflect(x, 1), c, 3, f"{name}_conv1")
    h = layers.ReLU(name=f"{name}_relu")(_norm(h, f"{name}_in1", z))
    h = _norm(_conv(_reflect(h, 1), c, 3, f"{name}_conv2"), f"{name}_in2", z)
    return layers.Add(name=f"{name}_add")([x, h])


def _up(x, filters, name, z=None):
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                               kernel_initializer=_init(), name=name)(x)
    return layers.ReLU(name=f"{name}_relu")(_norm(x, f"{name}_in", z))


def _check_positive(**values):
    for k, v in values.items():
        if v < 1:
            raise ValueError(f"{k} must be >= 1, got {v}")


# --- builders ----------------------------------------------------------------------------

def build_resnet_generator(size: int = 64, bands: int = 5, width: int = 64,
                           blocks: int = RES_BLOCKS, latent_dim: int = 0,
                           name: str = "G") -> keras.Model:
    """CycleGAN ResNet generator (Zhu et al. appendix): c7s1-w, d2w, d4w, ``blocks`` x R4w,
    u2w (transposed conv), uw (transposed conv), c7s1-bands.

    The last layer is linear, not Zhu et al.'s tanh: the stretched images span about
    [-1, 10] (galaxy cores reach several units), which a tanh cannot produce. It is float32,
    so mixed-precision models return float32 images.

    Args:
        size: image side, a multiple of 4 and >= 8 (two stride-2 layers; the reflection
            padding of the residual blocks needs >= 2 px at size / 4).
        latent_dim: 0 for (g); > 0 for (h): a second input ``z [B, latent_dim]``
            conditions every instance norm (CIN, Almahairi et al.).

    Returns:
        ``keras.Model``: ``[B, size, size, bands]`` (and ``z``) -> ``[B, size, size, bands]``
        float32 stretched images.
    """
    _check_positive(bands=bands, width=width)
    if size < 8 or size % 4:
        raise ValueError(f"ResNet generator size must be a multiple of 4 and >= 8, "
                         f"got {size}")
    if blocks < 0 or latent_dim < 0:
        raise ValueError(f"blocks and latent_dim must be >= 0, got {blocks}, {latent_dim}")
    image = keras.Input((size, size, bands), name="image")
    z = keras.Input((latent_dim,), name="latent") if latent_dim else None
    x = _c7s1(image, width, "c7s1", z)
    x = _down(x, 2 * width, "d1", z)
    x = _down(x, 4 * width, "d2", z)
    for k in range(blocks):
        x = _residual(x, f"res{k + 1}", z)
    x = _up(x, 2 * width, "u1", z)
    x = _up(x, width, "u2", z)
    out = _conv(_reflect(x, 3), bands, 7, "c7s1_out", dtype="float32")
    return keras.Model([image, z] if latent_dim else image, out, name=name)


def patch_map_size(size: int, layers_: int = PATCH_LAYERS) -> int:
    """Side of the PatchGAN's score map for a ``size`` px image (64 -> 6, 24 -> 1)."""
    for _ in range(layers_):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


def build_patch_discriminator(size: int = 64, bands: int = 5, width: int = 64,
                              name: str = "D") -> keras.Model:
    """70x70 PatchGAN (Zhu et al. appendix, their code's 3-layer layout): C w (no norm),
    C 2w, C 4w (4x4 convs, stride 2), C 8w (stride 1), a 4x4 conv to one map (stride 1);
    zero padding 1 before each, IN and LeakyReLU 0.2 after each but the last.

    Returns:
        ``keras.Model``: ``[B, size, size, bands]`` -> ``[B, m, m, 1]`` float32 patch scores
        (m = :func:`patch_map_size`, 6 at 64 px; LSGAN: real -> 1, fake -> 0). Raises for
        ``size < 24`` (no patch left).
    """
    _check_positive(bands=bands, width=width)
    if patch_map_size(size) < 1:
        raise ValueError(f"PatchGAN needs images of at least 24 px, got {size}")
    image = keras.Input((size, size, bands), name="image")
    x = image
    for k, (mult, stride) in enumerate(((1, 2), (2, 2), (4, 2), (8, 1))):
        x = _conv(layers.ZeroPadding2D(1, name=f"c{k + 1}_pad")(x), mult * width, 4,
                  f"c{k + 1}", strides=stride)
        if k:
            x = _norm(x, f"c{k + 1}_in")
        x = layers.LeakyReLU(0.2, name=f"c{k + 1}_lrelu")(x)
    x = _conv(layers.ZeroPadding2D(1, name="out_pad")(x), 1, 4, "out", dtype="float32")
    return keras.Model(image, x, name=name)


def build_latent_encoder(size: int = 64, bands: int = 5, width: int = 64,
                         latent_dim: int = LATENT_DIM, name: str = "E") -> keras.Model:
    """(h) encoder ``E(x, y) -> z`` (Almahairi et al.: the encoders read both domains).

    ``[x, y]`` concatenated on channels -> 3x3 convs stride 2 (zero pad 1): w (ReLU), 2w,
    4w (IN, ReLU) -> global average -> linear ``latent_dim``. Instance norm and a global
    average instead of Almahairi et al.'s batch norm and final 4x4 convolution, so any
    ``size >= 16`` works and no batch statistic is kept.

    Returns:
        ``keras.Model``: ``[x [B, size, size, bands], y [B, size, size, bands]]`` ->
        ``[B, latent_dim]`` float32.
    """
    _check_positive(bands=bands, width=width, latent_dim=latent_dim)
    if size < 16:
        raise ValueError(f"latent encoder size must be >= 16, got {size}")
    x = keras.Input((size, size, bands), name="sdss_image")
    y = keras.Input((size, size, bands), name="cfht_image")
    h = layers.Concatenate(name="pair")([x, y])
    for k, mult in enumerate((1, 2, 4)):
        h = _conv(layers.ZeroPadding2D(1, name=f"c{k + 1}_pad")(h), mult * width, 3,
                  f"c{k + 1}", strides=2)
        if k:
            h = _norm(h, f"c{k + 1}_in")
        h = layers.ReLU(name=f"c{k + 1}_relu")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    z = layers.Dense(latent_dim, kernel_initializer=_init(), dtype="float32", name="z")(h)
    return keras.Model([x, y], z, name=name)


def build_latent_discriminator(latent_dim: int = LATENT_DIM, width: int = 64,
                               name: str = "Dz") -> keras.Model:
    """(h) latent discriminator (Almahairi et al.): FC w -> FC w -> FC w (LeakyReLU 0.2)
    -> FC 1, no batch norm. ``[B, latent_dim]`` -> ``[B, 1]`` float32 score (LSGAN)."""
    _check_positive(latent_dim=latent_dim, width=width)
    z = keras.Input((latent_dim,), name="latent")
    h = z
    for k in range(3):
        h = layers.Dense(width, kernel_initializer=_init(), name=f"fc{k + 1}")(h)
        h = layers.LeakyReLU(0.2, name=f"fc{k + 1}_lrelu")(h)
    out = layers.Dense(1, kernel_initializer=_init(), dtype="float32", name="out")(h)
    return keras.Model(z, out, name=name)


#: Networks of each benchmark, by the attribute names ``noise_gan.trainer`` checkpoints.
NETWORKS = {"g": ("g_x2y", "g_y2x", "d_x", "d_y"),
            "h": ("g_x2y", "g_y2x", "d_x", "d_y", "e_x", "e_y", "dz_x", "dz_y")}


def latent_dim_of(variant: str) -> int:
    """Latent code size of ``variant``'s generators: ``LATENT_DIM`` for (h), else 0."""
    return LATENT_DIM if variant == "h" else 0


def build_networks(variant: str, names, size: int = 64, bands: int = 5,
                   width: int = 64) -> dict:
    """The named networks of benchmark ``variant`` ("g" or "h") on ``size`` px images
    (X = SDSS, Y = CFHT regridded): ``g_x2y, g_y2x, d_x, d_y`` (+ ``e_x, e_y, dz_x, dz_y``
    for (h)). Raises ``ValueError`` on an unknown variant or name."""
    if variant not in NETWORKS:
        raise ValueError(f"benchmark variant must be one of {', '.join(NETWORKS)}, "
                         f"got {variant!r}")
    bad = [n for n in names if n not in NETWORKS[variant]]
    if bad:
        raise ValueError(f"variant {variant} has no network {bad[0]!r}; it has "
                         f"{', '.join(NETWORKS[variant])}")
    zd = latent_dim_of(variant)
    gen = dict(size=size, bands=bands, width=width, latent_dim=zd)
    makers = {
        "g_x2y": lambda: build_resnet_generator(**gen, name="G_sdss_to_cfht"),
        "g_y2x": lambda: build_resnet_generator(**gen, name="G_cfht_to_sdss"),
        "d_x": lambda: build_patch_discriminator(size, bands, width, name="D_sdss"),
        "d_y": lambda: build_patch_discriminator(size, bands, width, name="D_cfht"),
        "e_x": lambda: build_latent_encoder(size, bands, width, zd, name="E_sdss"),
        "e_y": lambda: build_latent_encoder(size, bands, width, zd, name="E_cfht"),
        "dz_x": lambda: build_latent_discriminator(zd, width, name="Dz_sdss"),
        "dz_y": lambda: build_latent_discriminator(zd, width, name="Dz_cfht"),
    }
    return {n: makers[n]() for n in names}


# --- the model -------------------------------------------------------------------------------

class CycleGANBenchmark(LinGAN):
    """Cases (g) CycleGAN and (h) AugCGAN, one step: per iteration the discriminators
    (``disc_optimizer``), then the generators (+ encoders for (h), ``gen_optimizer``), each
    sub-step recomputing its inputs with the networks as they are then.

    (g), Zhu et al. eq. 3 in LSGAN form, on unpaired x and regridded y:
      D: ``lsgan_D(D^X(x), D^X(G^{Y->X}(y))) + lsgan_D(D^Y(y), D^Y(G^{X->Y}(x)))``;
      G: ``lsgan_G(D^Y(G^{X->Y}(x))) + lsgan_G(D^X(G^{Y->X}(y)))
           + 10 (||G^{Y->X}(G^{X->Y}(x)) - x||_1 + ||G^{X->Y}(G^{Y->X}(y)) - y||_1)``.
      The pairs are not used ("only the cycle-consistency loss").

    (h), Almahairi et al.'s augmented cycles with priors z_x, z_y ~ N(0, I):
      x-cycle: ``y~ = G^{X->Y}(x, z_y)``, ``z~_x = E^X(x, y~)``, ``x^ = G^{Y->X}(y~, z~_x)``,
      ``z^_y = E^Y(x, y~)``; the y-cycle mirrors it. D: image critics on real vs ``y~``,
      ``x~``; latent critics on prior vs ``z~_x``, ``z~_y``. G + E: LSGAN on all four,
      ``+ 10 (||x^ - x||_1 + ||y^ - y||_1) + 0.25 (||z^_y - z_y||_1 + ||z^_x - z_x||_1)
      + 10 (||G^{X->Y}(px, E^Y(px, py)) - py||_1 + ||G^{Y->X}(py, E^X(px, py)) - px||_1)``,
      the last being the supervised (identity) loss on pairs of the semi-supervised setting.
    """

    def __init__(self, variant, g_x2y, g_y2x, d_x, d_y, e_x=None, e_y=None, dz_x=None,
                 dz_y=None, *, cycle_weight=CYCLE_WEIGHT, identity_weight=IDENTITY_WEIGHT,
                 latent_cycle_weight=LATENT_CYCLE_WEIGHT, **kwargs):
        if variant not in BENCHMARKS:
            raise ValueError(f"benchmark variant must be one of {', '.join(BENCHMARKS)}, "
                             f"got {variant!r}")
        latent = (e_x, e_y, dz_x, dz_y)
        if (variant == "h") != all(n is not None for n in latent) or (
                variant == "g" and any(n is not None for n in latent)):
            raise ValueError("variant h, and only h, takes encoders and latent "
                             "discriminators")
        terms = ("g_loss", "g_adv", "cyc_loss", "cyc_x", "cyc_y", "d_loss", "d_x", "d_y")
        if variant == "h":
            terms += ("g_adv_z", "zcyc_loss", "id_loss", "id_x2y", "id_y2x", "d_zx", "d_zy")
        super().__init__(terms=terms, **kwargs)
        self.variant, self.latent_dim = variant, latent_dim_of(variant)
        self.g_x2y, self.g_y2x, self.d_x, self.d_y = g_x2y, g_y2x, d_x, d_y
        self.e_x, self.e_y, self.dz_x, self.dz_y = latent
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.latent_cycle_weight = float(latent_cycle_weight)

    @property
    def stochastic(self) -> bool:
        return self.latent_dim > 0

    def _gen_nets(self):
        return (self.g_x2y, self.g_y2x) + ((self.e_x, self.e_y) if self.stochastic else ())

    def _disc_nets(self):
        return (self.d_x, self.d_y) + ((self.dz_x, self.dz_y) if self.stochastic else ())

    def compile(self, gen_optimizer, disc_optimizer, **kwargs):
        super().compile(**kwargs)
        self.gen_optimizer = build_optimizer(gen_optimizer, *self._gen_nets())
        self.disc_optimizer = build_optimizer(disc_optimizer, *self._disc_nets())

    # -- data and mappings --
    def regrid(self, y):
        """CFHT ``[B, cfht_size, cfht_size, b]`` -> the SDSS grid (:func:`regrid_cfht`)."""
        return regrid_cfht(y, self.sdss_size)

    def batch(self, data):
        """``(x, y, px, py)``: unpaired SDSS, unpaired regridded CFHT, pairs (py regridded)."""
        return (data["sdss"], self.regrid(data["cfht"]), data["pair_sdss"],
                self.regrid(data["pair_cfht"]))

    def prior(self, like):
        """``z ~ N(0, I) [B, latent_dim]`` for a batch like ``like``, from the model's
        checkpointed seed state."""
        return f32(keras.random.normal((tf.shape(like)[0], self.latent_dim),
                                        seed=self.seed_generator))

    def x2y(self, x, z=None, training=True):
        return self.g_x2y([x, z] if self.stochastic else x, training=training)

    def y2x(self, y, z=None, training=True):
        return self.g_y2x([y, z] if self.stochastic else y, training=training)

    def call(self, x, training=False):
        """``G^{X->Y}(x)`` on the regridded CFHT grid (for (h) with a prior draw)."""
        return f32(self.x2y(x, self.prior(x) if self.stochastic else None, training))

    def cycles(self, x, y):
        """Both (augmented) cycles; returns a dict of the mapped images and codes."""
        out = {}
        if self.stochastic:
            z_x, z_y = self.prior(y), self.prior(x)
            fy = self.x2y(x, z_y)
            zx_inf = self.e_x([x, fy], training=True)       # z~_x = E^X(x, y~)
            fx = self.y2x(y, z_x)
            zy_inf = self.e_y([fx, y], training=True)       # z~_y = E^Y(x~, y)
            out.update(z_x=z_x, z_y=z_y, zx_inf=zx_inf, zy_inf=zy_inf,
                       rec_x=self.y2x(fy, zx_inf), rec_zy=self.e_y([x, fy], training=True),
                       rec_y=self.x2y(fx, zy_inf), rec_zx=self.e_x([fx, y], training=True))
        else:
            fy, fx = self.x2y(x), self.y2x(y)
            out.update(rec_x=self.y2x(fy), rec_y=self.x2y(fx))
        out.update(fake_y=fy, fake_x=fx)
        return out

    # -- sub-steps --
    def discriminator_step(self, data):
        """LSGAN critics on real vs generated images (and, (h), prior vs inferred codes);
        generators and encoders held constant."""
        x, y, _, _ = self.batch(data)
        if self.stochastic:
            z_x, z_y = self.prior(y), self.prior(x)
            fy, fx = self.x2y(x, z_y), self.y2x(y, z_x)
            zx_inf = tf.stop_gradient(self.e_x([x, fy]))
            zy_inf = tf.stop_gradient(self.e_y([fx, y]))
        else:
            fy, fx = self.x2y(x), self.y2x(y)
        fy, fx = tf.stop_gradient(fy), tf.stop_gradient(fx)
        values = {}
        with tf.GradientTape() as tape:
            values["d_x"] = lsgan_discriminator_loss(self.d_x(x, training=True),
                                                     self.d_x(fx, training=True))
            values["d_y"] = lsgan_discriminator_loss(self.d_y(y, training=True),
                                                     self.d_y(fy, training=True))
            loss = values["d_x"] + values["d_y"]
            if self.stochastic:
                values["d_zx"] = lsgan_discriminator_loss(self.dz_x(z_x, training=True),
                                                          self.dz_x(zx_inf, training=True))
                values["d_zy"] = lsgan_discriminator_loss(self.dz_y(z_y, training=True),
                                                          self.dz_y(zy_inf, training=True))
                loss = loss + values["d_zx"] + values["d_zy"]
            scaled = self.disc_optimizer.scale_loss(loss)
        self.update(self.disc_optimizer, tape, scaled, trainable(*self._disc_nets()))
        return {"d_loss": loss, **values}

    def generator_step(self, data):
        """LSGAN generator terms + weighted cycles (+ (h) latent cycles, latent adversarial
        and supervised identity terms); discriminators held constant."""
        x, y, px, py = self.batch(data)
        v = {}
        with tf.GradientTape() as tape:
            c = self.cycles(x, y)
            v["cyc_x"], v["cyc_y"] = l1(c["rec_x"], x), l1(c["rec_y"], y)
            v["cyc_loss"] = v["cyc_x"] + v["cyc_y"]
            v["g_adv"] = (lsgan_generator_loss(self.d_y(c["fake_y"]))
                          + lsgan_generator_loss(self.d_x(c["fake_x"])))
            loss = v["g_adv"] + self.cycle_weight * v["cyc_loss"]
            if self.stochastic:
                v["g_adv_z"] = (lsgan_generator_loss(self.dz_x(c["zx_inf"]))
                                + lsgan_generator_loss(self.dz_y(c["zy_inf"])))
                v["zcyc_loss"] = l1(c["rec_zy"], c["z_y"]) + l1(c["rec_zx"], c["z_x"])
                # Semi-supervised setting: the pairs' codes are inferred from both images.
                v["id_x2y"] = l1(self.x2y(px, self.e_y([px, py], training=True)), py)
                v["id_y2x"] = l1(self.y2x(py, self.e_x([px, py], training=True)), px)
                v["id_loss"] = v["id_x2y"] + v["id_y2x"]
                loss = (loss + v["g_adv_z"] + self.latent_cycle_weight * v["zcyc_loss"]
                        + self.identity_weight * v["id_loss"])
            scaled = self.gen_optimizer.scale_loss(loss)
        self.update(self.gen_optimizer, tape, scaled, trainable(*self._gen_nets()))
        return {"g_loss": loss, **v}

    def train_step(self, data):
        # D then G (Zhu et al.'s code updates G first on the previous D; Lin et al.'s
        # baselines and our (a)-(e) update D first).
        return self.record({**self.discriminator_step(data), **self.generator_step(data)})
