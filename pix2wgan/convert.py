"""Files -> images: the conversion behind every JPEG ``predict`` CLI (Pix2WGAN and the
Cascade Pix2WGAN).

:func:`convert` streams the inputs in batches (memory stays flat whatever their number),
writes one output per input, ``OUT/<stem>.png``, atomically, and skips outputs that
already exist, so an interrupted conversion resumes where it stopped. Before anything is
converted, every input is decoded and checked (:func:`check_inputs`): one error lists
every unusable file (missing, not a square RGB JPEG, blank, sizes mixed), and two inputs
whose outputs would share a name (``a.jpg`` and ``a.jpeg``) are refused.

Every output carries the sha256 of the :class:`Model` that made it (:data:`TAG`: a PNG
text chunk, the JPEG comment ``model-sha256=<hex>``, or the FITS card ``MODELSHA``); it
covers the model's files and its ``params`` (for the cascade its ``--stage``; for an
ensemble or MC dropout, the number of models and of draws). A rerun into the same folder
with another model is refused (:func:`check_made_by`) unless ``overwrite``.

Uncertainty (:class:`Writer`, :mod:`pix2wgan.uncertainty`): a :class:`Model` that makes
``draws > 1`` per input (several trained models, dropout kept on, or both) writes their
mean as ``<stem>.png|jpg`` and their per-pixel standard deviation as
``<stem>_std.png`` (8-bit, in the same 0-255 pixel units, rounded, clipped at 255).
``fits`` writes ``<stem>.fits`` (:mod:`data.pseudo_fits`): the mean flux in nanomaggies,
the spread (``SIGMA``), the hallucination mask (``HALLUC``, when the input survey is
known) and the stamp's WCS (when its sky position is known). The spread is model
uncertainty on this input: it covers neither the shift between surveys nor HSC noise.

TensorFlow (through ``data.pipeline`` and ``common.images``) is imported inside
:func:`convert` only, so that the CLIs, which import this module, answer ``--help``
without loading it.
"""
from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, PngImagePlugin
from tqdm import tqdm

from common.errors import DataError
from common.io import atomic_path, clean_stale_tmp, file_sha256, output_paths
from data.checks import survey_blank
from data.render import is_blank
from data.surveys import HSC, JPEG_QUALITY, SURVEYS

FORMATS = ("png", "jpg", "fits")
#: Metadata key of the model hash in every output (PNG text chunk; JPEG comment
#: ``model-sha256=<hex>``; FITS card :data:`FITS_TAG`).
TAG = "model-sha256"
FITS_TAG = "MODELSHA"
#: ``<stem><STD>.png``: the per-pixel standard deviation next to a png/jpg mean.
STD = "_std"
#: Files checked or tagged per batch of thread work (bounds the queue of futures).
CHUNK = 256


# --- input survey -----------------------------------------------------------------------

def jpeg_surveys() -> tuple[str, ...]:
    """Surveys whose cutouts are RGB JPEGs (those with viewer RGB bands): the inputs a
    Pix2WGAN converts."""
    return tuple(name for name, s in SURVEYS.items() if s.rgb_bands)


def check_survey(name: str | None) -> str | None:
    """``name`` (lower-cased) if its cutouts are RGB JPEGs, ``None`` for ``None``;
    ``ValueError`` with a one-line message otherwise."""
    if name is None:
        return None
    s, jpeg = SURVEYS.get(name.lower()), jpeg_surveys()
    if s is not None and s.name in jpeg:
        return s.name
    if s is not None:  # cfht: the Lin et al. data
        raise ValueError(f"{s.name} cutouts are {''.join(s.bands)} FITS cubes for the Lin "
                         f"et al. model (python -m noise_gan.predict), not JPEG input for "
                         f"Pix2WGAN; --survey takes {', '.join(jpeg)}")
    raise ValueError(f"unknown survey {name!r}; --survey takes {', '.join(jpeg)}")


def blank_of(survey: str | None) -> int | None:
    """The blank (zero-flux) grey level of ``survey``'s JPEGs (``None``: no survey, no
    blank check); ``ValueError`` for a survey that is not JPEG input."""
    survey = check_survey(survey)
    return None if survey is None else survey_blank(survey)


# --- models -----------------------------------------------------------------------------

