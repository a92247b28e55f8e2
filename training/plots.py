"""Evaluation plots as SVG: ROC, precision-recall, calibration, confusion matrix.

Written as plain SVG text because the SageMaker scikit-learn image has no matplotlib: declaring it in a
requirements.txt would make every training job pip-install it (and its compiled dependencies) before the
script starts, from the network, while four small charts need nothing but numbers placed on a canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve, roc_curve

WIDTH, HEIGHT = 400, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 32, 48
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
MAX_POINTS = 200

Curve = tuple[str, Sequence[float], Sequence[float]]


def write_plots(
    out_dir: Path,
    y: npt.NDArray[Any],
    scores: dict[str, npt.NDArray[Any]],
    *,
    threshold: float,
    chosen: str,
    reliability: list[dict[str, Any]],
) -> list[str]:
    """Curves for every scored model (baseline and candidate), the confusion matrix for the chosen one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    roc = []
    precision_recall = []
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        roc.append((name, fpr.tolist(), tpr.tolist()))
        precision, recall, _ = precision_recall_curve(y, p)
        precision_recall.append((name, recall.tolist(), precision.tolist()))
    prevalence = float(np.mean(y))
    calibration = [
        (
            chosen,
            [float(b["mean_probability"]) for b in reliability],
            [float(b["observed_rate"]) for b in reliability],
        )
    ]
    predicted = scores[chosen] >= threshold
    matrix = [
        [int(np.sum(~predicted & (y == 0))), int(np.sum(predicted & (y == 0)))],
        [int(np.sum(~predicted & (y == 1))), int(np.sum(predicted & (y == 1)))],
    ]
    charts = {
        "roc.svg": line_chart(
            "ROC (test)", "false positive rate", "true positive rate", roc, reference=((0, 0), (1, 1))
        ),
        "precision_recall.svg": line_chart(
            "Precision-recall (test)",
            "recall",
            "precision",
            precision_recall,
            reference=((0, prevalence), (1, prevalence)),
        ),
        "calibration.svg": line_chart(
            "Calibration (test)",
            "mean predicted probability",
            "observed positive rate",
            calibration,
            reference=((0, 0), (1, 1)),
            markers=True,
        ),
        "confusion_matrix.svg": confusion_chart(f"Confusion at {threshold:.3f} ({chosen})", matrix),
    }
    for name, svg in charts.items():
        (out_dir / name).write_text(svg)
    return list(charts)


def _x(value: float) -> float:
    return LEFT + value * (WIDTH - LEFT - RIGHT)


def _y(value: float) -> float:
    return HEIGHT - BOTTOM - value * (HEIGHT - TOP - BOTTOM)


def _thin(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    points = list(zip(xs, ys, strict=True))
    if len(points) <= MAX_POINTS:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, MAX_POINTS).round().astype(int))
    return [points[i] for i in keep]


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11, rotate: bool = False) -> str:
    transform = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{transform}>{escape(text)}</text>'


def _frame(title: str, x_label: str, y_label: str, *, unit_ticks: bool = True) -> list[str]:
    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="none" stroke="#333"/>',
        _text(WIDTH / 2, 20, title, size=13),
        _text(WIDTH / 2, HEIGHT - 12, x_label),
        _text(16, (TOP + HEIGHT - BOTTOM) / 2, y_label, rotate=True),
    ]
    for tick in (0.0, 0.5, 1.0) if unit_ticks else ():
        parts.append(_text(_x(tick), HEIGHT - BOTTOM + 16, f"{tick:g}", size=10))
        parts.append(_text(LEFT - 6, _y(tick) + 4, f"{tick:g}", anchor="end", size=10))
    return parts


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    curves: Sequence[Curve],
    *,
    reference: tuple[tuple[float, float], tuple[float, float]],
    markers: bool = False,
) -> str:
    """Curves on the unit square with a dashed reference line and a legend."""
    parts = _frame(title, x_label, y_label)
    (x0, y0), (x1, y1) = reference
    parts.append(
        f'<line x1="{_x(x0):.1f}" y1="{_y(y0):.1f}" x2="{_x(x1):.1f}" y2="{_y(y1):.1f}" '
        'stroke="grey" stroke-dasharray="4 3" stroke-width="0.8"/>'
    )
    for index, (name, xs, ys) in enumerate(curves):
        colour = COLOURS[index % len(COLOURS)]
        points = _thin(xs, ys)
        path = " ".join(f"{_x(x):.1f},{_y(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if markers:
            parts.extend(f'<circle cx="{_x(x):.1f}" cy="{_y(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in points)
        legend_y = TOP + 14 + 14 * index
        parts.append(
            f'<line x1="{WIDTH - RIGHT - 120}" y1="{legend_y - 4}" x2="{WIDTH - RIGHT - 104}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(_text(WIDTH - RIGHT - 100, legend_y, name, anchor="start", size=10))
    return _svg(parts)


def confusion_chart(title: str, matrix: list[list[int]]) -> str:
    """A 2x2 matrix (rows actual, columns predicted) shaded by count."""
    parts = _frame(title, "predicted", "actual", unit_ticks=False)
    largest = max(max(row) for row in matrix) or 1
    cell_w, cell_h = (WIDTH - LEFT - RIGHT) / 2, (HEIGHT - TOP - BOTTOM) / 2
    for row, counts in enumerate(matrix):
        for col, count in enumerate(counts):
            shade = int(235 - 180 * count / largest)
            x, y = LEFT + col * cell_w, TOP + row * cell_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" height="{cell_h:.1f}" '
                f'fill="rgb({shade},{shade},255)" stroke="#333"/>'
            )
            parts.append(_text(x + cell_w / 2, y + cell_h / 2 + 5, str(count), size=14))
    return _svg(parts + _class_ticks(cell_w, cell_h))


def _class_ticks(cell_w: float, cell_h: float) -> list[str]:
    return [
        _text(LEFT + cell_w / 2, HEIGHT - BOTTOM + 16, "0", size=10),
        _text(LEFT + 1.5 * cell_w, HEIGHT - BOTTOM + 16, "1", size=10),
        _text(LEFT - 6, TOP + cell_h / 2 + 4, "0", anchor="end", size=10),
        _text(LEFT - 6, TOP + 1.5 * cell_h + 4, "1", anchor="end", size=10),
    ]


def _svg(parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">\n'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>\n{body}\n</svg>\n'
    )
