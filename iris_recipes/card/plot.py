"""The training and validation loss curve of a run, as a PNG for the model card."""

from __future__ import annotations

import math
from pathlib import Path

from iris_recipes import fsutil


def loss_series(metrics: list[dict]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(train, validation) as (step, loss) points, in step order; non-finite values are dropped."""

    def points(key: str) -> list[tuple[float, float]]:
        pts = {}
        for row in metrics:
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                pts[float(row["step"])] = float(value)  # a resumed run logs some steps twice: keep the last
        return sorted(pts.items())

    return points("loss"), points("eval_loss")


def plot_loss(metrics: list[dict], dest: str | Path, title: str = "") -> Path | None:
    """Write the loss curve to `dest` (atomically); None when no loss was logged."""
    train, val = loss_series(metrics)
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    try:
        if train:
            ax.plot(
                *zip(*train),
                label="training loss",
                color="#1f77b4",
                linewidth=1.4,
                marker="o" if len(train) < 20 else None,
                markersize=3,
            )
        if val:
            ax.plot(*zip(*val), label="validation loss", color="#d62728", linewidth=1.8, marker="o", markersize=4)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (cross-entropy, assistant tokens)")
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with fsutil.atomic_path(dest) as tmp:
            fig.savefig(tmp, format="png")  # the temp name has no .png suffix: name the format
    finally:
        plt.close(fig)
    return Path(dest)
