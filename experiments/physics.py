"""Physical fidelity of pseudo-HSC images (beyond Luo et al.): photometry and morphology.

    python experiments/physics.py                  # cpu preset: Table 1's two models
    python experiments/physics.py --preset paper
    python experiments/physics.py --data DIR --max-galaxies 100 --no-statmorph
    python experiments/physics.py --samples 8      # pulls with 3 seeds x 8 dropout draws

The paper judges pseudo-HSC images by eye and by image metrics, and claims (§4.3) they
"closely resemble the actual observed HSC images in terms of galaxy structure,
morphology, and color". This script measures that in the linear flux domain (the
measurements: :mod:`experiments.photometry`). For each test galaxy and each image kind

    sdss, pseudo2 (Cascade Pix2WGAN G2∘G1 on SDSS), decals, pseudo1 (Pix2WGAN on
    DECaLS), hsc, and, on simulated sets, truth (noise-free HSC, ``truth/<id>.npy``)

it inverts the viewer stretch (``data.render.inverse_render``; JPEG -> nanomaggies per
native pixel, then x (0.168 / native scale)^2 -> nanomaggies per 0.168" pixel),
subtracts the background (border median outside the grown segment; the truth gets
the same treatment, so kind - truth differs by noise and model only) and measures, in
apertures defined once per galaxy on the real HSC image (forced photometry, so every
kind is measured over the same pixels; on truth-only inputs the truth defines them):

* ``flux_g``, ``flux_r`` (nMgy) in a circle of radius ``R_ap = 2 r_Petrosian``
  (eta = 0.2, as SDSS), ``mag_r`` (AB, 22.5 - 2.5 log10 f) and colour ``g_r``;
* ``hlr`` (arcsec): radius enclosing half the aperture flux (curve of growth);
* ``e`` = 1 - b/a and ``pa`` (deg, from the +x axis towards +y, [0, 180)): flux-
  weighted second moments over the segment (pixels > 1.5 sigma after a 1 px Gaussian
  smoothing, connected to the centre, inside the aperture);
* ``C`` (Conselice 5 log10 r80/r20) and ``A`` (rotational asymmetry) from statmorph
  (Rodriguez-Gomez et al. 2019) on the r band with that segment; ``--no-statmorph``
  or a statmorph failure: our own C (same definition, apertures to 1.5 r_P) and A
  (sum |I - I_180| / sum |I| about the centroid, minus the same for a border sky box).

Error bars (issue 16): each model is also run as the ensemble of Table 1's ``--seeds``
training seeds (``python experiments/table1.py --seeds 3``; dropout off, one draw each)
and as that ensemble with dropout on (``--samples`` K draws per seed;
:mod:`pix2wgan.uncertainty`). ``flux_r`` and ``hlr`` are measured on every draw in the
same apertures (:func:`experiments.photometry.draw_measurements`); sigma = their std
over the draws (ddof 1, no calibration scale applied) and the pull is
``(mean over draws - truth) / sigma``. Its spread over the test galaxies (1.4826 MAD)
near 1 says the error bars mean what they say (goal 0.8-1.25); with n draws a perfectly
calibrated spread reads ``experiments.calibration_stats.ideal_pull_spread(n)`` (> 1:
sigma from few draws is itself uncertain), reported next to it. Missing seed runs
leave the pulls out with a note; ``--samples 0`` skips them.

Calibrated pulls (issue 16: "fit one scale factor on a validation split, never on
test"): the test split is halved by :func:`experiments.calibration_stats.split_ids`
(sorted ids, even VALIDATION, odd TEST: calibration.py's split). Per kind, source and
quantity one scale ``s`` = 1.4826 MAD of the VALIDATION pulls about their median
(sigma -> s sigma gives the validation spread 1); the TEST pulls are reported raw and
divided by ``s``: spread (goal 0.8-1.25), median (the bias in sigma units: a median
beyond 3 standard errors is a systematic offset the sigma does not cover, stated as
such), RMS and robust spread about 0 (bias included).

Outputs (``results/``): ``physics.csv`` / ``physics.md`` (median bias and robust
scatter 1.4826 MAD of each quantity, kind vs HSC and kind vs truth, plus manifest
totals, plus the pulls: quantity ``pull_flux_r`` / ``pull_hlr`` with their ``source``,
``draws``, ``ideal_scatter`` and the columns of
:func:`experiments.calibration_stats.calibrate_pulls`: ``scale``, ``n_val``,
``n_test``, ``median_test_raw``, ``spread_test_raw``, ``median_test_cal``,
``spread_test_cal``, ``rms_test_cal``, ``spread0_test_cal``), ``physics_galaxies.csv``
(every measurement), ``physics_pulls.csv`` (per galaxy: mean, sigma and pull of each
source), ``physics_hallucination.csv`` (per galaxy, see
:func:`experiments.photometry.hallucination`), ``physics_vs_hsc.{png,pdf}`` and
``physics_vs_truth.{png,pdf}`` (scatter plots).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from data.surveys import LUO_PIXSCALE, get_survey
from common.cli import Parser, non_negative_int, positive_int
from experiments import calibration_stats as cs
from experiments import luo_common as lc
from experiments.photometry import (PETRO_ETA, PETRO_N, SEG_K, band_index,
                                    draw_measurements, hallucination, make_reference,
                                    measure, sky, to_flux)

#: Image kinds: name -> (survey whose stretch rendered it, model key or None).
KINDS = {"sdss": ("sdss", None), "pseudo2": ("hsc", "cascade"),
         "decals": ("decals", None), "pseudo1": ("hsc", "pix2wgan"),
         "hsc": ("hsc", None)}
LABEL = {"sdss": "SDSS", "pseudo2": "pseudo-HSC² (cascade, SDSS)", "decals": "DECaLS",
         "pseudo1": "pseudo-HSC¹ (Pix2WGAN, DECaLS)", "hsc": "HSC",
         "truth": "truth (noise-free HSC)",
         "truth_jpeg": "truth as an 8-bit HSC JPEG (no noise)"}
QUANTITIES = ("mag_r", "g_r", "hlr", "e", "pa", "C", "A")
#: JPEG grey level from which a pixel counts as saturated (255 before JPEG compression,
#: which spreads clipped cores to ~250-255).
CLIP_LEVEL = 250
PAPER = ("The paper measures no photometry or morphology. It states (§4.3) that "
         "pseudo-HSC images 'closely resemble the actual observed HSC images in terms "
         "of galaxy structure, morphology, and color' and 'will serve as reliable data "
         "sources for future research in galaxy morphology classification'.")


# ------------------------------------------------------------------ driver
def _minus_sky(planes: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Each plane minus its border median (pixels in ``exclude`` left out)."""
    out = planes.astype(np.float64).copy()
    for b in range(out.shape[-1]):
        out[..., b] -= sky(out[..., b], exclude)[0]
    return out