@dataclass
class Model:
    """What converts, and what identifies it.

    Attributes:
        load: called once, only if something is left to convert; returns
            ``(fn, multiple)``: ``fn`` maps ``[B, S, S, 3]`` float32 in [-1, 1] to the
            same (any generator-like callable, e.g. G2∘G1), and ``multiple`` is the
            number ``S`` must be divisible by.
        files: every file it is read from, in a fixed order.
        params: whatever else sets its outputs (e.g. the cascade stage).
        train_size: side of its training cutouts (``None``: unknown).
        warning: one line printed (stderr) before converting, e.g. an unfinished run.
        draws: outputs per input. 1: ``fn`` as above; > 1: ``fn`` maps ``[B, S, S, 3]``
            in [-1, 1] to ``[draws, B, S, S, 3]`` float32 pixels in [0, 255]
            (``pix2wgan.uncertainty.Sampler.draws``).
    """
    load: Callable
    files: Sequence[Path] = ()
    params: dict = field(default_factory=dict)
    train_size: int | None = None
    warning: str = ""
    draws: int = 1

    @cached_property
    def hashes(self) -> dict[str, str]:
        """``{file: sha256}`` of :attr:`files`."""
        return {str(f): file_sha256(f) for f in self.files}

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the files' contents (not their names) and ``params``."""
        h = hashlib.sha256("".join(self.hashes.values()).encode())
        h.update(json.dumps(self.params, sort_keys=True).encode())
        return h.hexdigest()

    def record(self) -> dict:
        return {"sha256": self.sha256, "files": self.hashes, "params": self.params}


def as_model(model) -> Model:
    """A :class:`Model`, or a bare ``load`` callable (no files: its hash is a constant)."""
    return model if isinstance(model, Model) else Model(model)


def saved_model(saved, load, params=None) -> Model:
    """A :class:`Model` of a saved run (``Saved``: files, training size, warning)."""
    return Model(load, saved.files, params or {}, saved.config.get("image_size"),
                 saved.warning)


def ensemble_model(saved: Sequence, load_chains: Callable, samples: int = 1,
                   params: dict | None = None) -> Model:
    """A :class:`Model` drawing ``len(saved) * samples`` outputs per input: one chain of
    networks per saved run (a deep ensemble over training seeds), each ``samples`` times
    with its dropout on (MC dropout) when ``samples > 1``.

    Args:
        saved: ``common.saved.Saved`` of each run, in order (their files, training size
            and warnings).
        load_chains: returns one tuple of ``keras.Model`` per run, applied in order
            (``(g,)``; ``(g1, g2)`` for G2∘G1); called once, only to convert.
        params: what else sets the outputs; the hash also covers the number of models
            and ``samples``.
    """
    paths = [str(f) for s in saved for f in s.files]
    twice = next((f for f in paths if paths.count(f) > 1), None)
    if twice:
        raise DataError(f"--model: {twice} is given twice; an ensemble needs distinct "
                        f"trained models")
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")

    def load():
        from pix2wgan.layers import unet_depth
        from pix2wgan.uncertainty import Sampler
        chains = load_chains()
        depth = max(unet_depth(g) for c in chains for g in c)
        sampler = Sampler(chains, samples)  # one draw: fn as for any Model
        return sampler.draws if sampler.k > 1 else sampler.fns[0], 2 ** depth
    warning = "\n".join(s.warning for s in saved if s.warning)
    return Model(load, [f for s in saved for f in s.files],
                 dict(params or {}, models=len(saved), samples=samples),
                 saved[0].config.get("image_size"), warning, len(saved) * samples)


def start_run(model: Model, *folders: Path) -> None:
    """Before a run: the model's warning, and the temporaries that killed writers left
    in ``folders`` removed (a rerun never leaves them behind)."""
    if model.warning:
        print(model.warning, file=sys.stderr)
    for folder in folders:
        clean_stale_tmp(folder)


def size_note(size: int, model: Model) -> None:
    """One line when the inputs' side differs from the model's training cutouts."""
    t = model.train_size
    if t and size != t:
        print(f"note: inputs are {size}x{size} px but the model was trained on {t}x{t} px "
              f"cutouts: for the same field of view their pixel scale differs from "
              f"training")


# --- outputs ----------------------------------------------------------------------------

def save_image(img, dst: Path, fmt: str, sha: str) -> None:
    """Write uint8 ``[S, S, 3]`` to ``dst`` atomically, PNG (lossless) or JPEG (the
    viewer's quality), tagged with the model hash ``sha`` (:data:`TAG`)."""
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(TAG, sha)
        kw = {"format": "PNG", "pnginfo": info}
    else:
        kw = {"format": "JPEG", "quality": JPEG_QUALITY,
              "comment": f"{TAG}={sha}".encode()}
    with atomic_path(dst) as tmp:
        Image.fromarray(img).save(tmp, **kw)


