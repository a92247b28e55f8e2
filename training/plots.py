"""Evaluation plots as PNG: ROC, precision-recall, calibration, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

# Training hosts have no display; Agg renders straight to files.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve


def write_plots(
    out_dir: Path,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    threshold: float,
    chosen: str,
    reliability: list[dict[str, Any]],
) -> list[str]:
    """Curves for every scored model (baseline and candidate), the confusion matrix for the chosen one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    written.append(_save(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    for name, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(y.mean()), linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="upper right")
    written.append(_save(fig, out_dir / "precision_recall.png"))

    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.plot(
        [b["mean_probability"] for b in reliability],
        [b["observed_rate"] for b in reliability],
        marker="o",
        label=chosen,
    )
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (test)")
    ax.legend(loc="upper left")
    written.append(_save(fig, out_dir / "calibration.png"))

    predicted = scores[chosen] >= threshold
    matrix = np.array(
        [
            [np.sum(~predicted & (y == 0)), np.sum(predicted & (y == 0))],
            [np.sum(~predicted & (y == 1)), np.sum(predicted & (y == 1))],
        ]
    )
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion at {threshold:.3f} ({chosen})",
    )
    written.append(_save(fig, out_dir / "confusion_matrix.png"))
    return written


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name