def galaxy_measurements(images: dict, truth: np.ndarray | None,
                        use_statmorph: bool = True, draws: dict | None = None
                        ) -> tuple[list[dict], list[dict], list[dict]]:
    """Measure every kind of one galaxy.

    Args:
        images: kind -> ``[H, W, 3]`` uint8 viewer JPEG (kinds of :data:`KINDS`; must
            hold "hsc" unless ``truth`` is given, which then defines the geometry).
        truth: ``[H, W, 3]`` nMgy per 0.168" px (HSC g, r, i) or None.
        draws: ``(kind, source)`` -> ``[K, H, W, 3]`` pixels in [0, 255], draws of a
            pseudo-HSC kind (:func:`experiments.photometry.draw_measurements`).
    Returns:
        (rows of :func:`experiments.photometry.measure` + kind + geometry, rows of
        :func:`experiments.photometry.hallucination`, one row per ``draws`` entry:
        kind, source, draws, mean and std (ddof 1) of flux_r and hlr over the draws).
    """
    flux = {}
    for kind, rgb in images.items():
        survey = KINDS[kind][0]
        planes = to_flux(rgb, survey)
        flux[kind] = (survey, planes)
    ri = band_index("hsc", "r")
    if "hsc" in flux:
        hr = flux["hsc"][1][..., ri]
        bg, sigma = sky(hr)
        ref0 = make_reference(hr - bg, sigma)
        bg, sigma = sky(hr, ndimage.binary_dilation(ref0.seg, iterations=3))
        ref = make_reference(hr - bg, sigma)
    else:
        from data.scene import pixel_noise
        sigma = pixel_noise(get_survey("hsc"), "r")
        ref = make_reference(truth[..., ri].astype(np.float64), sigma)
    grown = ndimage.binary_dilation(ref.seg, iterations=3)
    rows, hall = [], []
    sub = {}
    for kind, (survey, planes) in flux.items():
        planes = _minus_sky(planes, grown)
        sub[kind] = planes
        rows.append(dict(kind=kind, **measure(planes, survey, ref, use_statmorph),
                         sky_sigma_r=sky(planes[..., band_index(survey, "r")], grown)[1]))
    if truth is not None:
        from data.render import render_planes
        t_raw = truth.astype(np.float64)
        # the truth as an 8-bit viewer JPEG would hold it (no noise): what the stretch's
        # clipping and quantisation alone cost
        t_rgb = render_planes(t_raw, get_survey("hsc"))
        # the same background estimate as the observed images (galaxy wings reach the
        # border of big galaxies): kind - truth then differs by noise and model only
        t = _minus_sky(t_raw, grown)
        tj = _minus_sky(to_flux(t_rgb, "hsc"), grown)
        rows.append(dict(kind="truth", **measure(t, "hsc", ref, use_statmorph, True),
                         sky_sigma_r=0.0))
        rows.append(dict(kind="truth_jpeg", **measure(tj, "hsc", ref, use_statmorph,
                                                      True), sky_sigma_r=0.0))
        psf_s = get_survey("hsc").psf_fwhm["r"] / 2.3548 / LUO_PIXSCALE
        clip_t = t_rgb.max(-1) >= CLIP_LEVEL
        for kind in ("pseudo1", "pseudo2", "hsc"):
            if kind in sub:
                bad = ndimage.binary_dilation(
                    clip_t | (images[kind].max(-1) >= CLIP_LEVEL), iterations=2)
                hall.append(dict(kind=kind, **hallucination(
                    sub[kind][..., ri], t[..., ri], ref.sigma, psf_s, invalid=bad)))
    for r in rows:
        r.update(r_ap_px=ref.r_ap, r_petro_px=ref.r_petro, hsc_sigma_r=ref.sigma)
    unc = []
    for (kind, source), d in (draws or {}).items():
        m = draw_measurements(d, KINDS[kind][0], ref, grown)
        sd = m.std(0, ddof=1) if len(m) > 1 else np.full(2, np.nan)
        unc.append(dict(kind=kind, source=source, draws=len(m), flux_r=m[:, 0].mean(),
                        flux_r_sigma=sd[0], hlr=np.nanmean(m[:, 1]), hlr_sigma=sd[1]))
    return rows, hall, unc


