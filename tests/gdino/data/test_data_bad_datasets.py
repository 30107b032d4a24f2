"""Bad datasets are caught with a message before training (build_dataset, `dataset check`, --remap)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from gdino.data import build_dataset
from gdino.data.annotations import load_coco, load_odvg, remap_coco_categories
from gdino.data.check import check_dataset_config
from gdino.errors import DatasetError
from cli.main import main as cli_main

pytestmark = pytest.mark.reliability


def _images(folder: Path, names: list[str], size=(64, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", size, (120, 30, 30)).save(folder / name)
    return folder


def _odvg(tmp_path: Path, lines: list[dict], label_map: dict | None = None) -> dict:
    json_file = tmp_path / "annotations_odvg.jsonl"
    json_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    src = {"image_dir": str(tmp_path / "images"), "json_file": str(json_file)}
    if label_map is not None:
        (tmp_path / "labelmap.json").write_text(json.dumps(label_map))
        src["label_map"] = str(tmp_path / "labelmap.json")
    return src


def _det_line(name: str, boxes: list[list[float]], labels: list[int], names: list[str], key="file_name") -> dict:
    return {key: name, "height": 48, "width": 64,
            "detection": {"instances": [{"bbox": b, "label": l, "category": names[l]} for b, l in zip(boxes, labels)]}}


def _coco(tmp_path: Path, cat_ids: list[int], images: list[str], boxes: list[list[float]] | None = None) -> dict:
    coco = {"images": [{"id": i, "file_name": n, "height": 48, "width": 64} for i, n in enumerate(images)],
            "categories": [{"id": c, "name": f"thing {c}"} for c in cat_ids],
            "annotations": [{"id": k + 1, "image_id": 0, "category_id": cat_ids[0], "bbox": b, "area": b[2] * b[3],
                             "iscrowd": 0} for k, b in enumerate(boxes or [[4, 4, 10, 10]])]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    return {"image_dir": str(tmp_path / "images"), "json_file": str(path)}


def _cfg(train=None, val=None, max_text_len=256) -> dict:
    return {"dataset": {"train_data_sources": [train] if train else [], "val_data_sources": val,
                        "max_labels": 50, "augmentation": {"scales": [48], "test_random_resize": 48}},
            "model": {"max_text_len": max_text_len}}


def _messages(report) -> str:
    return "\n".join(str(i) for i in report.issues)


NAMES = ["red circle", "blue square"]


def test_one_based_coco_ids_are_caught_with_a_remap_hint_and_remap_fixes_them(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    val = _coco(tmp_path, [1, 2, 3], ["a.jpg"])
    with pytest.raises(DatasetError, match="0-based and contiguous.*--remap"):
        build_dataset(_cfg(val=val), "val")
    fixed, mapping = remap_coco_categories(val["json_file"])
    assert mapping == {1: 0, 2: 1, 3: 2} and fixed.endswith("annotations_remapped.json")
    source = load_coco(fixed)
    assert source.category_ids == [0, 1, 2] and source.category_names == ["thing 1", "thing 2", "thing 3"]
    assert json.loads(Path(fixed).read_text())["annotations"][0]["category_id"] == 0
    assert not [i for i in source.issues if i.severity == "error"]
    ds = build_dataset(_cfg(val={**val, "json_file": fixed}), "val")
    assert ds[0]["target"]["labels"].tolist() == [0]


def test_non_contiguous_coco_ids_are_caught(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    report = check_dataset_config(_cfg(val=_coco(tmp_path, [0, 2, 5], ["a.jpg"])))
    assert "0-based and contiguous" in _messages(report) and report.errors


def test_cli_check_lists_every_problem_and_exits_2_then_remap_passes(tmp_path, capsys):
    _images(tmp_path / "images", ["a.jpg"])
    val = _coco(tmp_path, [1, 2], ["a.jpg", "missing.jpg"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(_cfg(val=val)))
    assert cli_main(["dataset", "check", "-e", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "0-based and contiguous" in err and "missing.jpg" in err and "2 problem(s)" in err
    assert cli_main(["dataset", "check", "-e", str(spec), "--remap"]) == 2  # the missing image remains
    out = capsys.readouterr().out
    assert "use: dataset.val_data_sources.json_file=" in out and Path(val["json_file"]).with_name(
        "annotations_remapped.json").exists()


def test_filename_instead_of_file_name_is_accepted_with_a_warning(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    src = _odvg(tmp_path, [_det_line("a.jpg", [[1, 1, 20, 20]], [0], NAMES, key="filename")],
                {"0": NAMES[0], "1": NAMES[1]})
    report = check_dataset_config(_cfg(train=src))
    assert not report.errors and "\"filename\"" in _messages(report)
    assert build_dataset(_cfg(train=src), "train", seed=0)[0]["target"]["labels"].numel() == 1


def test_disagreeing_file_name_keys_and_missing_keys_are_errors(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    line = _det_line("a.jpg", [[1, 1, 20, 20]], [0], NAMES)
    src = _odvg(tmp_path, [{**line, "filename": "b.jpg"}, {k: v for k, v in line.items() if k != "file_name"}],
                {"0": NAMES[0], "1": NAMES[1]})
    messages = _messages(check_dataset_config(_cfg(train=src)))
    assert "disagree" in messages and 'no "file_name"' in messages


def test_inverted_and_outside_boxes_are_caught(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    boxes = [[30, 5, 10, 20],        # inverted
             [70, 50, 90, 60],       # wholly outside the 64x48 image
             [50, 30, 80, 47],       # past the right border: clamped, warned
             [0, 0, 10, 10]]         # fine
    src = _odvg(tmp_path, [_det_line("a.jpg", boxes, [0, 0, 1, 1], NAMES)], {"0": NAMES[0], "1": NAMES[1]})
    report = check_dataset_config(_cfg(train=src))
    messages = _messages(report)
    assert "inverted" in messages and "wholly outside" in messages and "extends past" in messages
    assert len(report.errors) == 2
    with pytest.raises(DatasetError, match="2 problem"):
        build_dataset(_cfg(train=src), "train")


def test_label_map_mismatches_are_caught(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    line = {"file_name": "a.jpg", "height": 48, "width": 64, "detection": {"instances": [
        {"bbox": [1, 1, 9, 9], "label": 5, "category": "red circle"},
        {"bbox": [1, 1, 9, 9], "label": 1, "category": "red circle"}]}}
    src = _odvg(tmp_path, [line], {"0": "red circle", "1": "blue square", "3": "gap"})
    messages = _messages(check_dataset_config(_cfg(train=src)))
    assert "not in the label map" in messages and "label map says" in messages
    assert "contiguous from 0" in messages


def test_missing_and_corrupt_images_are_caught(tmp_path):
    _images(tmp_path / "images", ["a.jpg", "b.jpg"])
    data = (tmp_path / "images" / "b.jpg").read_bytes()
    (tmp_path / "images" / "b.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (tmp_path / "images" / "c.jpg").write_bytes(b"not an image at all")
    lines = [_det_line(n, [[1, 1, 20, 20]], [0], NAMES) for n in ("a.jpg", "b.jpg", "c.jpg", "gone.jpg")]
    report = check_dataset_config(_cfg(train=_odvg(tmp_path, lines, {"0": NAMES[0], "1": NAMES[1]})))
    messages = _messages(report)
    assert "b.jpg: corrupt" in messages and "c.jpg: corrupt" in messages and "gone.jpg" in messages
    assert len(report.errors) == 3


def test_captions_over_the_token_budget_are_caught(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    phrases = [f"an extraordinarily verbose description of region number {i}" for i in range(40)]
    line = {"file_name": "a.jpg", "height": 48, "width": 64,
            "grounding": {"caption": " ".join(phrases), "regions": [{"bbox": [1, 1, 9, 9], "phrase": p} for p in phrases]}}
    src = _odvg(tmp_path, [line])
    report = check_dataset_config(_cfg(train=src, max_text_len=256))
    assert "> model.max_text_len=256" in _messages(report) and report.errors
    val = _coco(tmp_path, list(range(0, 1)), ["a.jpg"])
    coco = json.loads(Path(val["json_file"]).read_text())
    coco["categories"] = [{"id": i, "name": p} for i, p in enumerate(phrases)]
    Path(val["json_file"]).write_text(json.dumps(coco))
    assert "evaluation caption" in _messages(check_dataset_config(_cfg(val=val)))


def test_grounding_lines_without_label_map_build_vg_captions(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    line = {"file_name": "a.jpg", "height": 48, "width": 64, "grounding": {"caption": "a dog and a cat", "regions": [
        {"bbox": [1, 1, 20, 20], "phrase": "a dog"}, {"bbox": [30, 5, 60, 40], "phrase": "a cat"},
        {"bbox": [2, 2, 10, 10], "phrase": "a dog"}]}}
    ds = build_dataset(_cfg(train=_odvg(tmp_path, [line])), "train", seed=0)
    target = ds[0]["target"]
    assert sorted(target["phrases"]) == ["a cat", "a dog"] and target["labels"].numel() == 3


def test_odvg_parser_reports_bad_json_lines_without_stopping(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"file_name": "a.jpg", "detection": {"instances": []}}\n{broken\n')
    source = load_odvg(str(path))
    assert len(source.records) == 1 and any("not valid JSON" in i.message for i in source.issues)


def test_preflight_raises_one_error_listing_every_problem(tmp_path, shapes_cfg):
    from gdino.data.check import preflight

    assert not preflight(shapes_cfg).errors
    _images(tmp_path / "images", ["a.jpg"])
    bad = _cfg(train=_odvg(tmp_path, [_det_line("a.jpg", [[30, 5, 10, 20]], [0], NAMES),
                                      _det_line("gone.jpg", [[1, 1, 5, 5]], [1], NAMES)],
                           {"0": NAMES[0], "1": NAMES[1]}),
               val=_coco(tmp_path, [1, 2], ["a.jpg"]))
    with pytest.raises(DatasetError) as info:
        preflight(bad)
    message = str(info.value)
    assert "3 problem(s)" in message and "inverted" in message and "gone.jpg" in message and "0-based" in message


def test_a_spec_without_data_sources_is_an_error_not_a_silent_ok():
    report = check_dataset_config({"dataset": {"train_data_sources": [{"image_dir": "", "json_file": ""}],
                                               "val_data_sources": {"image_dir": "", "json_file": ""}}})
    assert len(report.errors) == 1 and "no train/val/test/infer data source" in str(report.errors[0])


def test_coco_structural_problems_are_listed_together(tmp_path):
    _images(tmp_path / "images", ["a.jpg"])
    val = _coco(tmp_path, [0, 1], ["a.jpg"])
    coco = json.loads(Path(val["json_file"]).read_text())
    coco["categories"][1]["name"] = coco["categories"][0]["name"]
    coco["annotations"] += [{"id": 10, "image_id": 99, "category_id": 0, "bbox": [1, 1, 2, 2]},
                            {"id": 11, "image_id": 0, "category_id": 7, "bbox": [1, 1, 2, 2]},
                            {"id": 12, "image_id": 0, "category_id": 0, "bbox": ["a", 1, 2, 2]},
                            {"id": 13, "image_id": 0, "category_id": 0, "bbox": [1, 1, -2, 2]}]
    Path(val["json_file"]).write_text(json.dumps(coco))
    messages = [i.message for i in load_coco(val["json_file"]).issues if i.severity == "error"]
    assert len(messages) == 5
    for expected in ("repeat", "image_id 99", "category_id 7", "non-numeric", "inverted"):
        assert any(expected in m for m in messages), expected


def _json_values():
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=32) | st.text(max_size=4)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["file_name", "filename", "detection", "grounding", "instances", "regions", "bbox",
                         "label", "category", "phrase", "height", "width", "image_id", "id", "images",
                         "annotations", "categories", "name", "category_id", "iscrowd"]), inner, max_size=5),
                        max_leaves=12)


def test_parsers_report_issues_for_arbitrary_json_and_never_crash(tmp_path):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_json_values(), _json_values())
    def check(line, coco):
        odvg_file = tmp_path / "fuzz.jsonl"
        odvg_file.write_text(json.dumps(line) + "\n")
        coco_file = tmp_path / "fuzz.json"
        coco_file.write_text(json.dumps(coco))
        for load in (lambda: load_odvg(str(odvg_file)), lambda: load_coco(str(coco_file))):
            try:
                load()
            except DatasetError:
                pass  # a typed error is fine; anything else is a crash

    check()
