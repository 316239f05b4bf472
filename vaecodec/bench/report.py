"""``report.md`` and its figures, written from a results object alone, so a report always matches
the ``results.json`` beside it.

Figures use matplotlib's object API (``Figure``, no pyplot): no display, no global state.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from vaecodec.bench.codecs import CODECS, base_name
from vaecodec.bench.metrics import MS_SSIM_WEIGHTS, ms_ssim_db
from vaecodec.bench.summary import BD_METRICS
from vaecodec.files import write_output

_PALETTE = colormaps["tab10"].colors
_ANCHOR_COLOURS = ("#555555", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f")
_PARTIAL = 0.8  # overlaps covering less of the shorter curve than this are pointed out
RD_PLOTS = {"psnr": ("rd_psnr.png", "PSNR (RGB) [dB]"), "ms_ssim_db": ("rd_ms_ssim.png", "MS-SSIM [dB]")}


def _colour(codec: str) -> tuple[float, float, float]:
    names = list(CODECS)
    return _PALETTE[names.index(codec) if codec in names else zlib.crc32(codec.encode()) % len(_PALETTE)]


def _label(results: dict[str, Any], codec: str) -> str:
    return results["codecs"].get(codec, {}).get("label", codec)


def _dataset_title(results: dict[str, Any]) -> str:
    images = len({record["image"] for record in results["records"]})
    name = "Kodak" if results["dataset"]["kodak"] else Path(results["dataset"]["folder"]).name
    return f"{name}, {images} image{'s' if images != 1 else ''}"


def _anchor_values(anchor: dict[str, Any], metric: str) -> list[float]:
    if metric == "ms_ssim_db":
        return [ms_ssim_db(value) for value in anchor.get("ms_ssim", [])]
    return anchor.get(metric, [])


def _plot_rd(path: Path, results: dict[str, Any], metric: str, ylabel: str) -> None:
    """One curve per codec (solid) and per published anchor (dashed), bpp up to ``plot_max_bpp``."""
    max_bpp = results["settings"]["plot_max_bpp"]
    figure = Figure(figsize=(9, 5.2), layout="constrained")
    axes = figure.add_subplot()
    visible = []
    for codec, rows in results["summary"].items():
        bpp, values = [r["bpp"] for r in rows], [r[metric] for r in rows]
        axes.plot(bpp, values, marker="o", markersize=3, linewidth=2.4 if codec == "vaecodec" else 1.4,
                  color=_colour(codec), label=_label(results, codec))
        visible += [v for b, v in zip(bpp, values) if b <= max_bpp]
    for colour, anchor in zip(_ANCHOR_COLOURS, results["anchors"]):
        values = _anchor_values(anchor, metric)
        if values:
            axes.plot(anchor["bpp"], values, linestyle="--", linewidth=1, color=colour, label=f"{anchor['name']} (published)")
            visible += [v for b, v in zip(anchor["bpp"], values) if b <= max_bpp]
    axes.set_xlim(0, max_bpp)
    if visible:
        axes.set_ylim(min(visible) - 0.5, max(visible) + 0.5)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{_dataset_title(results)}: solid measured here, dashed published")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.savefig(path, dpi=110)


def _speeds(rows: list[dict[str, Any]], field: str) -> tuple[float, float, float]:
    """Mean, fastest and slowest quality of a codec, in milliseconds per image."""
    values = [1000 * row[field] for row in rows]
    return float(np.mean(values)), min(values), max(values)


def _plot_speed(path: Path, results: dict[str, Any]) -> None:
    codecs = list(results["summary"])
    encode = [_speeds(results["summary"][c], "encode_s")[0] for c in codecs]
    decode = [_speeds(results["summary"][c], "decode_s")[0] for c in codecs]
    figure = Figure(figsize=(7.5, 1.4 + 0.55 * len(codecs)), layout="constrained")
    axes = figure.add_subplot()
    rows = np.arange(len(codecs))
    for offset, values, name, shade in ((-0.2, encode, "encode", "#1f77b4"), (0.2, decode, "decode", "#ff7f0e")):
        bars = axes.barh(rows + offset, values, height=0.4, label=name, color=shade)
        axes.bar_label(bars, labels=[f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms" for v in values], fontsize=7, padding=2)
    axes.set_yticks(rows, [_label(results, c) for c in codecs])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("milliseconds per image (median of repeats, mean over images and qualities)")
    axes.set_title(f"Speed on {_dataset_title(results)}, {results['settings']['threads']} threads")
    axes.legend(fontsize=8, loc="lower right")
    axes.margins(x=0.15)
    figure.savefig(path, dpi=110)


def write_visual(path: Path, original: np.ndarray, panels: list[tuple[dict[str, Any], np.ndarray]],
                 codecs: dict[str, dict[str, str]]) -> None:
    """The original crop and each codec's decoded crop side by side, labelled with bpp and PSNR."""
    titled = [("original", original)]
    titled += [(f"{codecs[r['codec']]['label']} q={r['quality']:g}\n{r['bpp']:.3f} bpp, {r['psnr']:.2f} dB", crop)
               for r, crop in panels]
    figure = Figure(figsize=(2.3 * len(titled), 2.8), layout="constrained")
    for axes, (title, crop) in zip(figure.subplots(1, len(titled), squeeze=False)[0], titled):
        axes.imshow(crop, interpolation="nearest")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    figure.savefig(path, dpi=110)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _bd_cells(entry: dict[str, Any], metric: str) -> tuple[list[str], float | None]:
    """Cells for one metric (VCEG-M33, PCHIP, overlap) and the overlap's coverage."""
    cubic, pchip = entry[metric]["cubic"], entry[metric]["pchip"]
    cells = [f"{m['percent']:+.1f} %" if "percent" in m else m["error"] for m in (cubic, pchip)]
    source = cubic if "percent" in cubic else pchip
    if "percent" not in source:
        return cells + ["—"], None
    return cells + [f"{source['low']:.2f}–{source['high']:.2f} dB ({100 * source['coverage']:.0f} %)"], source["coverage"]


