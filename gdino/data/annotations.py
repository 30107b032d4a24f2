"""Annotation files -> plain records, with every problem collected (not just the first).

Formats (notes/tao.md §5):
- ODVG jsonl (train): detection lines `{"file_name", "height", "width", "detection": {"instances":
  [{"bbox": [x1,y1,x2,y2] px, "label": int, "category": str}]}}` read with a label map
  `{"0": "name", ...}`, or grounding lines `{"file_name", ..., "grounding": {"caption", "regions":
  [{"bbox", "phrase"}]}}`. Open-GroundingDino's `filename` is accepted in place of `file_name`.
- COCO json (val/test): category ids must be 0-based and contiguous (TAO builds the caption from the
  categories in id order and uses the id as the phrase index); `remap_coco_categories` fixes a file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from gdino.data import sources
from gdino.errors import DatasetError

Severity = Literal["error", "warning"]
BOX_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class Issue:
    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.where}: {self.message}"


@dataclass
class ImageRecord:
    """One image and its boxes (xyxy, pixels); `phrases[i]` names box i."""

    file_name: str
    image_id: int
    height: int | None
    width: int | None
    boxes: list[list[float]] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    mode: Literal["od", "vg", "coco"] = "od"


@dataclass
class OdvgSource:
    records: list[ImageRecord]
    label_map: dict[int, str] | None  # None in grounding (VG) mode
    issues: list[Issue]


@dataclass
class CocoSource:
    records: list[ImageRecord]
    category_ids: list[int]  # phrase index -> COCO category id
    category_names: list[str]
    coco: dict[str, Any]
    issues: list[Issue]


def raise_on_errors(issues: list[Issue], what: str) -> None:
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        shown = "\n".join(f"  - {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise DatasetError(f"{len(errors)} problem(s) in {what}:\n{shown}{more}",
                           hint="run `grounding_dino dataset check -e <spec>` to list every problem")


# ----------------------------------------------------------------------------------------- label map
def load_label_map(uri: str) -> tuple[dict[int, str], list[Issue]]:
    raw = sources.read_json(uri)
    issues: list[Issue] = []
    if not isinstance(raw, dict):
        return {}, [Issue("error", uri, 'a label map must be a JSON object {"0": "name", ...}')]
    label_map: dict[int, str] = {}
    for key, name in raw.items():
        try:
            label_map[int(key)] = str(name)
        except (TypeError, ValueError):
            issues.append(Issue("error", uri, f"label-map key {key!r} is not an integer id"))
    ids = sorted(label_map)
    if ids and ids != list(range(len(ids))):
        issues.append(Issue("error", uri, f"label-map ids must be contiguous from 0, got {_preview(ids)}"))
    return label_map, issues


# --------------------------------------------------------------------------------------------- ODVG
def load_odvg(json_file: str, label_map_file: str | None = None) -> OdvgSource:
    label_map, issues = (load_label_map(label_map_file) if label_map_file else (None, []))
    records: list[ImageRecord] = []
    uses_filename = 0
    for lineno, line in enumerate(sources.read_text_lines(json_file), start=1):
        if not line.strip():
            continue
        where = f"{json_file}:{lineno}"
        try:
            meta = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.append(Issue("error", where, f"not valid JSON: {exc}"))
            continue
        if not isinstance(meta, dict):
            issues.append(Issue("error", where, f"a line must be a JSON object, got {type(meta).__name__}"))
            continue
        file_name, used_ogd_key = _image_file_name(meta, where, issues)
        uses_filename += used_ogd_key
        if file_name is None:
            continue
        image_id = _int_or_none(meta.get("image_id"))
        record = ImageRecord(file_name=file_name, image_id=len(records) if image_id is None else image_id,
                             height=_int_or_none(meta.get("height")), width=_int_or_none(meta.get("width")))
        if isinstance(meta.get("detection"), dict):
            _read_detection(meta["detection"], label_map, record, where, issues)
        elif isinstance(meta.get("grounding"), dict):
            _read_grounding(meta["grounding"], record, where, issues)
        else:
            issues.append(Issue("error", where, 'line has neither a "detection" nor a "grounding" object'))
            continue
        records.append(record)
    if uses_filename:
        issues.append(Issue("warning", json_file,
                            f"{uses_filename} line(s) use Open-GroundingDino's \"filename\" key; accepted here, "
                            "but TAO reads \"file_name\" (rename the key to stay TAO-compatible)"))
    if not records:
        issues.append(Issue("error", json_file, "no usable lines"))
    return OdvgSource(records=records, label_map=label_map, issues=issues)


def _image_file_name(meta: dict, where: str, issues: list[Issue]) -> tuple[str | None, bool]:
    tao, ogd = meta.get("file_name"), meta.get("filename")
    if tao is not None and ogd is not None and tao != ogd:
        issues.append(Issue("error", where, f'"file_name" {tao!r} and "filename" {ogd!r} disagree'))
        return None, False
    if tao is None and ogd is None:
        issues.append(Issue("error", where, 'line has no "file_name" (TAO) or "filename" key'))
        return None, False
    if not isinstance(tao if tao is not None else ogd, str) or not (tao or ogd):
        issues.append(Issue("error", where, f"the image file name must be a non-empty string, got {tao or ogd!r}"))
        return None, False
    return str(tao if tao is not None else ogd), tao is None


def _read_detection(det: dict, label_map: dict[int, str] | None, record: ImageRecord, where: str,
                    issues: list[Issue]) -> None:
    record.mode = "od"
    for k, inst in enumerate(_objects(det.get("instances", []), where, "detection.instances", issues)):
        name = inst.get("category")
        label = inst.get("label")
        if label_map is not None:
            if label is None or _int_or_none(label) not in label_map:
                issues.append(Issue("error", where, f"instance {k}: label {label!r} is not in the label map"))
                continue
            mapped = label_map[int(label)]
            if name is not None and str(name) != mapped:
                issues.append(Issue("error", where, f"instance {k}: category {name!r} but the label map says "
                                                    f"{label}={mapped!r}"))
                continue
            name = mapped
        if name is None or isinstance(name, (dict, list)):
            issues.append(Issue("error", where, f"instance {k}: no category name and no label map"))
            continue
        box = _checked_box(inst.get("bbox"), record, where, f"instance {k}", issues)
        if box is not None:
            record.boxes.append(box)
            record.phrases.append(str(name))


def _read_grounding(grounding: dict, record: ImageRecord, where: str, issues: list[Issue]) -> None:
    record.mode = "vg"
    for k, region in enumerate(_objects(grounding.get("regions", []), where, "grounding.regions", issues)):
        phrase = region.get("phrase")
        if isinstance(phrase, list):  # some converters keep the token spans as a list of strings
            phrase = " ".join(str(p) for p in phrase)
        if not phrase or isinstance(phrase, dict):
            issues.append(Issue("error", where, f"region {k}: empty or malformed phrase {phrase!r}"))
            continue
        box = _checked_box(region.get("bbox"), record, where, f"region {k}", issues)
        if box is not None:
            record.boxes.append(box)
            record.phrases.append(str(phrase))


def _objects(value: Any, where: str, what: str, issues: list[Issue]) -> list[dict]:
    """The JSON objects of a list field; anything else is reported and skipped."""
    if not isinstance(value, list):
        issues.append(Issue("error", where, f"{what} must be a list, got {type(value).__name__}"))
        return []
    bad = [i for i, v in enumerate(value) if not isinstance(v, dict)]
    if bad:
        issues.append(Issue("error", where, f"{what} entries {bad[:5]} are not JSON objects"))
    return [v for v in value if isinstance(v, dict)]


def _checked_box(box: Any, record: ImageRecord, where: str, what: str, issues: list[Issue]) -> list[float] | None:
    """xyxy pixels; inverted or wholly outside -> error (dropped); past the border -> warning (kept, clamped later)."""
    if not (isinstance(box, (list, tuple)) and len(box) == 4):
        issues.append(Issue("error", where, f"{what}: bbox must be [x1, y1, x2, y2], got {box!r}"))
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        issues.append(Issue("error", where, f"{what}: bbox has non-numeric values {box!r}"))
        return None
    if x2 <= x1 or y2 <= y1:
        issues.append(Issue("error", where, f"{what}: bbox {box} is inverted or empty (need x2 > x1 and y2 > y1; "
                                            "ODVG boxes are [x1, y1, x2, y2], not [x, y, w, h])"))
        return None
    if not _check_inside(x1, y1, x2, y2, record, where, what, issues):
        return None
    return [x1, y1, x2, y2]


def _check_inside(x1: float, y1: float, x2: float, y2: float, record: ImageRecord, where: str, what: str,
                  issues: list[Issue]) -> bool:
    """False when the box lies wholly outside the image (an error); a box past the border is a warning."""
    if record.width is None or record.height is None:
        return True
    w, h = record.width, record.height
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        issues.append(Issue("error", where, f"{what}: bbox lies wholly outside the {w}x{h} image: "
                                            f"{[x1, y1, x2, y2]}"))
        return False
    if x1 < -BOX_TOLERANCE_PX or y1 < -BOX_TOLERANCE_PX or x2 > w + BOX_TOLERANCE_PX or y2 > h + BOX_TOLERANCE_PX:
        issues.append(Issue("warning", where, f"{what}: bbox {[x1, y1, x2, y2]} extends past the {w}x{h} image "
                                              "(it is clamped)"))
    return True


# --------------------------------------------------------------------------------------------- COCO
def load_coco(json_file: str) -> CocoSource:
    coco = sources.read_json(json_file)
    issues: list[Issue] = []
    if not isinstance(coco, dict) or "images" not in coco or "categories" not in coco:
        issues.append(Issue("error", json_file, 'not a COCO file: needs "images", "annotations", "categories"'))
        return CocoSource([], [], [], {}, issues)
    categories = []
    for k, cat in enumerate(_objects(coco["categories"], json_file, "categories", issues)):
        if _int_or_none(cat.get("id")) is None or not isinstance(cat.get("name"), str) or not cat["name"]:
            issues.append(Issue("error", json_file, f"categories[{k}] needs an integer id and a name, got {cat!r}"))
        else:
            categories.append({**cat, "id": int(cat["id"])})
    categories.sort(key=lambda c: c["id"])
    category_ids = [c["id"] for c in categories]
    issues += coco_category_issues(category_ids, json_file)
    names = [str(c["name"]) for c in categories]
    name_of = dict(zip(category_ids, names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        issues.append(Issue("error", json_file, f"category names {repeated} repeat: each category is one phrase "
                                                "of the caption, so names must be unique"))
    records: dict[int, ImageRecord] = {}
    uses_filename = 0
    for k, img in enumerate(_objects(coco["images"], json_file, "images", issues)):
        file_name, used_ogd_key = _image_file_name(img, f"{json_file} images[{k}]", issues)
        uses_filename += used_ogd_key
        image_id = _int_or_none(img.get("id"))
        if image_id is None:
            issues.append(Issue("error", f"{json_file} images[{k}]", "image has no integer \"id\""))
            continue
        if file_name is None:
            continue
        records[image_id] = ImageRecord(file_name=file_name, image_id=image_id, mode="coco",
                                              height=_int_or_none(img.get("height")),
                                              width=_int_or_none(img.get("width")))
    for k, ann in enumerate(_objects(coco.get("annotations", []), json_file, "annotations", issues)):
        where = f"{json_file} annotations[{k}]"
        image_key = _int_or_none(ann.get("image_id"))
        record = records.get(image_key) if image_key is not None else None
        if record is None:
            issues.append(Issue("error", where, f"image_id {ann.get('image_id')!r} is not in images"))
            continue
        category_id = _int_or_none(ann.get("category_id"))
        if category_id not in name_of:
            issues.append(Issue("error", where, f"category_id {ann.get('category_id')!r} is not in categories"))
            continue
        if ann.get("iscrowd", 0):
            continue  # crowd regions are ignored by COCOeval matching and never trained on
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
            issues.append(Issue("error", where, f"bbox must be [x, y, w, h], got {bbox!r}"))
            continue
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            issues.append(Issue("error", where, f"bbox has non-numeric values {bbox!r}"))
            continue
        box = _checked_box([x, y, x + w, y + h], record, where, f"annotation {ann.get('id', k)}", issues)
        if box is not None:
            record.boxes.append(box)
            record.phrases.append(name_of[category_id])  # like ODVG records: a box carries its name
    if uses_filename:
        issues.append(Issue("warning", json_file, f'{uses_filename} image(s) use "filename"; COCO uses "file_name"'))
    return CocoSource(list(records.values()), category_ids, names, coco, issues)


def coco_category_issues(category_ids: list[int], where: str) -> list[Issue]:
    if len(set(category_ids)) != len(category_ids):
        return [Issue("error", where, f"duplicate category ids: {_preview(category_ids)}")]
    if category_ids and category_ids != list(range(len(category_ids))):
        return [Issue("error", where,
                      f"category ids must be 0-based and contiguous (0..{len(category_ids) - 1}), got "
                      f"{_preview(category_ids)}; Grounding DINO uses the id as the phrase index. Fix: "
                      "`grounding_dino dataset check -e <spec> --remap` writes <name>_remapped.json; then point "
                      "json_file at it")]
    return []


def remap_coco_categories(json_file: str, out_file: str | None = None) -> tuple[str, dict[int, int]]:
    """Rewrite a COCO file with category ids 0..N-1 (in the order of the old ids); returns (path, old->new)."""
    coco = sources.read_json(json_file)
    try:
        old_ids = sorted({int(c["id"]) for c in coco["categories"]})
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"cannot remap {json_file}: categories need integer ids ({exc})") from exc
    mapping = {old: new for new, old in enumerate(old_ids)}
    for cat in coco["categories"]:
        cat["id"] = mapping[int(cat["id"])]
    coco["categories"].sort(key=lambda c: c["id"])
    for ann in coco.get("annotations", []):
        if int(ann["category_id"]) in mapping:
            ann["category_id"] = mapping[int(ann["category_id"])]
    out = out_file or remapped_name(json_file)
    if sources.is_remote(out):
        import fsspec

        with fsspec.open(out, "w") as fh:
            json.dump(coco, fh)
    else:
        path = sources.local_path(out)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(coco))
        os.replace(tmp, path)
    return out, mapping


def remapped_name(json_file: str) -> str:
    stem, ext = os.path.splitext(str(json_file))
    return f"{stem}_remapped{ext or '.json'}"


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _preview(values: list[int], n: int = 8) -> str:
    head = ", ".join(str(v) for v in values[:n])
    return f"[{head}{', ...' if len(values) > n else ''}]"


__all__ = ["Issue", "ImageRecord", "OdvgSource", "CocoSource", "load_odvg", "load_coco", "load_label_map",
           "remap_coco_categories", "remapped_name", "raise_on_errors", "coco_category_issues"]
