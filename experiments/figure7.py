"""Luo et al. Fig. 7: the Cascade Pix2WGAN architecture, drawn from the model itself.

    python experiments/figure7.py                 # the cpu preset's cascade (Table 1's)
    python experiments/figure7.py --preset paper  # the paper's widths (width 64)

Builds :class:`cascade.model.CascadePix2WGAN` from the configuration of Table 1's
cascade run (``runs/table1-<preset>-cascade/config.json``; the preset's settings when
that run does not exist: nothing is trained), walks the Keras graphs of G1, G2, D1 and
D2 and draws (top) the data flow of §4.3, with the four networks' parameter counts,
and (bottom) every block of the U-Net generator and of the PatchGAN critic, with the
output shape each layer really produces on a 128x128 input and the skip connections
found in the graph (``Concatenate`` layers and their inbound layers).

Writes ``results/figure7.{png,pdf}`` and ``results/figure7_layers.csv`` (one row per
layer of G1 and D1). If ``pydot`` and graphviz are installed, also
``results/figure7_g1_graph.png`` via ``keras.utils.plot_model``; otherwise it says so
and goes on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from common.cli import Parser, positive_int
from experiments import luo_common as lc
from experiments import luo_models
from experiments.presets import LUO_PRESETS

PAPER = ("Fig. 7: SDSS -> G1 -> pseudo-DECaLS -> G2 -> pseudo-HSC; D1 judges (SDSS, "
         "DECaLS) vs (SDSS, pseudo-DECaLS), D2 judges (pseudo-DECaLS, HSC) vs "
         "(pseudo-DECaLS, pseudo-HSC); G1, G2, D1, D2 share §4.2's structure (U-Net "
         "generator with six encoder/decoder modules, PatchGAN critic).")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure7.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    p.add_argument("--size", type=positive_int, default=128,
                   help="input side for the shapes")
    return p


def cascade_config(args, root: Path):
    """The cascade's config: the run's config.json if the run exists, else the
    preset's (``luo_models.train_config``). Returns ``(cfg, where)``."""
    from cascade.config import CascadeConfig
    from common.training import load_config
    run = luo_models.run_dir(args.run, args.preset, "cascade")
    if (run / "config.json").is_file():
        return load_config(CascadeConfig, run), f"{run}/config.json"
    cfg = luo_models.train_config(LUO_PRESETS[args.preset], root, "cascade",
                                  overrides=luo_models.flag_overrides(args))
    return cfg, f"preset {args.preset} (no run in {run})"


