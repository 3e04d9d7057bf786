"""Shared pieces of the Luo et al. figure and physics scripts.

* :func:`add_common_args`, :func:`ensure_data`, :func:`get_model`: the flags every
  script takes (presets: :data:`experiments.presets.LUO_PRESETS`), the dataset of the
  preset (simulated on first use) and the trained models, **the same runs as Table 1**
  (``runs/table1-<preset>``, ``-cascade``; :mod:`experiments.luo_models`): a finished
  run is loaded, an unfinished one resumed, a missing one trained with Table 1's
  settings;
* galaxy selection rules over the manifest (never hand-picked ids): :func:`select_showcase`
  (Figs 3-4 and 8-9), :func:`select_triplets` (Fig 1), :func:`select_artifacts`
  (Figs 5-6); each returns ``(id, reason)`` pairs and is deterministic (sorted with
  the id as the last key);
* images: :func:`load_rgb`, :func:`translate` (a generator on uint8 cutouts),
  :func:`background_sigma` (JPEG background noise);
* :func:`panel_grid` and :func:`save_figure` (PNG + PDF, written atomically).

Images are ``[H, W, 3]`` uint8 (R, G, B) in [0, 255] unless said otherwise; model
functions map ``[B, H, W, 3]`` float32 in [-1, 1] to the same.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# Nothing here imports TensorFlow at module level (luo_models neither): ``--help`` of
# every figure script stays fast; the model and metric code is imported where it is used.
from common.cli import add_verbose, positive_int
from data.layout import REPO_ROOT, image_path, read_manifest
from experiments import luo_models
from experiments.presets import LUO_PRESETS

RESULTS = REPO_ROOT / "results"
SURVEY_LABEL = {"sdss": "SDSS", "decals": "DECaLS", "hsc": "HSC"}
#: Artifact kinds the simulator can flag per survey (``defects_<survey>`` column).
ARTIFACTS = ("streak", "saturated", "noisy", "blurred")


# ------------------------------------------------------------------------ arguments
def add_common_args(p: argparse.ArgumentParser, models: bool = True) -> None:
    """Flags shared by the figure scripts (the model ones mirror table1.py's, and
    ``--verbose``: only scripts with models use TensorFlow)."""
    p.add_argument("--preset", choices=LUO_PRESETS, default="cpu",
                   help="cpu (default; the models of `python experiments/table1.py`), "
                        "paper, or tiny (smoke test)")
    p.add_argument("--data", help="dataset folder (default: the preset's simulated set, "
                                  "made on first use)")
    p.add_argument("--results", default=str(RESULTS), help="output folder")
    p.add_argument("--galaxy", action="append", metavar="ID",
                   help="show this test galaxy instead of the rule's choice (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if models:
        p.add_argument("--run", help="Pix2WGAN run folder (default runs/table1-PRESET, "
                                     "the cascade in RUN-cascade), as table1.py")
        p.add_argument("--skip-train", action="store_true",
                       help="use finished runs only; fail if one is missing")
        p.add_argument("--epochs", type=positive_int, help="override the preset's epochs")
        p.add_argument("--width", type=positive_int, help="override the generator width")
        p.add_argument("--batch-size", type=positive_int, help="override the batch size")
        add_verbose(p)


def ensure_data(args) -> Path:
    """The dataset root of ``args`` (``--data`` or the preset's simulated set)."""
    return luo_models.ensure_data(args.preset, args.data,
                                  progress=not getattr(args, "quiet", False))


def get_model(args, root: Path, key: str):
    """``(fn, note)``: model ``key`` ("pix2wgan" or "cascade") of the preset, as
    :func:`experiments.luo_models.load_or_train` gives it for the parsed flags ``args``
    (``--run``, ``--skip-train``, ``--epochs``/``--width``/``--batch-size``)."""
    return luo_models.load_or_train(args.preset, root, key, args.run, args.skip_train,
                                    luo_models.flag_overrides(args),
                                    getattr(args, "quiet", False))


# ------------------------------------------------------------------------ images
def load_rgb(root: Path, survey: str, gid: str, split: str = "test") -> np.ndarray:
    """One cutout, ``[H, W, 3]`` uint8 (R, G, B)."""
    from data.render import read_jpeg
    return read_jpeg(image_path(root, split, survey, gid))


def translate(fn, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run a model on cutouts: ``[N, H, W, 3]`` uint8 -> ``[N, H, W, 3]`` uint8, rounded
    exactly as a saved pseudo-HSC PNG (``common.images.denormalize``)."""
    import tensorflow as tf

    from common.images import denormalize, normalize
    out = []
    for lo in range(0, len(images), batch):
        x = normalize(tf.convert_to_tensor(images[lo:lo + batch]))
        out.append(denormalize(fn(x), tf.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.uint8)


def background_sigma(images: np.ndarray, border: int = 12) -> float:
    """Median over images of the robust (MAD) std of the border pixels, grey levels.

    A diagnostic of the JPEG background noise, ``images`` ``[N, H, W, 3]`` in [0, 255].
    """
    x = images.astype(np.float64)
    edge = np.concatenate([x[:, :border].reshape(len(x), -1),
                           x[:, -border:].reshape(len(x), -1)], axis=1)
    mad = np.median(np.abs(edge - np.median(edge, axis=1, keepdims=True)), axis=1)
    return float(np.median(1.4826 * mad))



# ------------------------------------------------------------------------ selection
def test_manifest(root: Path) -> pd.DataFrame:
    """The test split's manifest, ``defects_<survey>`` as strings ('' = none)."""
    df = read_manifest(root, "test")
    for c in df.columns:
        if c.startswith("defects_"):
            df[c] = df[c].fillna("").astype(str)
    return df


def _defects(row, survey: str) -> set[str]:
    return set(filter(None, str(row.get(f"defects_{survey}", "") or "").split(";")))


def clean_mask(df: pd.DataFrame) -> pd.Series:
    """Galaxies with no flagged defect in any survey (all True without flag columns)."""
    cols = [c for c in df.columns if c.startswith("defects_")]
    if not cols:
        return pd.Series(True, index=df.index)
    return (df[cols] == "").all(axis=1)


def _rank(df: pd.DataFrame, cond, by: str, ascending: bool) -> list[str]:
    """Ids of rows meeting ``cond``, sorted by ``by`` then id (deterministic)."""
    sub = df[cond] if cond is not None else df
    return sub.sort_values([by, "id"], ascending=[ascending, True],
                           kind="mergesort")["id"].tolist()


#: Figs 3-4 (and 8-9, the same galaxies): one category per column, as the paper's
#: text describes its six galaxies (§4.2): Fig 3: a spiral, a galaxy with a tidal
#: feature (companion), a bulge-dominated galaxy; Fig 4: a second spiral, an inclined
#: disk (the "disk structure" of its middle column), a knotty galaxy (its "point-like
#: structure"). (name, condition on the manifest, sort column, ascending).
SHOWCASE = (
    ("spiral arms", lambda d: d["has_arms"] == 1, "petro_theta", False),
    ("companion / tidal feature", lambda d: d["companion"] == 1, "comp_r_mag", True),
    ("bulge-dominated", lambda d: d["bulge_frac"] >= 0.65, "petro_theta", False),
    ("spiral arms", lambda d: d["has_arms"] == 1, "petro_theta", False),
    ("inclined disk", lambda d: (d["has_arms"] == 0) & (d["bulge_frac"] < 0.35), "q",
     True),
    ("point-like knots", lambda d: d["n_knots"] > 0, "n_knots", False),
)
#: Fig 1: three clean galaxies of different kinds (spiral, disk without arms, bulge-dominated), the largest (Petrosian radius) each.
TRIPLETS = (
    ("spiral arms", lambda d: d["has_arms"] == 1, "petro_theta", False),
    ("disk without arms", lambda d: (d["has_arms"] == 0) & (d["bulge_frac"] < 0.65),
     "petro_theta", False),
    ("bulge-dominated", lambda d: d["bulge_frac"] >= 0.65, "petro_theta", False),
)


def _by_rules(df: pd.DataFrame, rules, n: int | None = None) -> list[tuple[str, str]]:
    """Apply ``rules`` in order on the clean test galaxies, each taking its best-ranked
    galaxy not taken yet; a rule that finds none (or cannot be evaluated: real data
    without simulation parameters) takes the largest remaining clean galaxy
    (``petro_theta`` if present), else the next id."""
    mask = clean_mask(df)
    pool = df[mask]
    size_col = "petro_theta" if "petro_theta" in df.columns else "id"
    # clean galaxies first, flagged ones only once no clean one is left
    fallback = (_rank(pool, None, size_col, size_col == "id")
                + _rank(df[~mask], None, size_col, size_col == "id"))
    chosen: list[tuple[str, str]] = []
    taken: set[str] = set()
    for name, cond, by, asc in rules:
        try:
            ids = _rank(pool, cond(pool), by, asc)
            why = f"{name} (rule: {'lowest' if asc else 'highest'} {by})"
        except KeyError:  # no simulation parameters (e.g. real downloads)
            ids, why = [], ""
        pick = next((i for i in ids if i not in taken), None)
        if pick is None:
            pick = next((i for i in fallback if i not in taken), None)
            why = f"{name}: none found; fallback: next by {size_col}"
        if pick is None:
            break
        taken.add(pick)
        chosen.append((pick, why))
    return chosen[:n] if n else chosen


def select_showcase(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Six ``(id, reason)`` for Figs 3-4 (first three: Fig 3) and Figs 8-9."""
    return _by_rules(df, SHOWCASE)


def select_triplets(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Three ``(id, reason)`` for Fig 1."""
    return _by_rules(df, TRIPLETS)


def artifact_score(root: Path, survey: str, gid: str, kind: str) -> float:
    """Image statistic that ranks galaxies for ``kind`` when no flags exist (real data);
    higher = stronger. ``noisy``: robust sky sigma of the border (grey levels);
    ``saturated``: fraction of pixels with a channel >= 250 beyond 10 px of the centre;
    ``blurred``: minus the ratio of Laplacian power to that of the HSC image;
    ``streak``: the peak of the Radon transform of the source-clipped, background-
    subtracted image over its robust spread (a straight bright line)."""
    from scipy import ndimage
    img = load_rgb(root, survey, gid).astype(np.float64)
    grey = img.mean(-1)
    h, w = grey.shape
    if kind == "noisy":
        edge = np.concatenate([grey[:12].ravel(), grey[-12:].ravel()])
        return float(1.4826 * np.median(np.abs(edge - np.median(edge))))
    if kind == "saturated":
        yy, xx = np.mgrid[:h, :w]
        far = np.hypot(yy - h / 2, xx - w / 2) > 10
        return float((img.max(-1)[far] >= 250).mean())
    if kind == "blurred":
        ref = load_rgb(root, "hsc", gid).astype(np.float64).mean(-1)
        lap = lambda a: float(np.mean(ndimage.laplace(ndimage.gaussian_filter(a, 1)) ** 2))
        return -lap(grey) / max(lap(ref), 1e-9)
    if kind == "streak":
        from skimage.transform import radon
        med = np.median(grey)
        mad = 1.4826 * np.median(np.abs(grey - med)) + 1e-6
        x = np.clip(grey - med, 0, 5 * mad)  # clip the galaxy so it does not dominate
        sino = radon(x, theta=np.arange(0, 180, 2.0), circle=False)
        return float((sino.max() - np.median(sino)) / (np.std(sino) + 1e-9))
    raise ValueError(f"unknown artifact kind {kind!r}; choose one of {ARTIFACTS}")


def select_artifacts(df: pd.DataFrame, survey: str, kinds, root: Path | None = None
                     ) -> list[tuple[str, str]]:
    """One ``(id, reason)`` per artifact kind in ``kinds``, flagged in ``survey``.

    Rule with flags (simulated sets): the test galaxies whose ``defects_<survey>``
    holds the kind; those with that defect alone first, then those whose other surveys
    are clean, then by id. Without a flag column (real data): the galaxy with the
    highest :func:`artifact_score` (needs ``root``). A kind with no flagged galaxy
    is left out (with a message) rather than filled with a clean one.
    """
    col = f"defects_{survey}"
    chosen, taken = [], set()
    for kind in kinds:
        if col in df.columns:
            rows = []
            for _, r in df.iterrows():
                d = _defects(r, survey)
                if kind in d:
                    others = sum(len(_defects(r, s)) for s in ("sdss", "decals", "hsc")
                                 if s != survey)
                    rows.append((len(d) > 1, others > 0, r["id"]))
            ids = [i for *_, i in sorted(rows)]
            why = f"{SURVEY_LABEL.get(survey, survey)} flagged '{kind}' (manifest)"
        else:
            if root is None:
                raise ValueError("select_artifacts: no defect flags; pass root to rank "
                                 "by image statistics")
            scores = [(-artifact_score(root, survey, g, kind), g) for g in df["id"]]
            ids = [g for _, g in sorted(scores)]
            why = f"highest '{kind}' image statistic in {survey} (no flags)"
        pick = next((i for i in ids if i not in taken), None)
        if pick is None:
            print(f"note: no test galaxy flagged '{kind}' in {survey}: column left out")
            continue
        taken.add(pick)
        chosen.append((pick, f"{kind}: {why}"))
    return chosen


def chosen_or_given(args, df: pd.DataFrame, rule) -> list[tuple[str, str]]:
    """``--galaxy`` ids (checked against the test split) or ``rule(df)``."""
    if args.galaxy:
        known = set(df["id"])
        bad = [g for g in args.galaxy if g not in known]
        if bad:
            raise ValueError(f"--galaxy {', '.join(bad)}: not in the test split")
        return [(g, "given with --galaxy") for g in args.galaxy]
    return rule(df)


# ------------------------------------------------------------------------ drawing
def panel_grid(rows, col_titles, title: str, cell: float = 2.2):
    """A grid of images: ``rows`` = ``[(row label, [img per column]), ...]`` top to
    bottom, images ``[H, W, 3]`` uint8. Returns the matplotlib Figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_rows, n_cols = len(rows), max(1, len(col_titles))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 0.8,
                                                      cell * n_rows + 0.9),
                             squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(images) and images[j] is not None:
                ax.imshow(images[j], interpolation="nearest")
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def save_figure(fig, results: Path | str, name: str) -> list[Path]:
    """Write ``results/<name>.png`` (150 dpi) and ``.pdf`` atomically; close ``fig``."""
    import matplotlib.pyplot as plt

    from common.io import atomic_path
    out = []
    for fmt in ("png", "pdf"):
        path = Path(results) / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)
        out.append(path)
    plt.close(fig)
    return out


def write_selection(results: Path | str, name: str, rows: list[dict]) -> Path:
    """The galaxies a figure shows (id, column, reason), ``results/<name>_galaxies.csv``."""
    from common.io import atomic_write_text
    path = Path(results) / f"{name}_galaxies.csv"
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def col_title(gid: str, why: str) -> str:
    return f"{gid}\n{why.split(' (rule')[0].split(':')[0]}"


def comparison_figure(root: Path, chosen, source: str, fn, pseudo_label: str,
                      title: str, results: Path | str, name: str) -> tuple[list, list]:
    """The paper's three-row layout: ``source`` input (top), pseudo-HSC = ``fn`` of it
    (middle), real HSC (bottom); one column per ``(id, reason)`` of ``chosen``.

    Returns ``(paths, rows)``: the PNG/PDF paths and one dict per galaxy with the
    per-image RMSE and SSIM (on [0, 255]) of the input and of the pseudo-HSC against
    HSC, so every panel's quality is on record next to the picture.
    """
    from common import metrics
    ids = [g for g, _ in chosen]
    src = np.stack([load_rgb(root, source, g) for g in ids])
    hsc = np.stack([load_rgb(root, "hsc", g) for g in ids])
    pseudo = translate(fn, src)
    fig = panel_grid([(SURVEY_LABEL[source], list(src)), (pseudo_label, list(pseudo)),
                      ("HSC", list(hsc))],
                     [col_title(g, w) for g, w in chosen], title)
    paths = save_figure(fig, results, name)
    r_in, r_ps = metrics.rmse(src, hsc), metrics.rmse(pseudo, hsc)
    s_in, s_ps = metrics.ssim(src, hsc), metrics.ssim(pseudo, hsc)
    rows = [dict(figure=name, column=j + 1, id=g, reason=w, input=source,
                 rmse_input=float(r_in[j]), rmse_pseudo=float(r_ps[j]),
                 ssim_input=float(s_in[j]), ssim_pseudo=float(s_ps[j]))
            for j, (g, w) in enumerate(chosen)]
    return paths, rows


def showcase_figures(args, paper: str, key: str, source: str, label: str,
                     stem: str, first: int) -> list[Path]:
    """Figs 3-4 (Pix2WGAN from DECaLS) and 8-9 (cascade from SDSS): the six
    :func:`select_showcase` galaxies (or ``--galaxy``) as figures ``first`` and
    ``first + 1``, three columns each, in :func:`comparison_figure`'s layout."""
    root = ensure_data(args)
    chosen = chosen_or_given(args, test_manifest(root), select_showcase)
    fn, note = get_model(args, root, key)
    if args.galaxy:
        groups = [(f"{stem}_custom", f"Figs {first}-{first + 1}", chosen)]
    else:
        groups = [(f"figure{first + k}", f"Fig. {first + k}", chosen[3 * k:3 * k + 3])
                  for k in (0, 1)]
    paths, rows = [], []
    for name, fig_label, group in groups:
        if group:
            p, r = comparison_figure(
                root, group, source, fn, label,
                f"{fig_label} (Luo et al.): {SURVEY_LABEL[source]} / {label} / HSC",
                args.results, name)
            paths += p
            rows += r
    paths.append(write_selection(args.results, f"{stem}_custom" if args.galaxy
                                 else stem, rows))
    report(paper, rows, paths, [note])
    return paths


def artifact_figure(args, paper: str, survey: str, kinds, number: int,
                    lines=()) -> list[Path]:
    """Figs 5-6: one column per artifact kind of ``survey`` (:func:`select_artifacts`,
    or ``--galaxy``); rows DECaLS, Pix2WGAN pseudo-HSC, HSC. ``lines``: printed after
    the per-panel report, before the closing line."""
    root = ensure_data(args)
    chosen = chosen_or_given(
        args, test_manifest(root), lambda d: select_artifacts(d, survey, kinds, root))
    if not chosen:
        raise ValueError(f"{root}: no test galaxy has a {SURVEY_LABEL[survey]} artifact "
                         f"flag ({', '.join(kinds)}); pass --galaxy")
    fn, note = get_model(args, root, "pix2wgan")
    name = f"figure{number}_custom" if args.galaxy else f"figure{number}"
    paths, rows = comparison_figure(
        root, chosen, "decals", fn, "pseudo-HSC (Pix2WGAN)",
        f"Fig. {number} (Luo et al.): {SURVEY_LABEL[survey]} artifacts vs pseudo-HSC "
        f"from DECaLS", args.results, name)
    paths.append(write_selection(args.results, name, rows))
    report(paper, rows, paths, [note], lines)
    return paths


def wrote(paths) -> None:
    """The closing line of a run: every file it wrote, with its folder."""
    print("wrote " + ", ".join(str(p) for p in paths))


def report(paper: str, rows: list[dict], paths, notes=(), lines=()) -> None:
    """Print the paper's description next to what we drew (per-panel metrics), then
    ``lines``, then the closing :func:`wrote` line of ``paths``."""
    print(f"paper: {paper}")
    for n in notes:
        print(f"model: {n}")
    for r in rows:
        extra = ""
        if "rmse_pseudo" in r:
            extra = (f"  RMSE {r['input']}-HSC {r['rmse_input']:.1f} -> pseudo-HSC "
                     f"{r['rmse_pseudo']:.1f}; SSIM {r['ssim_input']:.2f} -> "
                     f"{r['ssim_pseudo']:.2f}")
        print(f"ours: {r.get('figure', '')} col {r['column']}: {r['id']} ({r['reason']})"
              f"{extra}")
    for line in lines:
        print(line)
    wrote(paths)


def cli(run, build_parser, argv=None) -> int:
    """Parse ``argv``, run, and turn user errors into one line (exit code 2). A script
    with ``--verbose`` (one that uses TensorFlow) imports it quietly first."""
    from common.cli import quiet_tensorflow
    from common.errors import run_cli
    args = build_parser().parse_args(argv)
    if hasattr(args, "verbose"):
        quiet_tensorflow(args.verbose)
    return run_cli(lambda: run(args))
