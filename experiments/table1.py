"""Luo et al. Table 1: similarity of pseudo-HSC and raw images to the real HSC images.

    python experiments/table1.py                   # embedded default: simulated, CPU preset
    python experiments/table1.py --preset paper    # the paper's settings (a GPU job)
    python experiments/table1.py --data DIR        # any dataset folder (e.g. real downloads)
    python experiments/table1.py --skip-train      # score the finished runs, train nothing
    python experiments/table1.py --model RUN --cascade-model RUN2   # score given models

Trains (resuming an unfinished run, reusing a finished one) four models on the same
data: Pix2WGAN DECaLS->HSC (Pseudo-HSC¹), Cascade Pix2WGAN SDSS->DECaLS->HSC
(Pseudo-HSC², §4.3), and two comparisons beyond the paper, classic pix2pix (BCE)
DECaLS->HSC and Pix2WGAN SDSS->HSC without the cascade. Then scores the test split:
RMSE, PSNR and SSIM per image on [0, 255], averaged, and LPIPS and FID when their weights
are found (common.perceptual; otherwise "unavailable (no weights)", never numbers).
Writes ``results/table1.csv``, ``.md`` and ``.tex``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.io import atomic_write_text  # noqa: E402
from common.paper import HIGHER_IS_BETTER, TABLE1, TABLE1_METRICS  # noqa: E402
from data.layout import REPO_ROOT, data_root, default_sim_dir, read_manifest  # noqa: E402
from pix2wgan.config import Pix2WGANConfig  # noqa: E402

NOT_YET = "not yet computed"
NO_MODEL = "no model"

#: ``cpu``: a reduced run that finishes in <= 15 min on 2 CPU cores, simulation included.
#: It keeps the paper's losses, networks (narrower) and critic ratio, but has ~500
#: generator updates instead of ~78,000, so it starts at 5x the paper's learning rate and
#: anneals it by 1.05 per epoch (to ~1.4e-4 by the last epoch) to end on a stable model.
#: ``extra``: further changes for the cascade and the two comparison models, whose
#: trainings must fit in what is left of the 15 minutes (the cascade costs ~2x a
#: Pix2WGAN step): 9 epochs with a steeper decay (1.26 per epoch) reaching about the
#: same final rate (~1.5e-4). The cascade and the direct SDSS->HSC model get the same
#: budget, so their comparison is fair; the cascade vs Pseudo-HSC¹ (40 epochs) is not.
#: ``paper``: Luo et al. §2.4 / §4.2 (15,000 + 2,000 galaxies, width 64, 500 epochs);
#: §4.3: the cascade "share[s] the same structures and parameter settings".
PRESETS = {
    # ``sim``: SimConfig fields of the preset's simulated set ({} = the embedded default,
    # datasets/sim-default); ``folder``: its name under the data root.
    "cpu": dict(folder=None, sim=dict(),
                train=dict(width=8, epochs=40, batch_size=8, lr=1e-3, lr_decay=1.05),
                extra=dict(epochs=9, lr_decay=1.26)),
    "paper": dict(folder="sim-paper", sim=dict(n_train=15000, n_test=2000), train=dict(),
                  extra=dict()),
}

#: The trained models: key -> (what, run-folder suffix). Pix2WGAN keeps the plain folder.
MODELS = {
    "pix2wgan": ("Pix2WGAN DECaLS->HSC (Pseudo-HSC¹)", ""),
    "cascade": ("Cascade Pix2WGAN SDSS->DECaLS->HSC (Pseudo-HSC²)", "-cascade"),
    "pix2pix": ("classic pix2pix (BCE) DECaLS->HSC", "-pix2pix"),
    "direct": ("Pix2WGAN SDSS->HSC without the cascade", "-direct"),
}

#: Table rows: name -> (input survey, model key or a baseline, paper row?).
#: "bicubic": the input resampled to its survey's native pixel grid (area average:
#: 128 px at 0.168"/px -> 54 px SDSS at 0.396", 82 px DECaLS at 0.262") and back to
#: 128 px with bicubic interpolation, i.e. the classic bicubic-upsampling baseline of
#: a native-resolution image. The raw-input rows (SDSS–HSC, DECaLS–HSC) are the identity
#: baseline: the viewer's cutouts are already resampled onto HSC's 0.168" grid.
ROWS = {
    "SDSS–HSC": ("sdss", None),
    "Pseudo-HSC²–HSC": ("sdss", "cascade"),
    "DECaLS–HSC": ("decals", None),
    "Pseudo-HSC¹–HSC": ("decals", "pix2wgan"),
    "Bicubic SDSS–HSC": ("sdss", "bicubic"),
    "Bicubic DECaLS–HSC": ("decals", "bicubic"),
    "pix2pix (BCE) DECaLS→HSC": ("decals", "pix2pix"),
    "Pix2WGAN SDSS→HSC (direct)": ("sdss", "direct"),
}


def describe_preset(name: str) -> str:
    """One line: the preset's departures from the paper's training settings."""
    def fmt(d):
        return ", ".join(f"{k} {v:g}" for k, v in d.items()) or "none"
    pre = PRESETS[name]
    return (f"preset {name}: changes from the paper's training settings: "
            f"{fmt(pre['train'])}; for the cascade, pix2pix and direct models also "
            f"{fmt(pre['extra'])}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python experiments/table1.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="cpu")
    p.add_argument("--data", help="dataset folder (default: the preset's simulated set, "
                                  "generated on first use)")
    p.add_argument("--model", help="Pseudo-HSC¹: score this Pix2WGAN generator (.keras "
                                   "or run folder) instead of training one")
    p.add_argument("--cascade-model", help="Pseudo-HSC²: score this cascade run folder "
                                           "(g1.keras, g2.keras) instead of training one")
    p.add_argument("--skip-train", action="store_true",
                   help="train nothing: score the finished runs under --run (rows "
                        "without one say 'no model')")
    p.add_argument("--run", help="run folder of Pix2WGAN (default runs/table1-PRESET); "
                                 "the others go to RUN-cascade, RUN-pix2pix, RUN-direct")
    p.add_argument("--results", default=str(REPO_ROOT / "results"))
    p.add_argument("--epochs", type=int, help="override the preset's epochs (Pix2WGAN)")
    p.add_argument("--extra-epochs", type=int,
                   help="override the epochs of the cascade, pix2pix and direct models")
    p.add_argument("--width", type=int, help="override the preset's generator width")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--lpips-weights", help="LPIPS .npz (else $LPIPS_WEIGHTS, KERAS_HOME)")
    p.add_argument("--fid-weights", help="InceptionV3 notop .h5 (else $FID_WEIGHTS, "
                                         "KERAS_HOME)")
    p.add_argument("--allow-uncalibrated", action="store_true",
                   help="random-init LPIPS/FID networks when no weights are found "
                        "(labelled 'uncalibrated' in every output)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def ensure_data(args, preset: dict) -> Path:
    """The dataset root: ``--data``, or the preset's simulated set (made if missing)."""
    if args.data:
        return Path(args.data)
    from data.simulate import SimConfig, ensure_simulated
    root = default_sim_dir() if preset["folder"] is None else data_root() / preset["folder"]
    return ensure_simulated(SimConfig(out=root, progress=not args.quiet, **preset["sim"]))