def read_tag(path: Path) -> str | None:
    """The model hash an output carries (:data:`TAG`, :data:`FITS_TAG`); ``None`` if
    none or unreadable. Reads the header only (PIL reads chunks lazily, up to the pixel
    data)."""
    if Path(path).suffix == ".fits":
        from astropy.io import fits
        try:
            tag = fits.getheader(path).get(FITS_TAG)
        except (OSError, ValueError, IndexError):
            return None
        return None if tag is None else str(tag)
    try:
        with Image.open(path) as img:
            info = dict(img.info)
    except (OSError, SyntaxError, ValueError):
        return None
    if TAG in info:
        return str(info[TAG])
    comment = info.get("comment", b"")
    if isinstance(comment, bytes):
        comment = comment.decode("ascii", "replace")
    return comment[len(TAG) + 1:] if comment.startswith(f"{TAG}=") else None


def software_version() -> str:
    """``<distribution> <version>`` of the installed project that holds this package
    (pyproject.toml's name and version); ``"unknown"`` if it is not installed."""
    names = metadata.packages_distributions().get(__name__.split(".")[0])
    return f"{names[0]} {metadata.version(names[0])}" if names else "unknown"


def std_path(dst: Path) -> Path:
    """``OUT/<stem>_std.png``: the standard deviation image of the mean ``dst``."""
    return dst.with_name(f"{dst.stem}{STD}.png")


def check_std_names(stems: Sequence[str], where) -> None:
    """One-line ``DataError`` when an output ``<a>_std.png`` would overwrite another
    input's output (inputs ``a`` and ``a_std``)."""
    keys = {s.casefold() for s in stems}
    clash = next((s for s in stems if f"{s}{STD}".casefold() in keys), None)
    if clash:
        raise DataError(f"{where}: inputs {clash!r} and {clash + STD!r} would both write "
                        f"{clash + STD}.png (the standard deviation of {clash!r}); rename "
                        f"one")


def fits_notes(survey: str | None, wcs_note: str) -> None:
    """The one-line notes of a ``--format fits`` run: what its files will lack."""
    if survey is None:
        print("note: no --survey: the FITS files have no HALLUC extension (the "
              "hallucination flag compares with the input's flux, which needs its "
              "survey's stretch)")
    if wcs_note:
        print(f"note: {wcs_note}: the FITS files have no celestial WCS")


def stamp_wcs_of(pos, size: int):
    """The stamp's TAN WCS at 0.168"/px (HSC) centred on ``pos = (ra, dec)`` degrees,
    or ``None`` for ``None``."""
    if pos is None:
        return None
    from data.cube import stamp_wcs
    return stamp_wcs(pos[0], pos[1], size, HSC.pixel_scale)


class Writer:
    """Writes one batch of a model's outputs (module docstring): the image as today
    (one draw, png/jpg), the mean and ``_std.png`` (several draws), or FITS.

    Args:
        model: the :class:`Model` (its ``draws`` and hash).
        fmt: one of :data:`FORMATS`.
        survey: the inputs' survey (FITS: the hallucination flag needs its stretch to
            read the input's flux; ``None``: no flag).
        pool: threads encoding and writing.
    """

    def __init__(self, model: Model, fmt: str, survey: str | None, pool):
        self.model, self.fmt, self.survey, self.pool = model, fmt, survey, pool
        self.cards = {}
        if fmt == "fits":
            from data.pseudo_fits import stretch_cards
            k = model.draws
            self.cards = {
                FITS_TAG: model.sha256,  # 64 hex digits: no room for a comment
                "SOFTVER": (software_version(), "software that made this file"),
                "NSAMPLES": (k, "draws averaged (models x dropout samples)"),
                "NMODELS": (model.params.get("models", 1), "trained models (ensemble)"),
                "INSURVEY": (survey or "unknown", "input survey (HALLUC reads its flux)"),
                "UNCERT": ("model spread" if k > 1 else "none",
                           "SIGMA: draws' std; not survey shift/HSC noise"),
                **stretch_cards(HSC)}

    def write(self, fn, x, dsts: Sequence[Path], wcs: Sequence | None = None) -> None:
        """``x``: ``[B, S, S, 3]`` float32 in [-1, 1] (Luo eq. 8), ``B >= len(dsts)``
        (padding rows are dropped); ``dsts``: one output path per row; ``wcs``: one
        astropy WCS or ``None`` per row (FITS only)."""
        import tensorflow as tf

        from common.images import denormalize
        from pix2wgan.uncertainty import moments
        n, sha = len(dsts), self.model.sha256
        if self.model.draws == 1 and self.fmt != "fits":  # as before uncertainty existed
            fake = denormalize(np.asarray(fn(x))[:n], tf.uint8).numpy()
            list(self.pool.map(lambda img, dst: save_image(img, dst, self.fmt, sha),
                               fake, dsts))
            return
        out = fn(x)
        draws = (np.asarray(out) if self.model.draws > 1 else
                 denormalize(out).numpy()[None])[:, :n]  # [K, n, S, S, 3] in [0, 255]
        if self.fmt == "fits":
            inputs = denormalize(np.asarray(x)[:n], tf.uint8).numpy()
            wcs = list(wcs) if wcs is not None else [None] * n
            list(self.pool.map(self._fits, range(n), [draws] * n, inputs, dsts, wcs))
            return
        mean, std = moments(draws)
        u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731

        def save(m, s, dst):  # std first: an existing mean means both are written
            save_image(u8(s), std_path(dst), "png", sha)
            save_image(u8(m), dst, self.fmt, sha)
        list(self.pool.map(save, mean, std, dsts))

    def _fits(self, i: int, draws, inp, dst: Path, wcs) -> None:
        """One FITS file from the draws ``[K, n, S, S, 3]`` of row ``i`` and its input
        ``inp`` (uint8 ``[S, S, 3]``)."""
        from data.pseudo_fits import write_pseudo_hsc
        from data.render import inverse_render
        from pix2wgan.hallucination import flag_unsupported
        from pix2wgan.uncertainty import flux_moments
        flux, sigma = flux_moments(draws[:, i], HSC)
        sigma = sigma if self.model.draws > 1 else None
        halluc = None
        if self.survey is not None:
            halluc = flag_unsupported(flux, inverse_render(inp, SURVEYS[self.survey]),
                                      pred_sigma=sigma, input_survey=self.survey)
        write_pseudo_hsc(dst, flux, sigma, halluc, wcs=wcs, header_extra=self.cards)