def _wrap_pa(d):
    return (np.asarray(d) + 90.0) % 180.0 - 90.0


def differences(meas: pd.DataFrame, ref_kind: str, kind: str) -> pd.DataFrame:
    """Per galaxy: ``kind`` minus ``ref_kind`` for every quantity (mag and colour in
    mag, hlr as a fraction, pa wrapped to [-90, 90) and only where the reference e >
    0.2, C and A where statmorph's flag < 2 for both)."""
    a = meas[meas.kind == kind].set_index("id")
    b = meas[meas.kind == ref_kind].set_index("id")
    ids = a.index.intersection(b.index)
    a, b = a.loc[ids], b.loc[ids]
    d = pd.DataFrame(index=ids)
    d["mag_r"] = a.mag_r - b.mag_r
    d["g_r"] = a.g_r - b.g_r
    d["hlr"] = a.hlr / b.hlr - 1
    d["e"] = a.e - b.e
    d["pa"] = np.where(b.e > 0.2, _wrap_pa(a.pa - b.pa), np.nan)
    ok = a.morph_ok.astype(bool) & b.morph_ok.astype(bool)
    d["C"] = np.where(ok, a.C - b.C, np.nan)
    d["A"] = np.where(ok, a.A - b.A, np.nan)
    return d


def pulls(unc: pd.DataFrame, meas: pd.DataFrame) -> pd.DataFrame:
    """Per galaxy and source: ``pull_flux_r`` and ``pull_hlr`` = (mean over draws -
    the truth's measurement) / sigma over draws; ``unc`` as
    :func:`galaxy_measurements`' third output with ``id``, ``meas`` its first."""
    t = meas[meas.kind == "truth"].set_index("id")
    out = unc.copy()
    for q in ("flux_r", "hlr"):
        ref = t[q].reindex(out["id"]).to_numpy(float)
        sig = out[f"{q}_sigma"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"truth_{q}"] = ref
            out[f"pull_{q}"] = np.where(sig > 0, (out[q].to_numpy(float) - ref) / sig,
                                        np.nan)
    return out


