"""The evaluation report: `report.json` and `report.md`, measured numbers beside published ones."""
from __future__ import annotations

import json
import os
from typing import Any

from crn_tf.core.files import write_atomic

PUBLISHED_SOURCE = "Park et al., Semantic Image Synthesis with Spatially-Adaptive Normalization (SPADE), CVPR 2019, Table 1"
PUBLISHED_PROTOCOL = "Cityscapes val, 256x512; segmentation by DRN-D-105; FID with the Inception network"
PUBLISHED = {
    "CRN": {"miou": 52.4, "pixel_accuracy": 77.1, "fid": 104.7},
    "pix2pixHD": {"miou": 58.3, "pixel_accuracy": 81.4, "fid": 95.0},
    "SPADE": {"miou": 62.3, "pixel_accuracy": 81.9, "fid": 71.8},
}
PUBLISHED_SIZE = (256, 512)


def _fmt(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    return f"{value * scale:.{digits}f}"


def comparability_notes(report: dict) -> list[str]:
    """Why the measured numbers may not compare with the published ones (empty if they do)."""
    notes = []
    size = tuple(report.get("size") or ())
    if size and size != PUBLISHED_SIZE:
        notes.append(f"measured at {size[0]}x{size[1]}, published figures are at 256x512")
    if report.get("dataset", {}).get("label_set") not in (None, "cityscapes"):
        notes.append("not the Cityscapes label set")
    if report.get("dataset", {}).get("split") not in (None, "val"):
        notes.append(f"split {report['dataset']['split']!r}; published figures use Cityscapes val")
    fid = report.get("fid")
    if fid and not fid.get("comparable", False):
        notes.append(f"FID features: {fid['extractor']} - not comparable with published FID figures")
    seg = report.get("segmentation")
    if seg and "drn" not in seg.get("segmenter", "").lower():
        notes.append("segmenter is not DRN-D-105: mIoU/accuracy follow the stated protocol, not the published one")
    return notes


def markdown_report(report: dict) -> str:
    """The Markdown page: a table of this model beside the published figures, then the protocol."""
    fid = report.get("fid") or {}
    seg = report.get("segmentation") or {}
    name = report.get("name", "this model")
    lines = [f"# Evaluation: {name}", ""]
    lines += [
        "| Method | mIoU | Pixel accuracy | FID | KID x 1000 |",
        "|---|---:|---:|---:|---:|",
        f"| **{name}** (measured) | {_fmt(seg.get('miou'), 1, 100)} | {_fmt(seg.get('pixel_accuracy'), 1, 100)} "
        f"| {_fmt(fid.get('fid'), 1)} | {_fmt(fid.get('kid'), 2, 1000)} |",
    ]
    for method, values in PUBLISHED.items():
        lines.append(
            f"| {method} (published) | {values['miou']:.1f} | {values['pixel_accuracy']:.1f} | {values['fid']:.1f} | – |"
        )
    if seg.get("real"):
        real = seg["real"]
        lines.append(
            f"| real photos (segmenter upper bound) | {_fmt(real.get('miou'), 1, 100)} "
            f"| {_fmt(real.get('pixel_accuracy'), 1, 100)} | – | – |"
        )
    lines += ["", f"Published: {PUBLISHED_SOURCE} ({PUBLISHED_PROTOCOL}). mIoU and accuracy in percent; lower FID is better.", ""]
    notes = comparability_notes(report)
    if notes:
        lines += ["**Not directly comparable:** " + "; ".join(notes) + ".", ""]
    dataset = report.get("dataset", {})
    size = report.get("size")
    lines += ["## Protocol", ""]
    lines.append(f"- Dataset: {dataset.get('source', '?')} (format {dataset.get('format', '?')}, split "
                 f"{dataset.get('split', '?')}, label set {dataset.get('label_set', '?')}), {report.get('num_images', '?')} images")
    if size:
        real = f"; real photos {report['real_resize']}" if report.get("real_resize") else ""
        lines.append(f"- Size: {size[0]}x{size[1]} (synthesized images{real})")
    lines.append(f"- Weights: {report.get('weights', '?')}")
    lines.append(f"- Synthesized images: {report.get('synthesized_dir', '?')}"
                 + (f" (image {report['image_index']} of k = {report['num_images_per_layout']})"
                    if report.get("num_images_per_layout", 1) > 1 else ""))
    if fid:
        lines.append(f"- FID/KID features: {fid.get('description', fid.get('extractor'))}")
        lines.append(f"- FID between {fid.get('num_synthesized')} synthesized and {fid.get('num_real')} real images; "
                     f"KID: {fid.get('kid_subsets')} subsets of {fid.get('kid_subset_size')}, standard deviation x 1000 = "
                     f"{_fmt(fid.get('kid_std'), 2, 1000)}")
        if fid.get("warning"):
            lines.append(f"- Warning: {fid['warning']}")
    else:
        lines.append("- FID: not computed")
    if seg:
        lines.append(f"- Segmenter: {seg.get('segmenter')}")
        lines.append(f"- Scoring: {seg.get('protocol')}")
        lines.append(f"- Classes with an IoU: {seg.get('classes_scored')} of {len(seg.get('per_class_iou', []))}; "
                     f"pixels scored: {seg.get('pixels_scored')}")
    else:
        lines.append("- Segmentation score: not computed (pass --segmenter DIR)")
    if seg.get("per_class_iou"):
        names = seg.get("class_names") or [str(i) for i in range(len(seg["per_class_iou"]))]
        lines += ["", "## Per-class IoU (%)", "", "| " + " | ".join(names) + " |", "|" + "---:|" * len(names),
                  "| " + " | ".join(_fmt(v, 1, 100) for v in seg["per_class_iou"]) + " |"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[str, str]:
    """Writes `report.json` and `report.md` into `out_dir`; returns their paths."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "report.json")
    md_path = os.path.join(out_dir, "report.md")
    payload = dict(report, published={"source": PUBLISHED_SOURCE, "protocol": PUBLISHED_PROTOCOL, "figures": PUBLISHED},
                   notes=comparability_notes(report))
    write_atomic(json_path, json.dumps(payload, indent=2) + "\n")
    write_atomic(md_path, markdown_report(report))
    return json_path, md_path