def layer_table(model, inputs, net: str) -> pd.DataFrame:
    """One row per layer of a functional ``model``: name, class, output shape on
    ``inputs`` (a list of arrays), parameters, and the layers feeding it."""
    import keras
    layers = [lay for lay in model.layers if not isinstance(lay, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [lay.output for lay in layers])
    import warnings
    with warnings.catch_warnings():  # keras' input-structure notice on a 1-input model
        warnings.simplefilter("ignore", UserWarning)
        outs = probe(inputs if len(inputs) > 1 else inputs[0], training=False)
    rows = []
    for lay, out in zip(layers, outs):
        inbound = []
        for node in getattr(lay, "_inbound_nodes", []):
            for t in node.input_tensors:
                hist = getattr(t, "_keras_history", None)
                if hist is not None:
                    inbound.append(hist[0].name)
        rows.append(dict(net=net, layer=lay.name, kind=type(lay).__name__,
                         shape="x".join(str(d) for d in out.shape[1:]),
                         filters=int(out.shape[-1]), side=int(out.shape[1]),
                         params=int(lay.count_params()), inbound=";".join(inbound)))
    return pd.DataFrame(rows)


def blocks(table: pd.DataFrame) -> list[dict]:
    """Collapse conv/norm/act layers into blocks (``enc3``, ``dec1``, ``c2``, ``head``):
    the block's output = its last layer's; ``skip``: the encoder block a Concatenate
    after it pulls in."""
    out: dict[str, dict] = {}
    for _, r in table.iterrows():
        if r["kind"] in ("Concatenate",) and r["layer"].startswith("skip"):
            src = [s for s in r["inbound"].split(";") if s.startswith("enc")]
            key = [s for s in r["inbound"].split(";") if s.startswith("dec")]
            if src and key:
                out[key[0].split("_")[0]]["skip"] = src[0].split("_")[0]
            continue
        name = r["layer"].split("_")[0]
        b = out.setdefault(name, dict(name=name, kinds=[], params=0, skip=None))
        b["kinds"].append(r["kind"].replace("Conv2DTranspose", "ConvT")
                          .replace("BatchNormalization", "BN")
                          .replace("LayerNormalization", "LN")
                          .replace("ZeroPadding2D", "Pad"))
        b["params"] += int(r["params"])
        b["shape"], b["filters"], b["side"] = r["shape"], r["filters"], r["side"]
    return list(out.values())


def draw(g_blocks, d_blocks, params: dict, cfg, where: str, title: str):
    """The figure: data flow (top), generator and critic blocks (bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = plt.figure(figsize=(13, 9.5))
    ax = fig.add_axes((0.02, 0.52, 0.96, 0.42))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 5)
    ax.axis("off")

    def box(x, y, w, h, text, color, fs=9):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                    boxstyle="round,pad=0.05", fc=color, ec="k"))
        ax.text(x, y, text, ha="center", va="center", fontsize=fs)

    def arrow(a, b, style="-|>", ls="-"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12,
                                     linestyle=ls, color="k"))

    img = "#dfe9f5"
    box(0.9, 3.8, 1.4, 0.7, r"$X_{SDSS}$", img, 11)
    box(3.2, 3.8, 1.6, 0.9, f"G1 (U-Net)\n{params['g1']:,} params", "#f7d9a8")
    box(5.6, 3.8, 1.5, 0.7, r"$\tilde X_{DECaLS}$", img, 11)
    box(8.0, 3.8, 1.6, 0.9, f"G2 (U-Net)\n{params['g2']:,} params", "#f7d9a8")
    box(10.5, 3.8, 1.4, 0.7, r"$\tilde X_{HSC}$", img, 11)
    box(5.6, 2.5, 1.5, 0.6, r"$X_{DECaLS}$", img, 10)
    box(10.5, 2.5, 1.4, 0.6, r"$X_{HSC}$", img, 10)
    box(4.4, 1.0, 2.6, 0.9, f"D1 (PatchGAN critic)\n{params['d1']:,} params", "#c9e7c3")
    box(9.2, 1.0, 2.6, 0.9, f"D2 (PatchGAN critic)\n{params['d2']:,} params", "#c9e7c3")
    for a, b in (((1.6, 3.8), (2.4, 3.8)), ((4.0, 3.8), (4.85, 3.8)),
                 ((6.35, 3.8), (7.2, 3.8)), ((8.8, 3.8), (9.8, 3.8))):
        arrow(a, b)
    # critic inputs: real pairs solid, fake pairs dashed
    arrow((0.9, 3.45), (3.5, 1.45), ls="-")
    arrow((5.6, 2.2), (4.6, 1.45), ls="-")
    arrow((5.6, 3.45), (5.3, 1.45), ls="--")
    arrow((5.9, 3.45), (8.4, 1.45), ls="--")
    arrow((10.5, 2.2), (9.8, 1.45), ls="-")
    arrow((10.5, 3.45), (10.3, 1.45), ls="--")
    ax.text(0.2, -0.05,
            "D1: real (X_SDSS, X_DECaLS) vs fake (X_SDSS, X~_DECaLS);  "
            "D2: real (X~_DECaLS, X_HSC) vs fake (X~_DECaLS, X~_HSC)  "
            "(solid: real, dashed: generated).\nLosses per stage: critic "
            f"W-distance + {cfg.gp_weight:g}·GP, generator adversarial + "
            f"{cfg.l1_weight:g}·L1; {cfg.n_critic} critic updates per generator update; "
            f"stage-2 gradient into G1: {'on' if cfg.stage2_grad else 'off'}",
            fontsize=7.5)
    ax.text(12.9, 4.8, f"config: {where}\nwidth {cfg.width}, depth {cfg.depth}, "
            f"bridge {cfg.bridge}", ha="right", va="top", fontsize=7.5)

    def stack(axb, blist, label):
        axb.axis("off")
        n = len(blist)
        axb.set_xlim(-0.5, n - 0.5)
        axb.set_ylim(-1.8, 8.5)
        maxf = max(b["filters"] for b in blist)
        xs = {}
        for i, b in enumerate(blist):
            h = 0.8 + 6.0 * np.log2(max(b["side"], 1)) / 8.0
            w = 0.2 + 0.6 * b["filters"] / maxf
            color = ("#f7d9a8" if b["name"].startswith("enc") else
                     "#f3b58a" if b["name"].startswith("dec") else
                     "#c9e7c3" if b["name"].startswith(("c", "pad", "scores", "pair"))
                     else "#dddddd")
            axb.add_patch(FancyBboxPatch((i - w / 2, 0), w, h, boxstyle="square,pad=0",
                                         fc=color, ec="k", lw=0.6))
            axb.text(i, h + 0.15, f"{b['name']}\n{b['shape']}", ha="center",
                     va="bottom", fontsize=6, rotation=90)
            axb.text(i, -0.2, "-".join(dict.fromkeys(b["kinds"])), ha="center",
                     va="top", fontsize=5.5, rotation=90)
            xs[b["name"]] = (i, h)
        for b in blist:
            if b.get("skip") and b["skip"] in xs:
                (x0, _), (x1, _) = xs[b["skip"]], xs[b["name"]]
                axb.annotate("", xy=(x1, 7.9), xytext=(x0, 7.9),
                             arrowprops=dict(arrowstyle="-|>", color="tab:blue",
                                             connectionstyle="arc3,rad=0.25", lw=0.7))
        axb.set_title(label, fontsize=9)

    stack(fig.add_axes((0.03, 0.04, 0.62, 0.42)), g_blocks,
          "Generator G1 = G2 structure (bar height ~ log2 side, width ~ filters; "
          "blue arcs: skip connections)")
    stack(fig.add_axes((0.68, 0.04, 0.30, 0.42)), d_blocks,
          "Critic D1 = D2 structure (input: condition ⊕ image)")
    fig.suptitle(title, fontsize=10)
    return fig


def run(args) -> list[Path]:
    import keras

    from cascade.model import CascadePix2WGAN
    root = lc.ensure_data(args)
    cfg, where = cascade_config(args, root)
    model = CascadePix2WGAN.from_config_dataclass(cfg)
    nets = dict(g1=model.stage1.generator, d1=model.stage1.critic,
                g2=model.stage2.generator, d2=model.stage2.critic)
    params = {k: int(v.count_params()) for k, v in nets.items()}
    x = np.zeros((1, args.size, args.size, 3), np.float32)
    g_tab = layer_table(nets["g1"], [x], "G1")
    d_tab = layer_table(nets["d1"], [x, x], "D1")
    fig = draw(blocks(g_tab), blocks(d_tab), params, cfg, where,
               "Fig. 7 (Luo et al.): Cascade Pix2WGAN, drawn from the Keras model "
               f"({args.size}x{args.size} input)")
    name = "figure7"
    paths = lc.save_figure(fig, args.results, name)
    from common.io import atomic_write_text
    csv = Path(args.results) / f"{name}_layers.csv"
    atomic_write_text(csv, pd.concat([g_tab, d_tab]).to_csv(index=False))
    paths.append(csv)
    try:  # optional: keras' own graph drawing needs pydot + graphviz
        graph = Path(args.results) / f"{name}_g1_graph.png"
        keras.utils.plot_model(nets["g1"], to_file=str(graph), show_shapes=True)
        paths.append(graph)
    except (ImportError, OSError, AttributeError) as err:
        print(f"note: keras.utils.plot_model unavailable ({type(err).__name__}: "
              f"{str(err).splitlines()[0][:100]}); the matplotlib drawing stands alone")
    print(f"paper: {PAPER}")
    enc = g_tab[g_tab.layer.str.match(r"enc\d+_conv")]
    print(f"ours: G1/G2: {len(enc)} encoder blocks, sides "
          f"{', '.join(map(str, enc.side))}, filters {', '.join(map(str, enc.filters))}; "
          f"{sum(g_tab.kind == 'Concatenate')} skip connections; critic output "
          f"{d_tab.iloc[-1]['shape']}; params G1 {params['g1']:,}, D1 {params['d1']:,}, "
          f"G2 {params['g2']:,}, D2 {params['d2']:,} (config: {where})")
    lc.wrote(paths)
    return paths


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