def pull_summary(pl: pd.DataFrame, val_ids=None) -> pd.DataFrame:
    """Median (``bias``) and robust spread (``scatter``) of the pulls over all galaxies
    per kind and source, with the spread a perfectly calibrated sigma of that many
    draws gives (``ideal_scatter``); with ``val_ids`` (the VALIDATION galaxies of
    :func:`experiments.calibration_stats.split_ids`; every other id is TEST) also the
    columns of :func:`experiments.calibration_stats.calibrate_pulls` (scale fitted on
    validation, reported on test)."""
    rows = []
    val = pl["id"].isin(set(val_ids)) if val_ids is not None else None
    for (kind, source), g in pl.groupby(["kind", "source"], sort=False):
        n_draws = int(g["draws"].iloc[0])
        for q in ("pull_flux_r", "pull_hlr"):
            med, sig, n = robust(g[q])
            row = dict(kind=kind, reference="truth", quantity=q, bias=med,
                       scatter=sig, n=n, source=source, draws=n_draws,
                       ideal_scatter=cs.ideal_pull_spread(n_draws)
                       if n_draws > 1 else float("nan"))
            if val is not None:
                v = val.loc[g.index]
                row.update(cs.calibrate_pulls(g.loc[v, q], g.loc[~v, q]))
            rows.append(row)
    return pd.DataFrame(rows)


#: Goal of the pull spread (issue 16).
PULL_GOAL = (0.8, 1.25)