def _bd_section(results: dict[str, Any]) -> list[str]:
    bd = results["bd_rate"]
    lines = ["## BD-rate against JPEG", ""]
    if "error" in bd:
        return lines + [f"No BD-rates: {bd['error']}.", ""]
    lines += [
        "Average bitrate difference to JPEG at equal quality, over the quality range both curves cover; "
        "negative means fewer bits than JPEG. VCEG-M33: cubic fit of log-rate (Bjøntegaard 2001); "
        "PCHIP: piecewise cubic interpolation. Overlap: the common range and its share of the shorter curve.",
        "",
    ]
    header = ["codec"]
    for name in BD_METRICS.values():
        header += [f"{name} VCEG-M33", f"{name} PCHIP", f"{name} overlap"]
    rows, partial = [], []
    for codec, entry in bd["measured"].items():
        row = [_label(results, codec)]
        for metric, name in BD_METRICS.items():
            cells, coverage = _bd_cells(entry, metric)
            row += cells
            if coverage is not None and coverage < _PARTIAL:
                partial.append(f"{_label(results, codec)} on {name} ({100 * coverage:.0f} %)")
        rows.append(row)
    lines += _table(header, rows)
    if partial:
        lines += [f"Partial overlap: {', '.join(partial)}. These BD-rates describe only the common range.", ""]
    return lines


def _variant_section(results: dict[str, Any]) -> list[str]:
    """Each variant (``vaecodec@effort=9``) against its base codec: BD-rates and encode time."""
    variants = results["bd_rate"].get("variants", {})
    if not variants:
        return []
    rows = []
    for codec, entry in variants.items():
        base = base_name(codec)
        encode, base_encode = (_speeds(results["summary"][name], "encode_s")[0] for name in (codec, base))
        cells = [cell for metric in BD_METRICS for cell in _bd_cells(entry, metric)[0][:2]]
        rows.append([_label(results, codec), _label(results, base), *cells, f"{encode:.0f}",
                     f"{encode / base_encode:.1f}×"])
    header = ["variant", "against"]
    for name in BD_METRICS.values():
        header += [f"{name} VCEG-M33", f"{name} PCHIP"]
    header += ["encode ms", "encode time ×"]
    return [
        "## Variants against their base codec", "",
        "BD-rate of each variant against the same codec at its default settings, measured in this run on the "
        "same images; encode time: the mean over images and qualities, and its ratio to the base codec's.", "",
        *_table(header, rows),
    ]


def _measured_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Measured averages", "", "Means over the images; per-image figures are in `results.csv` and `results.json`.", ""]
    for codec, rows in results["summary"].items():
        info = results["codecs"][codec]
        lines += [f"### {info['label']}", "", f"{info['version']}; quality knob: {info['knob']}.", ""]
        lines += _table(
            ["quality", "bpp", "PSNR dB", "SSIM", "MS-SSIM", "MS-SSIM dB", "encode ms", "decode ms"],
            [[f"{r['quality']:g}", f"{r['bpp']:.4f}", f"{r['psnr']:.3f}", f"{r['ssim']:.4f}", f"{r['ms_ssim']:.5f}",
              f"{r['ms_ssim_db']:.3f}", f"{1000 * r['encode_s']:.1f}", f"{1000 * r['decode_s']:.1f}"] for r in rows],
        )
    return lines


def _anchor_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Published anchors (not measured here)", ""]
    if not results["anchors"]:
        return lines + ["Not drawn: the published curves are for the Kodak set, and this is another set of images.", ""]
    lines += [
        "Quoted from their sources for context, drawn dashed: other software on other machines coded all 24 Kodak "
        "images. Their BD-rates use the JPEG measured here as the reference, so they are indicative only "
        "(and more so when this run covers fewer than the 24 images).",
        "",
    ]
    rows = []
    for anchor in results["anchors"]:
        entry = results["bd_rate"].get("anchors", {}).get(anchor["name"])
        cells = [_bd_cells(entry, metric)[0][0] for metric in BD_METRICS] if entry else ["—"] * len(BD_METRICS)
        rows.append([anchor["name"], *cells, anchor["reference"], f"[data]({anchor['source']})"])
    header = ["curve", *(f"{name} BD-rate vs JPEG (VCEG-M33)" for name in BD_METRICS.values()), "reference", "source"]
    return lines + _table(header, rows)


