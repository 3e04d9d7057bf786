"""The named choices of the training flags (``--precision``, ``--strategy``,
``--critic-norm``), kept free of TensorFlow so that configs and ``--help`` load fast.
The modules that implement them (:mod:`common.training`, :mod:`pix2wgan.layers`) import
them from here."""

#: ``--precision``: our name -> Keras dtype policy (see ``common.training.set_precision``).
PRECISIONS = {"float32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
#: ``--precision auto``: fp16 on a GPU, bf16 on a CPU with bfloat16 units, else float32
#: (``common.training.resolve_precision``).
AUTO = "auto"
#: ``--strategy`` choices (``common.training.make_strategy``).
STRATEGIES = ("default", "mirrored", "multiworker")
#: Normalisation layers a critic may use (``pix2wgan.layers``).
NORMS = ("batch", "layer", "none")