def train_config(args, preset: dict, root: Path, key: str = "pix2wgan"):
    """The config of model ``key`` (see :data:`MODELS`) under the preset and flags."""
    overrides = {k: v for k, v in (("width", args.width),
                                   ("batch_size", args.batch_size)) if v is not None}
    settings = dict(preset["train"])
    if key == "pix2wgan":
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        return Pix2WGANConfig(data=str(root), source="decals", target="hsc",
                              **{**settings, **overrides}).validate()
    settings.update(preset["extra"])
    if args.extra_epochs is not None:
        overrides["epochs"] = args.extra_epochs
    settings.update(overrides)
    if key == "cascade":
        from cascade.config import CascadeConfig
        return CascadeConfig(data=str(root), **settings).validate()
    source, loss = {"pix2pix": ("decals", "bce"), "direct": ("sdss", "wgan-gp")}[key]
    return Pix2WGANConfig(data=str(root), source=source, target="hsc", loss=loss,
                          **settings).validate()


def bicubic_fn(survey: str):
    """``[B, S, S, 3]`` in [-1, 1] -> the input area-resampled to ``survey``'s native
    pixel scale and bicubic-upsampled back to S (see :data:`ROWS`)."""
    import tensorflow as tf
    from data.surveys import HSC, get_survey

    def fn(x):
        size = x.shape[1]
        native = max(1, round(size * HSC.pixel_scale / get_survey(survey).pixel_scale))
        small = tf.image.resize(x, (native, native), method="area")
        return tf.clip_by_value(tf.image.resize(small, (size, size), method="bicubic"),
                                -1.0, 1.0)
    return fn


