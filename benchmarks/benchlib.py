"""Helpers shared by the benchmarks: machine description, memory, timing, the machine's
dense-matmul peak and conv FLOP counting. Benchmarks measure; they never assert."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Printed instead of a number for every GPU figure when no GPU is visible.
NO_GPU = "not measured: no GPU in this run"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """Names of the visible GPUs (imports TensorFlow)."""
    import tensorflow as tf
    out = []
    for d in tf.config.list_physical_devices("GPU"):
        try:
            out.append(tf.config.experimental.get_device_details(d).get("device_name",
                                                                         d.name))
        except Exception:  # details are best effort
            out.append(d.name)
    return out


def machine_info() -> dict:
    import numpy as np
    import tensorflow as tf
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "load_avg": [round(x, 2) for x in load] if load else None,
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "numpy": np.__version__, "gpus": gpus()}


def print_machine(info: dict | None = None) -> dict:
    info = info or machine_info()
    print(f"machine: {info['platform']}; {info['cpu']}; {info['cpus']} CPUs; load avg "
          f"{info['load_avg']}; GPUs: {', '.join(info['gpus']) or 'none'}")
    print(f"python {info['python']}, tensorflow {info['tensorflow']}, "
          f"numpy {info['numpy']}")
    return info


def status_mb(key: str = "VmHWM") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB (10^6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def emit(result: dict) -> None:
    """The machine-readable line ``benchmarks/run.py`` collects."""
    print("BENCH_JSON " + json.dumps(result))


def closing(name: str, collected: bool = True) -> None:
    """The closing line of a benchmark run: what it wrote (no files: benchmarks print
    their figures, and their scratch data is removed); ``collected``: it printed a
    BENCH_JSON line (:func:`emit`)."""
    print(f"{name}: wrote no files (scratch data removed); the figures are the lines "
          f"above" + (", the BENCH_JSON line for benchmarks/run.py" if collected else ""))


def int_list(text: str, flag: str, at_least: int = 1) -> list[int]:
    """``"1000,20000"`` -> ``[1000, 20000]``; ``ValueError`` naming ``flag`` unless every
    item is an integer >= ``at_least``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < at_least:
        raise ValueError(f"{flag} {text!r}: expected comma-separated integers >= "
                         f"{at_least}")
    return values


def existing_dir(path, flag: str = "--data") -> Path:
    """``path`` as a Path if it is a folder, else ``FileNotFoundError`` naming ``flag``."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{flag} {p}: no such folder")
    return p


def timed(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (``fn`` must block until done)."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def matmul_peak(n: int = 2048, seconds: float = 3.0, dtype: str = "float32",
                device: str | None = None) -> float:
    """Dense-matmul FLOP/s of this machine: ``n x n @ n x n`` (2 n^3 FLOPs) repeated in
    one compiled loop for about ``seconds``; the best of three timings."""
    import tensorflow as tf
    with tf.device(device or ("/GPU:0" if tf.config.list_physical_devices("GPU")
                              else "/CPU:0")):
        a = tf.random.uniform((n, n), dtype=dtype)
        b = tf.random.uniform((n, n), dtype=dtype)

        @tf.function
        def loop(k):
            acc = tf.zeros((n, n), dtype)
            for _ in tf.range(k):
                acc = acc + tf.matmul(a, b)  # the add is n^2, negligible next to 2n^3
            return tf.reduce_sum(acc)

        loop(tf.constant(1)).numpy()
        t = time.perf_counter()
        loop(tf.constant(1)).numpy()
        one = max(time.perf_counter() - t, 1e-4)
        k = max(1, int(seconds / 3 / one))
        best = min(timed(lambda: loop(tf.constant(k)).numpy(), 3))
    return 2.0 * n**3 * k / best


# --- FLOPs -------------------------------------------------------------------------------

def conv_forward_flops(model, input_shapes) -> float:
    """Forward FLOPs (multiply + add = 2) of the convolutions of a functional model, per
    sample, from the layer shapes: Conv2D ``2 Ho Wo Cout kh kw Cin``, Conv2DTranspose
    ``2 Hi Wi Cin kh kw Cout``. Normalisation, activations and additions (all linear in
    the activations, a few % of the total) are left out.

    ``input_shapes``: list of per-sample input shapes, e.g. ``[(128, 128, 3)]``.
    """
    import keras
    import numpy as np
    import tensorflow as tf
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers
                                       if isinstance(layer, (keras.layers.Conv2D,
                                                             keras.layers.Conv2DTranspose))])
    convs = [layer for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    ins = [tf.zeros((1,) + tuple(s)) for s in input_shapes]
    outs = probe(ins if len(ins) > 1 else ins[0])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    total = 0.0
    for layer, out in zip(convs, outs):
        kh, kw, cin, cout = (layer.kernel.shape if not isinstance(
            layer, keras.layers.Conv2DTranspose) else
            (layer.kernel.shape[0], layer.kernel.shape[1], layer.kernel.shape[3],
             layer.kernel.shape[2]))
        ho, wo = out.shape[1], out.shape[2]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            s = layer.strides
            hi, wi = ho // s[0], wo // s[1]
            total += 2.0 * hi * wi * cin * kh * kw * cout
        else:
            total += 2.0 * ho * wo * cout * kh * kw * cin
    return float(np.float64(total))


def train_step_flops(f_g: float, f_d: float, batch: int, n_critic: int = 3,
                     stages: int = 1) -> float:
    """Analytic FLOPs of one training step (one generator update and its ``n_critic``
    critic updates) of Pix2WGAN (``stages`` 1) or the cascade (2), from the forward conv
    FLOPs per image ``f_g``, ``f_d`` (:func:`conv_forward_flops`) and the critic batch
    ``batch``. Per stage: ``n_critic`` critic updates of ``B (F_G + 12 F_D)`` each (G
    forward; D forward + backward on real and fake = 3 + 3; gradient penalty = forward,
    input gradient and their differentiation = 6) and a generator update of
    ``B (2 F_G + 2 F_D)`` (G backward; D forward + input gradient), the last critic
    batch's G forward shared with it: ``B ((n_c + 2) F_G + (12 n_c + 2) F_D)``, i.e.
    ``B (5 F_G + 38 F_D)`` with the paper's ``n_c`` = 3. The cascade adds the bridge
    (stage-1 G forward feeding stage 2) on every critic batch: ``(stages - 1) n_c B F_G``.
    Normalisation, activations and optimizer updates are left out (a few %)."""
    per_stage = batch * ((n_critic + 2) * f_g + (12 * n_critic + 2) * f_d)
    return float(stages * per_stage + (stages - 1) * n_critic * batch * f_g)


def graph_flops(concrete_fn) -> float | None:
    """FLOPs of one call of a ``tf.function`` concrete function, counted by the TF1
    profiler over its graph (ops with registered FLOP statistics: convolutions and their
    backprops, matmuls, most element-wise ops), nested function bodies included;
    ``None`` if the profiler cannot count it."""
    import tensorflow as tf
    try:
        graphs = [concrete_fn.graph] + [f.graph for f in
                                        concrete_fn.graph._functions.values()
                                        if hasattr(f, "graph")]
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        total = 0
        for g in graphs:
            prof = tf.compat.v1.profiler.profile(g, options=opts)
            total += prof.total_float_ops
        return float(total) if total else None
    except Exception:  # the profiler is best effort (TF1 API)
        return None
