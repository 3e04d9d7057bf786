"""What every GAN model class of the project shares: one running-mean tracker per logged
loss term (:class:`TrackedModel`), and the optimizer helpers of a multi-network step.

The trackers are the model's ``metrics``: ``fit`` resets them every epoch, and their names
are the columns of the logs (and of a run's ``history.csv``), in the order given to
:meth:`TrackedModel.track`.
"""
from __future__ import annotations

import keras


class TrackedModel(keras.Model):
    """A ``keras.Model`` whose metrics are ``keras.metrics.Mean`` trackers, one per loss
    term, held in ``self.trackers`` (``{name: tracker}``, in logging order)."""

    def track(self, *names: str) -> None:
        """Create one ``Mean`` tracker per name (replacing any earlier ones)."""
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def record(self, values: dict, names=None) -> dict:
        """Feed ``values[name]`` (a scalar) to the tracker of each of ``names`` (default:
        every tracker); returns ``{name: running mean}`` for those names, in their order."""
        names = list(self.trackers if names is None else names)
        for name in names:
            self.trackers[name].update_state(values[name])
        return {name: self.trackers[name].result() for name in names}


def trainable(*networks) -> list:
    """The trainable variables of ``networks``, concatenated in order."""
    return [v for n in networks for v in n.trainable_variables]


def build_optimizer(optimizer, *networks):
    """``optimizer`` with its slots built for ``networks``' trainable variables; returns it.

    Built at ``compile`` rather than at the first step, so that a checkpoint restores the
    optimizer state (Adam moments, iteration count) before training resumes.
    """
    optimizer.build(trainable(*networks))
    return optimizer