def not_ours(what: str, theirs: str | None, ours: str) -> str:
    """The one-line refusal to mix two models' outputs: ``"<what> made by <theirs>, not
    by this model ..."`` (``theirs``: a sha256, ``None`` for untagged outputs)."""
    made = (f"model sha256 {theirs[:12]}" if theirs else
            "an unrecorded model (written before predict recorded its model)")
    return (f"{what} made by {made}, not by this model (sha256 {ours[:12]}): pass "
            f"--overwrite to redo them with this model, or choose another --out")


def chunked_map(fn, items: Sequence, workers: int, desc: str = "", progress=False):
    """``fn`` over ``items`` on ``workers`` threads, :data:`CHUNK` at a time (memory and
    queued futures stay bounded); yields ``(item, result)`` in order. The bar shows on
    a terminal only (``progress``), and vanishes when done."""
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(items), desc=desc, unit="file", leave=False,
                 disable=None if progress else True) as bar:
        for k in range(0, len(items), CHUNK):
            part = items[k:k + CHUNK]
            yield from zip(part, pool.map(fn, part))
            bar.update(len(part))


def check_made_by(model: Model, existing: Sequence[Path], workers: int = 4) -> None:
    """One-line ``DataError`` unless every output in ``existing`` carries ``model``'s
    hash: a rerun with another model must not keep the old model's images."""
    other = [(p, tag) for p, tag in chunked_map(read_tag, existing, workers)
             if tag != model.sha256]
    if other:
        (path, tag), n = other[0], len(other)
        raise DataError(not_ours(f"{path.parent}: {n} of the {len(existing)} existing "
                                 f"outputs (e.g. {path.name}) were", tag, model.sha256))


# --- inputs -----------------------------------------------------------------------------

def read_image(src: str, size: int | None, blank: int | None):
    """Decode one JPEG -> ``(uint8 [S, S, 3] or None, one-line reason naming it or "")``;
    ``size``: the side required (``None``: any square)."""
    try:
        with Image.open(src) as img:
            img.load()
            fmt, mode = img.format, img.mode
            arr = np.asarray(img)
    except FileNotFoundError:
        return None, f"{src}: file is missing"
    except (OSError, SyntaxError, ValueError) as err:
        return None, f"{src}: not a readable image ({str(err).splitlines()[0][:120]})"
    if fmt != "JPEG":
        return None, f"{src}: not a JPEG file (PIL reads it as {fmt})"
    if mode != "RGB" or arr.shape[0] != arr.shape[1] or (size and arr.shape[0] != size):
        want = f"{size}x{size}" if size else "square"
        return None, f"{src}: expected a {want} RGB image, got " \
                     f"{arr.shape[1]}x{arr.shape[0]} {mode}"
    if blank is not None and is_blank(arr, blank):
        return None, f"{src}: blank cutout (survey blank level {blank})"
    return arr, ""