def pull_markdown(ps: pd.DataFrame) -> list[str]:
    lines = ["### error bars: pulls against the truth", "",
             "pull = (mean over draws − truth) / σ, σ = std of the measurement over "
             "the draws (ddof 1, no calibration scale); spread = 1.4826 MAD over test "
             f"galaxies; goal {PULL_GOAL[0]}–{PULL_GOAL[1]}; 'ideal' = the spread a "
             "perfectly calibrated σ from that many draws gives (Student t).", "",
             "| kind | source | draws | quantity | median pull | spread | ideal | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in ps.iterrows():
        ok = PULL_GOAL[0] <= r.scatter <= PULL_GOAL[1]
        lines.append(f"| {LABEL.get(r.kind, r.kind)} | {r.source} | {int(r.draws)} | "
                     f"{r.quantity} | {r.bias:+.2f} | {r.scatter:.2f} (N {int(r.n)}) | "
                     f"{r.ideal_scatter:.2f} | "
                     f"{'holds' if ok else 'does NOT hold'} |")
    lines.append("")
    if "scale" not in ps.columns:
        return lines
    lines += ["### error bars after one scale per row (fitted on VALIDATION galaxies "
              "only, reported on TEST galaxies)", "",
              "The test split halved by `experiments.calibration_stats.split_ids` "
              "(sorted ids: even VALIDATION, odd TEST; calibration.py's split). "
              "scale s = 1.4826 MAD of the VALIDATION pulls about their median, so σ → "
              "s·σ gives the validation spread 1; the TEST pulls are shown before "
              "(raw) and after (cal = pull / s). median = the bias in σ units; RMS "
              "and spread₀ (1.4826 median |pull|) are about 0, the bias included.", "",
              "| kind | source | quantity | s (N val) | test median raw → cal | "
              "test spread raw → cal (N test) | RMS cal | spread₀ cal | goal (spread "
              "cal) |", "|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for _, r in ps.iterrows():
        ok = PULL_GOAL[0] <= r.spread_test_cal <= PULL_GOAL[1]
        word = "holds" if ok else "does NOT hold"
        name = f"{LABEL.get(r.kind, r.kind)}, {r.source}, {r.quantity}"
        lines.append(f"| {LABEL.get(r.kind, r.kind)} | {r.source} | {r.quantity} | "
                     f"{r.scale:.2f} ({int(r.n_val)}) | {r.median_test_raw:+.2f} → "
                     f"{r.median_test_cal:+.2f} | {r.spread_test_raw:.2f} → "
                     f"{r.spread_test_cal:.2f} ({int(r.n_test)}) | "
                     f"{r.rms_test_cal:.2f} | {r.spread0_test_cal:.2f} | {word} |")
        verdicts.append(
            f"- {name}: spread {'holds' if ok else 'does not hold'} after calibration "
            f"({r.spread_test_cal:.2f} on TEST, goal {PULL_GOAL[0]}–{PULL_GOAL[1]}; "
            f"raw {r.spread_test_raw:.2f}, s = {r.scale:.2f}); "
            + cs.pull_bias(r.median_test_cal, r.spread_test_cal, int(r.n_test))
            + f"; RMS about 0 {r.rms_test_cal:.2f}")
    return lines + [""] + verdicts + [""]


def robust(x) -> tuple[float, float, int]:
    """``(median, 1.4826 MAD, N)`` of the finite values."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan"), 0
    med = float(np.median(x))
    return med, float(1.4826 * np.median(np.abs(x - med))), len(x)


def summary(meas: pd.DataFrame, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """Bias (median) and scatter (robust sigma) of every quantity: each kind against
    HSC, each kind against the truth, and (simulated) r magnitude and hlr against the
    manifest's known totals (galaxy without companion, intrinsic i.e. before the PSF)."""
    rows = []
    kinds = [k for k in KINDS if k in set(meas.kind)]
    pairs = [(k, "hsc") for k in kinds if k != "hsc"]
    if "truth" in set(meas.kind):
        pairs += [(k, "truth") for k in kinds + ["truth_jpeg"]]
    for kind, ref in pairs:
        d = differences(meas, ref, kind)
        for q in QUANTITIES:
            med, sig, n = robust(d[q])
            rows.append(dict(kind=kind, reference=ref, quantity=q, bias=med,
                             scatter=sig, n=n))
    if manifest is not None and {"flux_bulge_r", "r50"} <= set(manifest.columns):
        man = manifest.set_index("id")
        tot = sum(man[f"flux_{c}_r"] for c in ("bulge", "disk", "knots"))
        for kind in kinds + (["truth", "truth_jpeg"] if "truth" in set(meas.kind)
                             else []):
            a = meas[meas.kind == kind].set_index("id")
            ids = a.index.intersection(man.index)
            mag = 22.5 - 2.5 * np.log10(tot.loc[ids])
            for q, vals in (("mag_r", a.loc[ids, "mag_r"] - mag),
                            ("hlr", a.loc[ids, "hlr"] / man.loc[ids, "r50"] - 1)):
                med, sig, n = robust(vals)
                rows.append(dict(kind=kind, reference="manifest", quantity=q, bias=med,
                                 scatter=sig, n=n))
    return pd.DataFrame(rows)


UNITS = dict(mag_r="mag", g_r="mag", hlr="fraction", e="", pa="deg", C="", A="")


def markdown(summ: pd.DataFrame, hall: pd.DataFrame | None, header: list[str]) -> str:
    lines = header + ["", "Bias = median of (kind − reference), scatter = 1.4826 × MAD; "
                          "hlr as a fractional difference; pa only where the reference "
                          "e > 0.2.", ""]
    for ref in summ.reference.unique():
        s = summ[summ.reference == ref]
        kinds = list(dict.fromkeys(s.kind))
        lines += [f"### against {LABEL.get(ref, ref)}", "",
                  "| quantity | " + " | ".join(LABEL.get(k, k) for k in kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for q in dict.fromkeys(s.quantity):
            cells = []
            for k in kinds:
                r = s[(s.kind == k) & (s.quantity == q)]
                cells.append("" if r.empty else
                             f"{r.bias.iloc[0]:+.3f} ± {r.scatter.iloc[0]:.3f} "
                             f"(N {int(r.n.iloc[0])})")
            unit = f" [{UNITS[q]}]" if UNITS.get(q) else ""
            lines.append(f"| {q}{unit} | " + " | ".join(cells) + " |")
        lines.append("")
    if hall is not None and len(hall):
        cols = ["rms_out", "false_flux_out", "false_peaks_in", "false_peaks_out",
                "missed_peaks", "true_peaks", "struct_corr"]
        lines += ["### against the truth: real structure or hallucination (r band)", "",
                  "Per-galaxy means (median in brackets); see "
                  "`experiments/photometry.py:hallucination` for the definitions.", "",
                  "| kind | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for k, g in hall.groupby("kind", sort=False):
            lines.append(f"| {LABEL.get(k, k)} | " + " | ".join(
                f"{g[c].mean():.3f} ({g[c].median():.3f})" for c in cols) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def scatter_figure(meas: pd.DataFrame, ref: str, kinds, title: str):
    """One panel per quantity: x = the reference's value, y = each kind's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = dict(sdss="#e8a0a0", pseudo2="#c0392b", decals="#999999",
                  pseudo1="#1f5fbf", hsc="k")
    qs = ("mag_r", "g_r", "hlr", "e", "C", "A")
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    b = meas[meas.kind == ref].set_index("id")
    for ax, q in zip(axes.ravel(), qs):
        lo, hi = np.inf, -np.inf
        for k in kinds:
            a = meas[meas.kind == k].set_index("id")
            ids = a.index.intersection(b.index)
            x, y = b.loc[ids, q].to_numpy(float), a.loc[ids, q].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.any():
                ax.scatter(x[ok], y[ok], s=9, alpha=0.7, color=colors.get(k),
                           label=LABEL.get(k, k))
                lo, hi = min(lo, np.percentile(x[ok], 1), np.percentile(y[ok], 1)), \
                    max(hi, np.percentile(x[ok], 99), np.percentile(y[ok], 99))
        if np.isfinite(lo):
            pad = 0.05 * (hi - lo + 1e-9)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(f"{q} ({LABEL.get(ref, ref)})", fontsize=8)
        ax.set_ylabel(q, fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/physics.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    p.add_argument("--max-galaxies", type=positive_int,
                   help="only the first N test galaxies")
    p.add_argument("--no-statmorph", action="store_true",
                   help="our own C and A instead of statmorph's")
    p.add_argument("--samples", type=non_negative_int, default=4,
                   help="dropout draws per seed for the pulls' ensemble x dropout source "
                        "(1: the seed ensemble alone; 0: no pulls)")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="training seeds of the pulls' ensemble (table1.py --seeds K)")
    return p


def samplers(args) -> tuple[dict, str]:
    """``({(kind, source): Sampler}, note)`` for the pulls: the ensemble of the seeds'
    runs of each model (dropout off) and, with ``--samples`` > 1, that ensemble with
    dropout on. Missing runs: no samplers, and the note says why."""
    from common.errors import DataError
    if not args.samples:
        return {}, "pulls: not measured (--samples 0)"
    try:
        chains = {kind: cs.seed_chains(args.preset, args.run, KINDS[kind][1], args.seeds)
                  for kind in ("pseudo1", "pseudo2")}
    except DataError as err:
        return {}, f"pulls: NOT measured: {err}"
    from pix2wgan.uncertainty import Sampler
    out = {}
    for kind, (ch, _) in chains.items():
        out[kind, "ensemble"] = Sampler(ch, samples=1)
        if args.samples > 1:
            out[kind, "ensemble x dropout"] = Sampler(ch, samples=args.samples)
    runs = "; ".join(f"{KINDS[k][1]}: {', '.join(str(f) for f in c[1])}"
                     for k, c in chains.items())
    return out, (f"pulls: {args.seeds} seeds x {args.samples} dropout draws "
                 f"(runs {runs})")


def run(args) -> pd.DataFrame:
    import tensorflow as tf

    from common.images import normalize
    from common.io import atomic_write_text
    from data.layout import truth_path
    t0 = time.time()
    root = lc.ensure_data(args)
    man = lc.test_manifest(root)
    ids = [g for g, _ in lc.chosen_or_given(
        args, man, lambda d: [(g, "test split") for g in d["id"]])]
    if args.max_galaxies:
        ids = ids[:args.max_galaxies]
    models = {}
    notes = []
    for key in ("pix2wgan", "cascade"):
        fn, note = lc.get_model(args, root, key)
        models[key] = fn
        notes.append(note)
    use_sm = not args.no_statmorph
    if use_sm:
        try:
            import statmorph  # noqa: F401
        except ImportError:
            print("note: statmorph not importable: own C and A")
            use_sm = False
    draw_fns, pull_note = samplers(args)
    all_rows, all_hall, all_unc = [], [], []
    batch = 16
    for lo in range(0, len(ids), batch):
        chunk = ids[lo:lo + batch]
        raw = {s: np.stack([lc.load_rgb(root, s, g) for g in chunk])
               for s in ("sdss", "decals", "hsc")}
        raw["pseudo1"] = lc.translate(models["pix2wgan"], raw["decals"])
        raw["pseudo2"] = lc.translate(models["cascade"], raw["sdss"])
        draws = {key: sampler.draws(normalize(tf.convert_to_tensor(
            raw["decals" if key[0] == "pseudo1" else "sdss"])))
            for key, sampler in draw_fns.items()}
        for j, gid in enumerate(chunk):
            tp = truth_path(root, "test", gid)
            truth = np.load(tp) if tp.is_file() else None
            rows, hall, unc = galaxy_measurements(
                {k: raw[k][j] for k in KINDS}, truth, use_sm,
                {key: d[:, j] for key, d in draws.items()} if truth is not None else None)
            all_rows += [dict(id=gid, **r) for r in rows]
            all_hall += [dict(id=gid, **h) for h in hall]
            all_unc += [dict(id=gid, **u) for u in unc]
        if not args.quiet:
            print(f"  measured {min(lo + batch, len(ids))}/{len(ids)} galaxies "
                  f"({time.time() - t0:.0f} s)", flush=True)
    meas = pd.DataFrame(all_rows)
    hall = pd.DataFrame(all_hall) if all_hall else None
    summ = summary(meas, man)
    pl = pulls(pd.DataFrame(all_unc), meas) if all_unc else None
    if pl is not None:
        # the VALIDATION half of the whole test split (calibration.py's split), so
        # --max-galaxies / --galaxy keep each id on its side
        val_ids = cs.split_ids(man["id"])[0]
        summ = pd.concat([summ, pull_summary(pl, val_ids)], ignore_index=True)
    simulated = (root / "sim_config.json").is_file()
    n_sm = int((meas.morph == "statmorph").sum())
    header = ["# Physical fidelity of pseudo-HSC images", "",
              f"- data: `{root}` ({'SIMULATED' if simulated else 'as given'}), "
              f"{len(ids)} test galaxies; preset {args.preset}",
              *(f"- model: {n}" for n in notes),
              "- flux domain: viewer stretch inverted (data.render.inverse_render), "
              "x (0.168/native)^2; border-median background removed from every image, truth included",
              f"- apertures from the real HSC r image: R_ap = {PETRO_N:g} r_P "
              f"(eta {PETRO_ETA}), segment > {SEG_K} sigma (smoothed)",
              f"- C, A: statmorph {n_sm}/{len(meas)} images, own fallback for the rest",
              f"- {pull_note}; pull scales fitted on VALIDATION galaxies only, "
              "reported on TEST galaxies (experiments.calibration_stats.split_ids)",
              f"- paper: {PAPER}",
              f"- wall time {time.time() - t0:.0f} s"]
    plain = summ[~summ.quantity.str.startswith("pull_")]
    md = markdown(plain, hall, header)
    if pl is not None:
        md += "\n".join(pull_markdown(summ[summ.quantity.str.startswith("pull_")]))
    res = Path(args.results)
    suffix = "_custom" if args.galaxy else ""
    res.mkdir(parents=True, exist_ok=True)
    atomic_write_text(res / f"physics{suffix}.csv", summ.to_csv(index=False,
                                                                float_format="%.5f"))
    atomic_write_text(res / f"physics{suffix}.md", md)
    atomic_write_text(res / f"physics{suffix}_galaxies.csv",
                      meas.to_csv(index=False, float_format="%.6g"))
    paths = [res / f"physics{suffix}.{e}" for e in ("csv", "md")]
    paths.append(res / f"physics{suffix}_galaxies.csv")
    if pl is not None:
        atomic_write_text(res / f"physics{suffix}_pulls.csv",
                          pl.to_csv(index=False, float_format="%.6g"))
        paths.append(res / f"physics{suffix}_pulls.csv")
    if hall is not None:
        atomic_write_text(res / f"physics{suffix}_hallucination.csv",
                          hall.to_csv(index=False, float_format="%.6g"))
        paths.append(res / f"physics{suffix}_hallucination.csv")
    fig = scatter_figure(meas, "hsc", ["decals", "pseudo1", "sdss", "pseudo2"],
                         "Measured on each image vs on the real HSC image")
    paths += lc.save_figure(fig, res, f"physics{suffix}_vs_hsc")
    if "truth" in set(meas.kind):
        fig = scatter_figure(meas, "truth", ["decals", "pseudo1", "pseudo2", "hsc"],
                             "Measured on each image vs on the noise-free truth")
        paths += lc.save_figure(fig, res, f"physics{suffix}_vs_truth")
    print(md)
    lc.wrote(paths)
    return summ


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
