"""evaluate (pycocotools numbers on a hand-made case with a known AP) and inference outputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def checkpoint(trained) -> str:
    cfg, _, _ = trained
    return str(sorted(Path(cfg.results_dir).glob("model_epoch_*.pth"))[-1])


def _with(cfg, **sections):
    return cfg.model_copy(update={k: getattr(cfg, k).model_copy(update=v) for k, v in sections.items()})


def test_evaluate_gives_the_known_ap_of_a_hand_made_case(trained, checkpoint, tmp_path):
    """GT = the network's own best detection + one box it cannot find: AP = AP50 = AP75 = 51/101."""
    from gdino.data import build_dataset
    from gdino.engine.evaluate import evaluate
    from gdino.engine.predict import loader_for, predict
    from gdino.model.text import load_tokenizer
    from gdino.model.weights import load_network

    cfg, _, _ = trained
    source = json.loads(Path(cfg.dataset.test_data_sources.json_file).read_text())
    image = source["images"][0]
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    shutil.copy(_extracted(cfg, image["file_name"]), images_dir / image["file_name"])
    gt = {"images": [image], "categories": source["categories"],
          "annotations": [{"id": 1, "image_id": image["id"], "category_id": 0, "bbox": [0, 0, 1, 1], "area": 1}]}
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(gt))
    cfg = _with(cfg, dataset={"test_data_sources": cfg.dataset.test_data_sources.model_copy(
        update={"image_dir": str(images_dir), "json_file": str(gt_file)})},
        evaluate={"checkpoint": checkpoint, "results_dir": str(tmp_path / "eval")})
    net = load_network(cfg, checkpoint)
    dataset = build_dataset(cfg, "test")
    (target, result), = list(predict(net, load_tokenizer(cfg.model.text_encoder_type),
                                     loader_for(cfg, dataset, "evaluate"), cfg.model.num_select))
    x1, y1, x2, y2 = result["boxes"][0].tolist()
    category = target["category_ids"][int(result["labels"][0])]
    gt["annotations"] = [
        {"id": 1, "image_id": image["id"], "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
         "area": (x2 - x1) * (y2 - y1)},
        {"id": 2, "image_id": image["id"], "category_id": category, "bbox": [62.0, 62.0, 1.0, 1.0], "area": 1.0}]
    gt_file.write_text(json.dumps(gt))
    metrics = evaluate(cfg)
    # precision 1 up to recall 0.5, nothing beyond: 51 of COCO's 101 recall points
    for key in ("AP", "AP50", "AP75"):
        assert metrics[key] == pytest.approx(51 / 101, abs=1e-6), key
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["AP50"] == pytest.approx(51 / 101)
    assert set(metrics["per_class"]) == {c["name"] for c in source["categories"]}


def _extracted(cfg, file_name: str) -> Path:
    from gdino.data import sources

    return sources.resolve_image_dir(cfg.dataset.test_data_sources.image_dir) / file_name


def test_inference_writes_images_kitti_labels_and_json(trained, checkpoint, tmp_path):
    from gdino.engine.inference import infer

    cfg, _, _ = trained
    cfg = _with(cfg, inference={"checkpoint": checkpoint, "results_dir": str(tmp_path / "inf"),
                                "conf_threshold": 0.0, "color_map": {"red circle": "green"}})
    folder = infer(cfg)
    records = json.loads((folder / "inference_results.json").read_text())
    assert len(records) == 2 and len(list((folder / "images_annotated").iterdir())) == 2
    label_file = folder / "labels" / f"{Path(records[0]['file_name']).stem}.txt"
    lines = label_file.read_text().splitlines()
    assert len(lines) == len(records[0]["detections"]) == cfg.model.num_select
    fields = lines[0].split()
    assert len(fields) == 16 and fields[0] in ("red_circle", "cat")
    strict = infer(_with(cfg, inference={"conf_threshold": 1.01}))
    assert all(not r["detections"] for r in json.loads((strict / "inference_results.json").read_text()))