def check_inputs(files: Sequence[str], blank: int | None, workers: int = 4,
                 progress: bool = False) -> int:
    """Decode every input (on ``workers`` threads) and return their common side.

    Raises one ``DataError`` listing every unusable file (missing, unreadable, not a
    square RGB JPEG, blank) and, when the inputs mix sizes, naming one file of each
    size: all problems in one report, before anything is converted.
    """
    def side(f):
        arr, reason = read_image(f, None, blank)
        return (None if arr is None else arr.shape[0]), reason  # drop the pixels
    bad, first_of = [], {}
    for f, (s, reason) in chunked_map(side, files, workers, "checking inputs", progress):
        if s is None:
            bad.append(reason)
        else:
            first_of.setdefault(s, f)
    if len(first_of) > 1:
        bad.append("the inputs mix sizes: " + ", ".join(
            f"{f} is {s}x{s}" for s, f in sorted(first_of.items())) +
            " (one size per run)")
    if len(bad) == 1:
        raise DataError(bad[0])
    if bad:
        raise DataError(f"{len(bad)} problems with the {len(files)} inputs, nothing "
                        f"converted:\n  " + "\n  ".join(bad))
    return next(iter(first_of))


# --- one folder -------------------------------------------------------------------------

def convert(model, inputs, out_dir, *, batch_size=32, fmt="png", survey=None,
            overwrite=False, workers=4, progress=True, positions=None) -> list[Path]:
    """The machinery behind every JPEG ``predict`` CLI (Pix2WGAN, Cascade Pix2WGAN).

    Args:
        model: a :class:`Model` (or a bare ``load`` callable, see :class:`Model`).
        inputs: a JPEG, a folder of JPEGs or a list of files.
        out_dir: one ``<stem>.<fmt>`` per input, written atomically and tagged with the
            model's hash; existing ones are skipped unless ``overwrite``, and must be
            this model's.
        survey: reject that survey's blank cutouts (and, for ``fits``, read the
            inputs' flux through its stretch for the hallucination mask).
        positions: ``fits``: ``{stem: (ra, dec)}`` degrees, each output's WCS centre
            (``None``: no celestial WCS); every input's stem must be there.
    Returns:
        The output paths, in input order (new and existing).
    """
    # TensorFlow: see the module docstring.
    from data import pipeline

    model = as_model(model)
    blank = blank_of(survey)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    files = pipeline.list_images(inputs)
    outputs = output_paths(files, out_dir, fmt)
    if model.draws > 1 and fmt != "fits":
        check_std_names([Path(f).stem for f in files], inputs)
    if fmt == "fits" and positions is not None:
        lost = [f for f in files if Path(f).stem not in positions]
        if lost:
            raise DataError(f"{lost[0]}: no position for {Path(lost[0]).stem!r} in the "
                            f"positions ({len(lost)} of {len(files)} inputs have none)")
    start_run(model, out_dir)
    done = set() if overwrite else {f for f in files if outputs[f].exists()}
    check_made_by(model, [outputs[f] for f in files if f in done], workers)
    todo = [f for f in files if f not in done]
    if todo:
        size = check_inputs(todo, blank, workers, progress)
        fn, multiple = model.load()
        if size % multiple:
            raise DataError(f"{todo[0]}: size {size} is not divisible by {multiple}, "
                            f"which this model needs")
        size_note(size, model)
        if fmt == "fits":
            fits_notes(survey, "" if positions is not None else
                       "--input has no sky positions (give --positions)")
        ds = pipeline.image_dataset(todo, batch_size, survey=survey, image_size=size,
                                    validate=False, progress=progress)
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="predict")
        with ThreadPoolExecutor(max_workers=workers) as pool, pipeline.data_errors(ds):
            writer = Writer(model, fmt, survey, pool)
            for images, paths in ds:  # images: Luo eq. 8 normalised, [-1, 1]
                srcs = [p.decode() for p in paths.numpy()]
                wcs = None if positions is None else [
                    stamp_wcs_of(positions[Path(f).stem], size) for f in srcs]
                writer.write(fn, images, [outputs[f] for f in srcs], wcs)
                bar.update(len(srcs))
        bar.close()
    std = (f" and their {STD}.png (std of {model.draws} draws)"
           if model.draws > 1 and fmt != "fits" else "")
    print(f"{len(todo)} converted, {len(files) - len(todo)} already done: wrote "
          f"{len(todo)} {fmt.upper()}s{std} to {out_dir}/ (model sha256 "
          f"{model.sha256[:16]})")
    return [outputs[f] for f in files]
