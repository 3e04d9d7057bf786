"""Perceptual metrics of Luo et al. (2025) Table 1, LPIPS and FID, as one accumulator:
:class:`PerceptualSet` (``update(pred, target)`` on ``[0, 255]`` images, ``result()``),
or :func:`perceptual_scores` over an iterable of pairs.

The metrics and their weights live in :mod:`common.lpips` (LPIPS v0.1, AlexNet or VGG16),
:mod:`common.fid` (the Fréchet distance and its feature extractors; the FID Inception in
:mod:`common.inception`) and :mod:`common.weights` (reference files, cache, download).
Both need pretrained networks whose weights cannot be fetched on an offline machine
(``shared/notes/metrics.md``). A local file named by an argument or an environment
variable (``$LPIPS_WEIGHTS``, ``$FID_WEIGHTS``) is used, else the Keras cache; with no
weights at all a metric is *unavailable* (:data:`UNAVAILABLE`), and a random-init network
is built only behind ``allow_uncalibrated=True`` and then labelled ``"uncalibrated"`` in
every output.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from common.fid import (FID_EXTRACTORS, InceptionFeatures, build_fid_extractor,
                        fid_from_features, rgb255)
from common.lpips import LPIPS, build_lpips
from common.weights import UNCALIBRATED, WeightsNotFound

#: Reported in place of a value when no weights were found.
UNAVAILABLE = "unavailable (no weights)"


def to_unit(images) -> np.ndarray:
    """``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` -> float32 in ``[-1, 1]``."""
    return rgb255(images) / 127.5 - 1.0


class PerceptualSet:
    """Accumulates LPIPS and FID over a test set.

    ``lpips``: a :class:`common.lpips.LPIPS` or ``None``; ``fid``: a
    :class:`common.fid.InceptionFeatures` or ``None``; ``None`` makes that metric
    unavailable, with the reason given in ``lpips_reason`` / ``fid_reason``. :meth:`build`
    does the weight lookups and turns a :class:`common.weights.WeightsNotFound` into
    "unavailable (no weights)".

    :meth:`result` returns ``{"lpips": entry, "fid": entry}`` where an entry is either
    ``{"unavailable": "unavailable (no weights)", "reason": one line}`` or

    * lpips: ``{"mean", "n", "net", "weights", "label"}`` (``label``: ``"calibrated"`` or
      ``"uncalibrated"``), the mean of per-image distances;
    * fid: ``{"value", "n", "n1", "n2", "eps", "warning", "extractor", "weights", "label"}``,
      pred set vs target set.
    """

    def __init__(self, lpips: LPIPS | None = None, fid: InceptionFeatures | None = None,
                 lpips_reason: str = "not requested", fid_reason: str = "not requested"):
        self.lpips, self.fid = lpips, fid
        self.lpips_reason, self.fid_reason = lpips_reason, fid_reason
        self._d: list[np.ndarray] = []
        self._fp: list[np.ndarray] = []
        self._ft: list[np.ndarray] = []

    @classmethod
    def build(cls, lpips_net: str | None = "alex", lpips_weights: str | None = None,
              fid_extractor: str | None = FID_EXTRACTORS[0], fid_weights: str | None = None,
              allow_uncalibrated: bool = False, download: bool = False,
              fid_size: int = 299) -> "PerceptualSet":
        """Look up weights and build the networks; a metric whose weights are missing (or
        whose net is ``None``) is unavailable instead of an error."""
        lp = fd = None
        lr = fr = "not requested"
        if lpips_net:
            try:
                lp = build_lpips(lpips_net, lpips_weights, allow_uncalibrated)
            except WeightsNotFound as err:
                lr = str(err)
        if fid_extractor:
            try:
                fd = build_fid_extractor(fid_extractor, fid_weights, allow_uncalibrated,
                                         download, fid_size)
            except WeightsNotFound as err:
                fr = str(err)
        return cls(lp, fd, lr, fr)

    def update(self, pred, target) -> None:
        """Add images ``[N, H, W, 3]`` (or ``[H, W, 3]``) in ``[0, 255]`` (uint8 or float)."""
        p, t = to_unit(pred), to_unit(target)
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
        if self.lpips is not None:
            self._d.append(self.lpips(p, t))
        if self.fid is not None:
            self._fp.append(self.fid(rgb255(pred)))  # [0, 255] as given: no rounding
            self._ft.append(self.fid(rgb255(target)))

    def result(self) -> dict:
        """``{"lpips": entry, "fid": entry}`` (see the class docstring)."""
        out = {}
        if self.lpips is None:
            out["lpips"] = {"unavailable": UNAVAILABLE, "reason": self.lpips_reason}
        else:
            d = np.concatenate(self._d) if self._d else np.zeros(0)
            out["lpips"] = {"mean": float(d.mean()) if d.size else float("nan"),
                            "n": int(d.size), "net": self.lpips.net,
                            "weights": self.lpips.weights, "label": self.lpips.label}
        if self.fid is None:
            out["fid"] = {"unavailable": UNAVAILABLE, "reason": self.fid_reason}
        else:
            fp, ft = (np.concatenate(f) if f else np.zeros((0, 2048)) for f in (self._fp, self._ft))
            entry = (fid_from_features(fp, ft) if min(len(fp), len(ft)) >= 2 else
                     {"value": float("nan"), "n": len(fp), "warning": "fewer than 2 images"})
            entry.update(extractor=self.fid.extractor, weights=self.fid.weights,
                         label=self.fid.label)
            out["fid"] = entry
        return out

    def describe(self) -> list[str]:
        """One line per metric: which network and weights (or why unavailable)."""
        return [self.lpips.describe() if self.lpips else f"LPIPS: {UNAVAILABLE} ({self.lpips_reason})",
                self.fid.describe() if self.fid else f"FID: {UNAVAILABLE} ({self.fid_reason})"]


def cell(entry: dict, digits: int = 3) -> str:
    """A table cell for a :meth:`PerceptualSet.result` entry: ``"0.123"``,
    ``"0.123 (uncalibrated)"`` or ``"unavailable (no weights)"``."""
    if "unavailable" in entry:
        return entry["unavailable"]
    v = entry.get("mean", entry.get("value"))
    text = f"{v:.{digits}f}"
    return text + f" ({UNCALIBRATED})" if entry.get("label") == UNCALIBRATED else text


def perceptual_scores(pairs: Iterable, **build) -> dict:
    """:meth:`PerceptualSet.result` over ``(pred, target)`` batches in ``[0, 255]``;
    ``build`` goes to :meth:`PerceptualSet.build`. Adds ``"describe"``: its lines."""
    ps = PerceptualSet.build(**build)
    for pred, target in pairs:
        ps.update(pred, target)
    out = ps.result()
    out["describe"] = ps.describe()
    return out