def get_models(args, preset: dict, root: Path, progress: bool):
    """``{key: (predict_fn or None, note)}`` for every model in :data:`MODELS`."""
    from cascade.trainer import G1_FILE, load_cascade
    from cascade.trainer import train as train_cascade
    from common.training import describe_config
    from pix2wgan.trainer import GENERATOR_FILE, load_generator, train

    base = Path(args.run or REPO_ROOT / "runs" / f"table1-{args.preset}")
    given = {"pix2wgan": args.model, "cascade": args.cascade_model}
    out = {}
    for key, (what, suffix) in MODELS.items():
        run_dir = Path(given.get(key) or f"{base}{suffix}")
        t0 = time.time()
        if given.get(key) or args.skip_train:
            done = (run_dir / (G1_FILE if key == "cascade" else GENERATOR_FILE)).is_file() \
                or (key != "cascade" and run_dir.is_file())
            if not done and not given.get(key):
                out[key] = (None, f"{what}: {NO_MODEL} in {run_dir} (--skip-train)")
                continue
            nets = load_cascade(run_dir) if key == "cascade" else (load_generator(run_dir),)
            note = f"{what}: given/finished model {run_dir}"
        else:
            cfg = train_config(args, preset, root, key)
            has_run = (run_dir / "checkpoints" / "checkpoint").is_file()
            print(f"\n=== {what}: run {run_dir} "
                  f"({'resuming/reusing' if has_run else 'new'}) ===")
            fit = train_cascade if key == "cascade" else train
            model = fit(cfg, run_dir, resume=has_run, verbose="auto" if progress else 0)
            nets = ((model.stage1.generator, model.stage2.generator) if key == "cascade"
                    else (model.generator,))
            note = (f"{what}: trained here, run {run_dir} ({time.time() - t0:.0f} s this "
                    f"session)\n" + describe_config(cfg))
        out[key] = (_chain(nets), note)
    return out


def _chain(nets):
    def fn(x):
        for net in nets:
            x = net(x, training=False)
        return x
    return fn


def _value(entry: dict | None, m: str):
    """Our number for metric ``m`` of a row, or a string saying why there is none."""
    if entry is None:
        return NO_MODEL
    got = entry.get(m)
    if isinstance(got, dict) and "unavailable" in got:
        return got["unavailable"]
    if isinstance(got, dict) and "mean" in got:
        return got["mean"]
    if isinstance(got, dict) and "value" in got:
        return got["value"]
    return NOT_YET


