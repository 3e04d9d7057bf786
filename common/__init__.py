"""Code shared by every model family (layers, losses, metrics, training utilities)."""
import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) hides our own
# output; keep errors only, unless the user asked for a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
