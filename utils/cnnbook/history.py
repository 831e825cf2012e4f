"""``History``: the per-epoch record of a training run (losses, accuracies, learning rate,
seconds), with a plot of its curves and a plain-dict form for checkpoints and JSON.

``cnnbook.train.fit``, ``cnnbook.attacks.adversarial_training`` and
``cnnbook.fast_train`` return one; ``cnnbook.checkpoints`` stores it next to the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from cnnbook._checks import check_choice


@dataclass
class History:
    """Per-epoch record of a ``fit``: one entry per epoch in each list.

    ``val_loss``/``val_acc`` stay empty when there is no validation data; ``lr`` is the
    learning rate at the start of the epoch, ``seconds`` the epoch's wall time.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists of floats: safe for ``torch.load(weights_only=True)`` and JSON."""
        return {key: [float(v) for v in values] for key, values in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Inverse of ``to_dict``; unknown keys are an error."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict of lists, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"data has unknown History fields {sorted(unknown)}")
        return cls(**{key: [float(v) for v in values] for key, values in data.items()})

    def best(self, metric: str | None = None) -> dict[str, float]:
        """The epoch with the best ``metric`` (max for accuracies, min for losses).

        Default metric: ``val_acc`` if there is validation data, else ``train_acc``.
        Returns ``{"epoch": 1-based epoch, <every metric>: value at that epoch}``.
        """
        if len(self) == 0:
            raise ValueError("the history is empty: nothing was trained")
        metric = metric or ("val_acc" if self.val_acc else "train_acc")
        names = tuple(self.__dataclass_fields__)
        check_choice("metric", metric, names)
        values = np.asarray(getattr(self, metric), dtype=float)
        if values.size == 0:
            raise ValueError(f"metric {metric!r} has no values (no validation data?)")
        pick = np.nanargmin if metric.endswith("loss") else np.nanargmax
        i = int(pick(values))
        row = {name: getattr(self, name)[i] for name in names if getattr(self, name)}
        return {"epoch": i + 1, **row}

    def plot(self, ax: Sequence | None = None) -> Sequence:
        """Loss (left) and accuracy (right) per epoch, train and validation.

        ax: two matplotlib Axes, or None for a new figure as wide as the text column (6.8 in).
        Returns the Axes.
        """
        if ax is None:
            import matplotlib.pyplot as plt  # here: importing pyplot picks a backend

            _, ax = plt.subplots(1, 2, figsize=(6.8, 3.2), layout="constrained")  # column width
        if len(ax) != 2:
            raise ValueError(f"ax must be two Axes (loss, accuracy), got {len(ax)}")
        epochs = np.arange(1, len(self) + 1)
        panels = (("loss", "Loss", "cross-entropy"), ("acc", "Accuracy", "accuracy"))
        for axis, (key, title, ylabel) in zip(ax, panels, strict=True):
            axis.clear()
            axis.plot(epochs, getattr(self, f"train_{key}"), "o-", label="train")
            val = getattr(self, f"val_{key}")
            if val:
                axis.plot(epochs[: len(val)], val, "s--", label="validation")
            axis.set(title=title, xlabel="epoch", ylabel=ylabel)
            if len(self):
                axis.legend()
            axis.grid(alpha=0.3)
        return ax