def table(scores: dict) -> pd.DataFrame:
    """One row per :data:`ROWS` entry: ours, the paper's and ours − paper per metric
    (paper columns empty for the extra rows)."""
    rows = []
    for pair in ROWS:
        ours, paper = scores.get(pair), TABLE1.get(pair)
        row = {"pair": pair, "paper_row": paper is not None,
               "n": ours["rmse"]["n"] if ours else None}
        for m in TABLE1_METRICS:
            value = _value(ours, m)
            row[m] = value
            row[f"{m}_paper"] = paper[m] if paper else None
            row[f"{m}_diff"] = (value - paper[m] if paper and isinstance(value, float)
                                else None)
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown(df: pd.DataFrame, header: list[str]) -> str:
    cols = ["pair", "N"] + [m.upper() for m in TABLE1_METRICS]
    lines = header + ["", "Each paper-row cell: ours / paper (ours − paper); rows below "
                          "the line are extra comparisons, not in the paper.", "",
                      "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        if not r["paper_row"] and df["paper_row"].iloc[r.name - 1]:
            lines.append("| *extra rows* |" + " |" * (len(cols) - 1))
        cells = [r["pair"], "" if pd.isna(r["n"]) else str(int(r["n"]))]
        for m in TABLE1_METRICS:
            text = _fmt(r[m])
            if r["paper_row"]:
                text += f" / {r[f'{m}_paper']:g}"
                if r[f"{m}_diff"] is not None and not pd.isna(r[f"{m}_diff"]):
                    text += f" ({r[f'{m}_diff']:+.2f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("¹", "$^1$"), ("²", "$^2$"), ("–", "--"), ("→", r"$\to$"),
                 ("−", "$-$"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&")):
        text = text.replace(a, b)
    return text


def latex(df: pd.DataFrame, caption: str) -> str:
    """A ``tabular`` (booktabs) of the table: ours (paper) in paper rows."""
    heads = ["RMSE", "PSNR", "SSIM", "LPIPS", "FID"]
    lines = [r"\begin{table}", r"\centering", rf"\caption{{{_tex(caption)}}}",
             r"\label{tab:table1}", r"\begin{tabular}{lr" + "c" * len(heads) + "}",
             r"\toprule", "Pair & N & " + " & ".join(heads) + r" \\", r"\midrule"]
    for i, r in df.iterrows():
        if i and not r["paper_row"] and df["paper_row"].iloc[i - 1]:
            lines.append(r"\midrule")
        cells = [_tex(r["pair"]), "" if pd.isna(r["n"]) else str(int(r["n"]))]
        for m in TABLE1_METRICS:
            text = _tex(_fmt(r[m]))
            if r["paper_row"]:
                text += f" ({r[f'{m}_paper']:g})"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def compare(scores: dict, better: str, worse: str, claim: str) -> str:
    """One line: does row ``better`` beat row ``worse`` on RMSE, PSNR and SSIM?"""
    if better not in scores or worse not in scores:
        return f"{claim}: not checked (a row has no model)"
    a, b = scores[better], scores[worse]
    wins = [m for m in ("rmse", "psnr", "ssim")
            if (a[m]["mean"] > b[m]["mean"]) == HIGHER_IS_BETTER[m]
            and a[m]["mean"] != b[m]["mean"]]
    if len(wins) == 3:
        return f"{claim}: holds ({better} beats {worse} on RMSE, PSNR and SSIM)"
    lost = [m.upper() for m in ("rmse", "psnr", "ssim") if m not in wins]
    return f"{claim}: does NOT hold on {', '.join(lost)} ({better} vs {worse})"


def verdicts(scores: dict) -> list[str]:
    return [
        compare(scores, "Pseudo-HSC¹–HSC", "DECaLS–HSC", "paper: Pseudo-HSC¹ beats DECaLS"),
        compare(scores, "Pseudo-HSC²–HSC", "SDSS–HSC", "paper: Pseudo-HSC² beats SDSS"),
        compare(scores, "Pseudo-HSC¹–HSC", "Pseudo-HSC²–HSC",
                "paper: the cascade row sits below Pseudo-HSC¹"),
        compare(scores, "Pseudo-HSC²–HSC", "Pix2WGAN SDSS→HSC (direct)",
                "paper (§4.3): the cascade beats direct SDSS->HSC"),
        compare(scores, "Pseudo-HSC¹–HSC", "pix2pix (BCE) DECaLS→HSC",
                "extra: Pix2WGAN beats classic pix2pix"),
    ]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from common.errors import run_cli
    return run_cli(lambda: run(args))


def perceptual_networks(args):
    """A :class:`common.perceptual.PerceptualSet` template (networks built once) and
    the lines saying which extractor and weights produce the LPIPS/FID columns."""
    from common.perceptual import PerceptualSet
    ps = PerceptualSet.build(lpips_weights=args.lpips_weights,
                             fid_weights=args.fid_weights,
                             allow_uncalibrated=args.allow_uncalibrated)
    return ps, ps.describe()


def run(args) -> pd.DataFrame:
    from common.evaluate import score_split
    from common.perceptual import PerceptualSet

    preset = PRESETS[args.preset]
    started = time.time()
    root = ensure_data(args, preset)
    t_data = time.time() - started
    simulated = (root / "sim_config.json").is_file()
    n_train = len(read_manifest(root, "train"))
    progress = not args.quiet
    print(describe_preset(args.preset))

    t0 = time.time()
    models = get_models(args, preset, root, progress)
    t_train = time.time() - t0
    template, perceptual_lines = perceptual_networks(args)

    t0 = time.time()
    scores = {}
    for pair, (source, how) in ROWS.items():
        fn = None
        if how == "bicubic":
            fn = bicubic_fn(source)
        elif how is not None:
            fn = models[how][0]
            if fn is None:
                continue
        ps = PerceptualSet(template.lpips, template.fid, template.lpips_reason,
                           template.fid_reason)
        metrics = score_split(root, source, "hsc", predict_fn=fn, progress=progress,
                              desc=pair, perceptual=ps).result()
        scores[pair] = {**metrics, **ps.result()}
    t_score = time.time() - t0

    data_note = ("SIMULATED mock surveys, not real SDSS/DECaLS/HSC: the numbers are not "
                 "expected to equal the paper's" if simulated else "dataset folder as given")
    wall = time.time() - started
    header = [
        "# Luo et al. Table 1, reproduced",
        "",
        f"- data: `{root}` ({data_note}): {n_train} training galaxies, scored on the "
        f"test split",
        "- metrics: per-image RMSE, PSNR (MAX 255) and SSIM (Wang et al., 11x11 Gaussian "
        "σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255) on [0, 255], averaged",
        *(f"- {line}" for line in perceptual_lines),
        *(f"- model: {note.splitlines()[0]}" for _, note in models.values()),
        "- Bicubic rows: input area-resampled to its native pixel grid (SDSS 0.396\"/px, "
        "DECaLS 0.262\"/px) and bicubic-upsampled back; the raw rows are the identity "
        "baseline",
        f"- {describe_preset(args.preset)}",
        *(f"- {v}" for v in verdicts(scores)),
        f"- wall time: {wall:.0f} s (data {t_data:.0f} s, models {t_train:.0f} s, "
        f"scoring {t_score:.0f} s)",
    ]
    df = table(scores)
    md = markdown(df, header)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results / "table1.csv", df.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(results / "table1.md", md)
    atomic_write_text(results / "table1.tex", latex(
        df, "Luo et al. Table 1 reproduced: ours (paper). " + data_note.split(":")[0]))
    print()
    for _, note in models.values():
        print(note)
    print()
    print(md)
    print(f"wrote {results / 'table1.csv'}, {results / 'table1.md'} and "
          f"{results / 'table1.tex'}")
    return df


if __name__ == "__main__":
    sys.exit(main())
