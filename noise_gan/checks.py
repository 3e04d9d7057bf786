"""Issue 13's noise checks: the data's noise level per domain and band (the simulated
truth, or a robust estimate from the training images), the emulators' noise against it
at each checkpoint (:class:`NoiseCheck`), and ``noise_init="data"``.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from data.layout import PAIRED_TEST, TRUTH_PREFIX
from data.lin_pipeline import iterate_checked, lin_data_errors, paired_test_dataset
from noise_gan import networks as nets
from noise_gan.config import NoiseGANConfig
from noise_gan.evaluate import noise_sigmas, reference_sigmas, robust_noise_sigma, sigma_ratios
from noise_gan.model import NoiseStep1, OneStepGAN
from noise_gan.samples import select_bands
from noise_gan.translator import Translator

#: Unpaired images per domain behind the robust noise estimate: the first batches of the
#: training stream (at most ``ESTIMATE_BATCHES`` of them).
ESTIMATE_IMAGES = 256
ESTIMATE_BATCHES = 32
#: Test pairs behind the truth reference of a simulated set (observed - noise-free truth).
TRUTH_PAIRS = 64
#: Emulator draws per domain behind each logged ratio, and their stateless seed.
CHECK_DRAWS = 16
CHECK_SEED = 1


def band_names(cfg: NoiseGANConfig) -> list[str]:
    """Column suffix of each channel: its band letter, or its index for networks whose
    channel count is not the band set's (injected datasets in tests)."""
    if cfg.bands == len(cfg.band_set):
        return list(cfg.band_set)
    return [str(c) for c in range(cfg.bands)]


def model_trains_noise(model) -> bool:
    """Whether ``model`` trains noise emulators (step one of ours, variant f)."""
    return isinstance(model, NoiseStep1) or (isinstance(model, OneStepGAN)
                                             and model.has_noise)


class NoiseCheck(keras.callbacks.Callback):
    """What the critic sees (issue 13): at each checkpoint, the emulators' noise rms
    against the data's, per band, in total and after the Fig. 2(g) high-pass filter.

    Logs ``noise_ratio_{x,y}_<band>`` and ``noise_ratio_hp_{x,y}_<band>`` (x = SDSS,
    y = CFHT; emulator / data, 1 = matched) from ``draws`` emulator samples per domain
    drawn from fixed stateless seeds (the same seeds at every checkpoint, and training's
    seed state is not touched). ``reference``: ``{"sdss": ..., "cfht": ...}`` as
    ``noise_gan.evaluate.reference_sigmas`` returns them. Judge a run with
    ``noise_gan.evaluate.history_convergence(step1/history.csv)``.
    """

    def __init__(self, cfg: NoiseGANConfig, ne_x, ne_y, reference: dict,
                 draws: int = CHECK_DRAWS):
        super().__init__()
        self.cfg, self.reference, self.draws = cfg, reference, draws
        self.translator = Translator(cfg, None, None, ne_x, ne_y)

    def ratios(self) -> dict:
        """``{column: ratio}`` for the emulators as they are now."""
        out = {}
        for dom, key, draw in (("x", "sdss", self.translator.noise_sdss),
                               ("y", "cfht", self.translator.noise_cfht)):
            r = sigma_ratios(noise_sigmas(draw(self.draws, seed=CHECK_SEED).numpy()),
                             self.reference[key])
            for i, band in enumerate(band_names(self.cfg)):
                out[f"noise_ratio_{dom}_{band}"] = float(r["total"][i])
                out[f"noise_ratio_hp_{dom}_{band}"] = float(r["hp"][i])
        return out

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.ratios())



def training_images(stream, n: int = ESTIMATE_IMAGES, batches: int = ESTIMATE_BATCHES):
    """``(sdss [m, s, s, b], cfht [m, c, c, b])`` float32 numpy: the first ``m <= n``
    unpaired images of each domain of a training stream (at most ``batches`` batches)."""
    xs, ys = [], []
    with lin_data_errors():
        for d in stream.take(batches):
            xs.append(np.asarray(d["sdss"], np.float32))
            ys.append(np.asarray(d["cfht"], np.float32))
            if sum(len(x) for x in xs) >= n:
                break
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def truth_noise(cfg: NoiseGANConfig, root: Path | None, n: int = TRUTH_PAIRS):
    """``(sdss, cfht)`` noise maps ``[m, size, size, b]`` (stretched observed - stretched
    noise-free truth) of the first ``m <= n`` test pairs of a simulated set, or None when
    ``root`` has no truth folders (real data, or an injected dataset)."""
    if root is None or not all((Path(root) / PAIRED_TEST / f"{TRUTH_PREFIX}{s}").is_dir()
                               for s in ("sdss", "cfht")):
        return None
    first = next(iterate_checked(paired_test_dataset(
        root, n, truth=True, sdss_size=cfg.sdss_size, cfht_size=cfg.cfht_size)))
    return tuple(np.asarray(select_bands(cfg, first[s] - first[f"{TRUTH_PREFIX}{s}"]))
                 for s in ("sdss", "cfht"))


def jsonable(ref: dict) -> dict:
    """``ref`` with its numpy arrays as lists (for the step's noise_reference.json)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ref.items()}


def noise_levels(cfg: NoiseGANConfig, root: Path | None, stream, estimate: bool) -> dict:
    """The data's noise per domain: ``{"sdss": ref, "cfht": ref}``, each as
    ``noise_gan.evaluate.reference_sigmas`` returns it (the simulated truth where there
    is one, else the robust estimate), plus ``"estimate"``: the robust estimate per domain
    (``[b]``, stretched units) when ``estimate`` or when it is the reference."""
    truth = truth_noise(cfg, root)
    images = training_images(stream) if (estimate or truth is None) else None
    out = {}
    for k, key in enumerate(("sdss", "cfht")):
        out[key] = reference_sigmas(None if images is None else images[k],
                                    None if truth is None else truth[k])
    if images is not None:
        out["estimate"] = {key: robust_noise_sigma(images[k])
                           for k, key in enumerate(("sdss", "cfht"))}
    return out


def init_noise_from_data(model, estimate: dict) -> dict:
    """``noise_init="data"``: each emulator's expected output rms set to the robust
    estimate of its domain (``networks.init_emulator_amplitude``); returns the achieved
    rms per domain."""
    got = {"sdss": nets.init_emulator_amplitude(model.ne_x, estimate["sdss"]),
           "cfht": nets.init_emulator_amplitude(model.ne_y, estimate["cfht"])}
    print("noise_init data: emulator rms set to the robust noise estimate of the training "
          "images: " + "; ".join(f"{k.upper()} " + " ".join(f"{v:.4g}" for v in got[k])
                                 for k in got))
    return got
