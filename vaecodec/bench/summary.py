"""What the per-image records add up to: one averaged curve per codec, and BD-rates against JPEG
(and of each variant, such as ``vaecodec@effort=9``, against its base codec)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from statistics import fmean
from typing import Any

from vaecodec.bench.bdrate import BdRateError, bd_rate
from vaecodec.bench.codecs import base_name
from vaecodec.bench.metrics import ms_ssim_db

REFERENCE = "jpeg"
# BD-rate metrics: the summary field and how the report names it.
BD_METRICS = {"psnr": "PSNR", "ms_ssim_db": "MS-SSIM"}
BD_METHODS = ("cubic", "pchip")
AVERAGED = ("bytes", "bpp", "psnr", "ssim", "ms_ssim", "encode_s", "decode_s")
_DIGITS = {"bytes": 1, "bpp": 6, "psnr": 4, "ssim": 6, "ms_ssim": 6, "ms_ssim_db": 4, "encode_s": 6, "decode_s": 6}


def rounded(field: str, value: float) -> float:
    """Values as stored: enough digits for any use, few enough that reruns diff cleanly."""
    return round(value, _DIGITS[field])


def summarize(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per codec, one row per quality with every measure averaged over the images, sorted by bpp.

    Averages are plain means over images (of PSNR in dB too, as CompressAI and most papers do);
    MS-SSIM in dB is taken of the mean MS-SSIM.
    """
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record["codec"], record["quality"]].append(record)
    summary: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (codec, quality), group in groups.items():
        row: dict[str, Any] = {"quality": quality, "images": len(group)}
        row.update({field: rounded(field, fmean(r[field] for r in group)) for field in AVERAGED})
        row["ms_ssim_db"] = rounded("ms_ssim_db", ms_ssim_db(row["ms_ssim"]))
        summary[codec].append(row)
    return {codec: sorted(rows, key=lambda row: row["bpp"]) for codec, rows in summary.items()}


def _curve(points: dict[str, list[float]] | list[dict[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    """(bpp, metric) of summary rows or of a published anchor (which gives MS-SSIM, not its dB)."""
    if isinstance(points, list):
        return [row["bpp"] for row in points], [row[metric] for row in points]
    if metric == "ms_ssim_db":
        return points["bpp"], [ms_ssim_db(value) for value in points.get("ms_ssim", [])]
    return points["bpp"], points.get(metric, [])


def _against_reference(reference: list[dict[str, Any]], test: Any) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in BD_METRICS:
        table[metric] = {}
        for method in BD_METHODS:
            curve = _curve(test, metric)
            try:
                result = asdict(bd_rate(_curve(reference, metric), curve, method)) if curve[1] else {"error": "not published"}
            except BdRateError as exc:
                result = {"error": str(exc)}
            table[metric][method] = result
    return table


def bd_rates(summary: dict[str, list[dict[str, Any]]], anchors: list[dict[str, Any]]) -> dict[str, Any]:
    """BD-rates of every measured codec and every published anchor against the measured JPEG, and
    of every variant against its base codec when that was measured too ("variants")."""
    variants = {codec: _against_reference(summary[base_name(codec)], rows) for codec, rows in summary.items()
                if codec != base_name(codec) and base_name(codec) in summary}
    if REFERENCE not in summary:
        return {"reference": REFERENCE, "error": "JPEG was not measured", "measured": {}, "anchors": {},
                "variants": variants}
    reference = summary[REFERENCE]
    return {
        "reference": REFERENCE,
        "measured": {codec: _against_reference(reference, rows) for codec, rows in summary.items() if codec != REFERENCE},
        "anchors": {anchor["name"]: _against_reference(reference, anchor) for anchor in anchors},
        "variants": variants,
    }
