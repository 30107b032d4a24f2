"""`dataset check`: every problem in the configured data sources, found before any budget is spent.

Collects issues rather than stopping at the first: annotation problems (ids, boxes, label maps,
`filename` vs `file_name`), archive problems, missing and corrupt images, image sizes that disagree
with the annotations, and captions over the token budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gdino.data import sources
from gdino.data.annotations import (ImageRecord, Issue, coco_category_issues, load_coco, load_odvg,
                                    remap_coco_categories)
from gdino.data.build import EVAL_SOURCE_KEY, get, infer_phrases
from gdino.data.captions import TokenCounter, token_counter
from gdino.data.datasets import list_images
from gdino.errors import DatasetError


@dataclass
class CheckReport:
    issues: list[Issue] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # one line per source checked
    remapped: dict[str, str] = field(default_factory=dict)  # override key -> remapped file

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


def check_dataset_config(cfg: Any, *, decode_images: bool = True, remap: bool = False,
                         splits: tuple[str, ...] = ("train", "val", "test", "infer")) -> CheckReport:
    dataset_cfg = get(cfg, "dataset")
    model_cfg = get(cfg, "model")
    max_text_len = int(get(model_cfg, "max_text_len", 256))
    counter = token_counter(get(model_cfg, "text_encoder_type", None))
    report = CheckReport()
    if "train" in splits:
        for i, src in enumerate(get(dataset_cfg, "train_data_sources", [])):
            if get(src, "json_file"):
                _check_train_source(src, f"dataset.train_data_sources[{i}]", dataset_cfg, counter, max_text_len,
                                    decode_images, report)
    for split in ("val", "test"):
        src = get(dataset_cfg, EVAL_SOURCE_KEY[split]) if split in splits else None
        src = src[0] if isinstance(src, (list, tuple)) and len(src) == 1 else src
        if src is not None and get(src, "json_file"):
            _check_eval_source(src, f"dataset.{EVAL_SOURCE_KEY[split]}", dataset_cfg, counter, max_text_len,
                               decode_images, remap, report)
    if "infer" in splits:
        _check_infer_source(get(dataset_cfg, "infer_data_sources"), report)
    if not report.checked and not report.issues:
        report.issues.append(Issue("error", "dataset", f"no {'/'.join(splits)} data source is configured (every "
                                                       "json_file / image_dir is empty)"))
    report.issues = list(dict.fromkeys(report.issues))  # val and test often share a source: say it once
    return report


def preflight(cfg: Any, splits: tuple[str, ...] = ("train", "val"), *, decode_images: bool = False) -> CheckReport:
    """For launchers (train, sweeps): raise one DatasetError listing every problem before budget is spent."""
    report = check_dataset_config(cfg, decode_images=decode_images, splits=splits)
    raise_if_failed(report)
    return report


def raise_if_failed(report: CheckReport) -> None:
    if report.errors:
        lines = "\n".join(f"  - {e}" for e in report.errors)
        raise DatasetError(f"{len(report.errors)} problem(s) in the data sources:\n{lines}",
                           hint="fix them (or use --remap for COCO category ids) and run `dataset check` again")


# ------------------------------------------------------------------------------------------ sources
def _check_train_source(src: Any, key: str, dataset_cfg: Any, counter: TokenCounter, max_text_len: int,
                        decode: bool, report: CheckReport) -> None:
    try:
        odvg = load_odvg(get(src, "json_file"), get(src, "label_map") or None)
    except DatasetError as exc:
        report.issues.append(Issue("error", key, exc.message))
        return
    report.issues += odvg.issues
    report.checked.append(f"{key}: {len(odvg.records)} images, "
                          f"{sum(len(r.boxes) for r in odvg.records)} boxes ({get(src, 'json_file')})")
    max_labels = int(get(dataset_cfg, "max_labels", 50))
    most_positives = 0
    for record in odvg.records:
        positives = list(dict.fromkeys(record.phrases))
        most_positives = max(most_positives, len(positives))
        tokens = counter.caption_tokens(positives)
        if tokens > max_text_len:
            report.issues.append(Issue("error", f"{key} {record.file_name}",
                                       f"its {len(positives)} phrases need {tokens} tokens > model.max_text_len="
                                       f"{max_text_len}: positives would be dropped (raise max_text_len or "
                                       "shorten the phrases)"))
    if most_positives > max_labels:
        report.issues.append(Issue("warning", key, f"an image has {most_positives} distinct labels > dataset."
                                                   f"max_labels={max_labels}; all positives are still used"))
    if odvg.label_map:
        sample = sorted(odvg.label_map.values())[:max_labels]
        if counter.caption_tokens(sample) > max_text_len:
            report.issues.append(Issue("warning", key, f"{max_labels} label names exceed max_text_len="
                                                       f"{max_text_len} tokens: negatives will be dropped"))
    _check_images(get(src, "image_dir"), odvg.records, key, decode, report)


def _check_eval_source(src: Any, key: str, dataset_cfg: Any, counter: TokenCounter, max_text_len: int,
                       decode: bool, remap: bool, report: CheckReport) -> None:
    json_file = get(src, "json_file")
    try:
        coco = load_coco(json_file)
        if remap and coco_category_issues(coco.category_ids, json_file):
            fixed, mapping = remap_coco_categories(json_file)
            report.remapped[f"{key}.json_file"] = fixed
            report.issues.append(Issue("warning", key, f"category ids remapped {mapping} into {fixed}; use "
                                                       f"`{key}.json_file={fixed}`"))
            coco = load_coco(fixed)
    except DatasetError as exc:
        report.issues.append(Issue("error", key, exc.message))
        return
    report.issues += coco.issues
    report.checked.append(f"{key}: {len(coco.records)} images, {sum(len(r.boxes) for r in coco.records)} boxes, "
                          f"{len(coco.category_ids)} categories ({json_file})")
    tokens = counter.caption_tokens(coco.category_names)
    if tokens > max_text_len:
        report.issues.append(Issue("error", key, f"the evaluation caption (all {len(coco.category_names)} category "
                                                 f"names) needs {tokens} tokens > model.max_text_len={max_text_len}"))
    eval_ids = get(dataset_cfg, "eval_class_ids", None)
    if eval_ids:
        unknown = [c for c in eval_ids if c not in coco.category_ids]
        if unknown:
            report.issues.append(Issue("error", "dataset.eval_class_ids", f"ids {unknown} are not categories of "
                                                                          f"{json_file}"))
        elif list(eval_ids) == [1] and len(coco.category_ids) > 1:
            report.issues.append(Issue("warning", "dataset.eval_class_ids", "is [1] (the TAO schema default): only "
                                                                            "category 1 is evaluated"))
    _check_images(get(src, "image_dir"), coco.records, key, decode, report)


def _check_infer_source(src: Any, report: CheckReport) -> None:
    image_dirs = get(src, "image_dir", [])
    image_dirs = [image_dirs] if isinstance(image_dirs, str) else [d for d in image_dirs if d]
    if not image_dirs:
        return
    key = "dataset.infer_data_sources"
    if not infer_phrases(get(src, "captions", [])):
        report.issues.append(Issue("error", key, "captions is empty: inference needs the phrases to look for"))
    for d in image_dirs:
        try:
            n = len(list_images(sources.resolve_image_dir(d)))
        except DatasetError as exc:
            report.issues.append(Issue("error", key, exc.message))
            continue
        report.checked.append(f"{key}: {n} images in {d}")
        if n == 0:
            report.issues.append(Issue("error", key, f"no images in {d}"))


def _check_images(image_dir: str, records: list[ImageRecord], key: str, decode: bool, report: CheckReport) -> None:
    try:
        root = sources.resolve_images_for(image_dir, [r.file_name for r in records])
    except DatasetError as exc:
        report.issues.append(Issue("error", f"{key}.image_dir", exc.message))
        return
    missing = []
    for record in records:
        path = Path(root) / record.file_name
        if not path.is_file():
            missing.append(record.file_name)
            continue
        if decode:
            _check_one_image(path, record, key, report)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        report.issues.append(Issue("error", f"{key}.image_dir", f"{len(missing)} image(s) missing from {image_dir}: "
                                                                f"{shown}"))


def _check_one_image(path: Path, record: ImageRecord, key: str, report: CheckReport) -> None:
    try:
        with Image.open(path) as img:
            img.load()  # decodes every byte: truncated or corrupt files fail here, not mid-training
            width, height = img.size
    except Exception as exc:  # PIL raises many types for bad files; all mean "unusable image"
        report.issues.append(Issue("error", f"{key} {record.file_name}", f"corrupt or unreadable image: {exc}"))
        return
    if record.width is not None and record.height is not None and (width, height) != (record.width, record.height):
        report.issues.append(Issue("warning", f"{key} {record.file_name}",
                                   f"image is {width}x{height} but the annotations say {record.width}x{record.height}"))


def format_report(report: CheckReport) -> str:
    lines = [f"checked {line}" for line in report.checked]
    lines += [str(w) for w in report.warnings]
    lines += [str(e) for e in report.errors]
    verdict = "OK" if not report.errors else f"{len(report.errors)} error(s)"
    lines.append(f"dataset check: {verdict}, {len(report.warnings)} warning(s)")
    return "\n".join(lines)


__all__ = ["CheckReport", "check_dataset_config", "preflight", "raise_if_failed", "format_report"]
