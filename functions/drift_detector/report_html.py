"""The drift report as one self-contained HTML page: verdict, a PSI bar per feature against its threshold, details.

Plain strings and inline SVG, so the detector needs no plotting library in its Lambda.
"""

from __future__ import annotations

from html import escape
from typing import Any

_BAR_HEIGHT = 18
_CHART_WIDTH = 520
_LABEL_WIDTH = 190


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _psi_chart(features: list[dict[str, Any]], threshold: float) -> str:
    if not features:
        return ""
    top = max([threshold * 1.5, *(f["psi"] for f in features)])
    scale = (_CHART_WIDTH - _LABEL_WIDTH - 60) / top
    height = _BAR_HEIGHT * len(features) + 30
    x_threshold = _LABEL_WIDTH + threshold * scale
    parts = [f'<svg width="{_CHART_WIDTH}" height="{height}" role="img" aria-label="PSI per feature">']
    for i, f in enumerate(features):
        y = 10 + i * _BAR_HEIGHT
        width = max(f["psi"] * scale, 1.0)
        colour = "#c0392b" if f["drifted"] else "#2e86c1"
        parts.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end" font-size="12">{escape(f["name"])}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{_BAR_HEIGHT - 4}" fill="{colour}"/>'
            f'<text x="{_LABEL_WIDTH + width + 4:.1f}" y="{y + 12}" font-size="11">{f["psi"]:.3f}</text>'
        )
    parts.append(
        f'<line x1="{x_threshold:.1f}" x2="{x_threshold:.1f}" y1="4" y2="{height - 16}" stroke="#333" '
        f'stroke-dasharray="4 3"/><text x="{x_threshold:.1f}" y="{height - 4}" font-size="11" '
        f'text-anchor="middle">PSI threshold {threshold:g}</text></svg>'
    )
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    features: list[dict[str, Any]] = report.get("features") or []
    thresholds = report.get("thresholds") or {}
    title = (
        f"Drift report: {report.get('endpoint', '')} {report.get('window_start', '')} to {report.get('window_end', '')}"
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(f.get(key))}</td>"
            for key in (
                "name",
                "kind",
                "count",
                "importance",
                "severity",
                "psi",
                "ks",
                "wasserstein_norm",
                "out_of_range_rate",
                "js",
                "missing_rate_delta",
                "new_category_rate",
            )
        )
        + f"<td>{escape(', '.join(f['reasons'])) or '-'}</td></tr>"
        for f in features
    )
    prediction = report.get("prediction") or {}
    summary = (
        f"<p><b>Verdict:</b> {escape(str(report.get('verdict')))}; samples {report.get('sample_count')} "
        f"(minimum {thresholds.get('min_samples')}); model version {escape(str(report.get('model_version', '-')))}; "
        f"drifted features {escape(', '.join(report.get('drifted_features') or [])) or 'none'} "
        f"(share {_fmt(report.get('drifted_share'), 3)}); worst feature "
        f"{escape(str(report.get('max_severity_feature', '-')))} at severity {_fmt(report.get('max_severity'), 2)} "
        f"(1 = drifted); importance-weighted drift {_fmt(report.get('weighted_severity'), 3)}; prediction PSI "
        f"{_fmt(prediction.get('psi'))}, W1 / sd {_fmt(prediction.get('wasserstein_norm'))}, severity "
        f"{_fmt(prediction.get('severity'), 2)}.</p>"
    )
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "feature",
            "kind",
            "rows",
            "importance",
            "severity",
            "PSI",
            "KS",
            "W1 / sd",
            "out of range",
            "JS",
            "missing delta",
            "new categories",
            "flags",
        )
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;"
        "text-align:right}}table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}</style></head>"
        f"<body><h1>{escape(title)}</h1>{summary}{_psi_chart(features, float(thresholds.get('psi', 0.2)))}"
        f"<table><tr>{header}</tr>{rows}</table></body></html>"
    )
