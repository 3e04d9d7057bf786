"""The bottom layer, shared by every model family: the training harness, callbacks, CLI
helpers, errors, I/O, Luo eq. 8 and the metrics. It imports no other package of the
project (docs/layout.md)."""
import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) hides our own
# output; keep errors only, unless the user asked for a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