def _speed_section(results: dict[str, Any]) -> list[str]:
    settings = results["settings"]
    rows = []
    for codec, entries in results["summary"].items():
        cells = [f"{mean:.1f} ({low:.1f}–{high:.1f})" for mean, low, high in
                 (_speeds(entries, "encode_s"), _speeds(entries, "decode_s"))]
        rows.append([_label(results, codec), *cells])
    return [
        "## Speed", "", "![Encode and decode times](speed.png)", "",
        f"Milliseconds per image: the median of {settings['repeats']} runs per image, averaged over images and "
        "qualities (in brackets, the fastest and slowest quality). Everything runs in one process, vaecodec's model "
        f"loaded once; vaecodec's engine, AVIF and JPEG XL use {settings['threads']} threads, the other libraries one."
        + _load_note(results),
        "",
        *_table(["codec", "encode ms", "decode ms"], rows),
    ]


def _visual_section(results: dict[str, Any]) -> list[str]:
    visual = results["visual"]
    if not visual:
        return []
    x, y, size = visual["box"]
    return [
        "## Visual comparison", "", "![The same crop from each codec at about the same bpp](visual.png)", "",
        f"The {size}×{size} centre crop of {visual['image']} (from x={x}, y={y}). Each codec at the quality whose bpp "
        f"on the whole image is nearest {visual['target_bpp']:.3f} (vaecodec's point nearest "
        f"{results['settings']['visual']['target_bpp']} bpp); labels give that quality and the whole image's bpp and PSNR.",
        "",
    ]


def _method_section(results: dict[str, Any]) -> list[str]:
    weights = ", ".join(f"{w:g}" for w in MS_SSIM_WEIGHTS)
    return [
        "## Method", "",
        "- **bpp**: 8 × file size / pixels, of complete files as each library writes them (headers included).",
        "- **PSNR**: 8-bit RGB, the MSE over all three channels against a peak of 255; the mean over images.",
        "- **SSIM**: scikit-image `structural_similarity`, 11×11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, "
        "mean over the RGB channels.",
        f"- **MS-SSIM**: Wang, Simoncelli and Bovik (2003): 5 scales weighted {weights}, 11×11 Gaussian window "
        "(σ 1.5), 2×2 average pooling, computed per RGB channel and averaged (as pytorch-msssim, which CompressAI uses); "
        "dB is −10·log10(1 − MS-SSIM) of the mean over images.",
        "- **Codecs**: library defaults apart from the quality knob:",
        "",
        *_table(["codec", "quality knob", "library"],
                [[info["label"], info["knob"], info["version"]] for info in results["codecs"].values()]),
    ]


def _load_note(results: dict[str, Any]) -> str:
    """Whether other work shared the machine (the highest load average the run saw, which counts
    the bench's own threads too); empty where the run did not record it."""
    load = results.get("highest_load")
    if load is None:
        return ""
    cores, threads = results["environment"]["machine"]["cores"], results["settings"]["threads"]
    if load > threads + 0.5:
        return (f" Other work shared the machine: the 1-minute load average reached {load:.1f} on {cores} cores "
                f"(this run's threads: {threads}), so these times are inflated, and not all alike.")
    return f" No other work was seen: the 1-minute load average stayed at or under {load:.1f} on {cores} cores."


def _environment_section(results: dict[str, Any]) -> list[str]:
    environment = results["environment"]
    rows = [[key, str(value)] for key, value in {**environment["machine"], **environment["versions"]}.items()]
    return ["## Machine and versions", "", *_table(["", ""], rows)]


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    dataset = results["dataset"]
    done = len({record["image"] for record in results["records"]})
    lines = [
        f"# vaecodec bench: {_dataset_title(results)}", "",
        f"Produced by `{results['command']}` (started {results['started']}, ended {results.get('finished', '—')}).",
        "",
    ]
    if not results["complete"]:
        lines += [f"**Incomplete: stopped after {done} of {len(dataset['images'])} images; all figures cover those.**", ""]
    for codec, reason in results["skipped"].items():
        lines += [f"Skipped {codec}: {reason}.", ""]
    lines += ["## Rate–distortion", ""]
    lines += [f"![bpp against {label}]({name})" for name, label in RD_PLOTS.values()]
    lines += ["", "Solid: measured here. Dashed: published figures, not measured here (see the last sections).", ""]
    for section in (_bd_section, _variant_section, _speed_section, _visual_section, _measured_section, _anchor_section,
                    _method_section, _environment_section):
        lines += section(results)
    return "\n".join(lines).rstrip() + "\n"


def write_report(results: dict[str, Any], out: Path) -> None:
    """``report.md``, the two rate–distortion plots and the speed chart in ``out``."""
    for metric, (name, label) in RD_PLOTS.items():
        _plot_rd(out / name, results, metric, label)
    _plot_speed(out / "speed.png", results)
    write_output(str(out / "report.md"), markdown(results).encode(), force=True)
