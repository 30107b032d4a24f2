"""The data -> model contract (docs/ARCHITECTURE.md), captions, augmentation and the generator."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gdino.data import build_dataset, collate_fn
from gdino.data.captions import build_od_caption, fit_caption, join_caption, token_counter
from gdino.data.generate import GenerateOptions, class_names, generate
from gdino.data.transforms import AugmentationSettings, Sample, hflip, random_size_crop, resize, resized_hw


def _assert_sample_contract(item: dict) -> None:
    image, target = item["image"], item["target"]
    assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 3
    boxes, labels, phrases = target["boxes"], target["labels"], target["phrases"]
    assert boxes.shape == (len(labels), 4) and labels.dtype == torch.long
    assert torch.all((boxes >= 0) & (boxes <= 1)), boxes
    assert torch.all(labels < len(phrases)) and torch.all(labels >= 0)
    assert target["caption"] == join_caption(phrases)
    h, w = target["size"]
    assert h <= image.shape[1] and w <= image.shape[2]
    assert isinstance(target["image_id"], int) and len(target["orig_size"]) == 2


def test_train_samples_follow_the_contract(shapes, shapes_cfg):
    ds = build_dataset(shapes_cfg, "train", seed=0)
    assert len(ds) == 24
    names = class_names(6)
    lines = [json.loads(line) for line in shapes["train_json"].read_text().splitlines()]
    for i in range(len(ds)):
        item = ds[i]
        _assert_sample_contract(item)
        phrases = item["target"]["phrases"]
        # TAO OD mode: every positive is in the caption, the rest of the label map fills up to max_labels.
        positives = {inst["category"] for inst in lines[i]["detection"]["instances"]}
        assert positives <= set(phrases)
        assert sorted(phrases) == sorted(names)


def test_max_labels_limits_negatives_but_keeps_positives(shapes, cfg_for):
    ds = build_dataset(cfg_for(shapes, max_labels=1), "train", seed=0)
    lines = [json.loads(line) for line in shapes["train_json"].read_text().splitlines()]
    for i in range(len(ds)):
        positives = {inst["category"] for inst in lines[i]["detection"]["instances"]}
        assert set(ds[i]["target"]["phrases"]) == positives


def test_boxes_match_the_annotations_without_random_geometry(shapes, cfg_for):
    aug = dict(scales=[80], train_random_resize=[80], train_random_crop_min=80, train_random_crop_max=80,
               random_resize_max_size=80, horizontal_flip_prob=0.0, fixed_padding=False)
    ds = build_dataset(cfg_for(shapes, augmentation=aug), "train", seed=0)
    line = json.loads(shapes["train_json"].read_text().splitlines()[5])
    target = ds[5]["target"]
    expected = sorted((inst["category"], *[round(v / 80, 3) for v in inst["bbox"]])
                      for inst in line["detection"]["instances"])
    got = []
    for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
        cx, cy, w, h = box
        got.append((target["phrases"][label], round(cx - w / 2, 3), round(cy - h / 2, 3),
                    round(cx + w / 2, 3), round(cy + h / 2, 3)))
    assert [g[0] for g in sorted(got)] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1:] for g in sorted(got)], [e[1:] for e in expected], atol=0.02)


def test_augmentation_is_deterministic_under_a_seed_and_varies_by_epoch(shapes_cfg):
    a = build_dataset(shapes_cfg, "train", seed=7)
    b = build_dataset(shapes_cfg, "train", seed=7)
    for i in range(4):
        assert torch.equal(a[i]["image"], b[i]["image"]) and a[i]["target"]["phrases"] == b[i]["target"]["phrases"]
    before = [a[i]["target"]["caption"] for i in range(len(a))]
    a.set_epoch(1)
    assert [a[i]["target"]["caption"] for i in range(len(a))] != before
    # Without an explicit seed, torch's RNG (what Lightning seeds) drives the randomness.
    unseeded = build_dataset(shapes_cfg, "train")
    torch.manual_seed(11)
    first = unseeded[2]
    torch.manual_seed(11)
    assert torch.equal(first["image"], unseeded[2]["image"])


def test_collate_pads_and_masks_real_pixels(shapes_cfg):
    ds = build_dataset(shapes_cfg, "train", seed=1)
    items = [ds[i] for i in range(6)]
    batch = collate_fn(items)
    assert batch["images"].shape[0] == 6 and batch["pixel_mask"].dtype == torch.bool
    assert batch["images"].shape[1:] == (3, 80, 80)  # fixed padding: max(scales) x random_resize_max_size
    for i, item in enumerate(items):
        h, w = item["target"]["size"]
        assert int(batch["pixel_mask"][i].sum()) == h * w
        assert bool(batch["pixel_mask"][i, h - 1, w - 1]) and not bool(batch["pixel_mask"][i, h:, :].any())
    assert batch["targets"] == [item["target"] for item in items]


def test_val_samples_use_all_categories_in_id_order(shapes, shapes_cfg):
    ds = build_dataset(shapes_cfg, "val")
    coco = json.loads(shapes["eval_json"].read_text())
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    assert ds.coco_gt["categories"] == coco["categories"]
    for i in range(len(ds)):
        item = ds[i]
        _assert_sample_contract(item)
        target = item["target"]
        assert target["phrases"] == names and target["category_ids"] == list(range(len(names)))
        image_id = target["image_id"]
        expected = sorted(a["category_id"] for a in coco["annotations"] if a["image_id"] == image_id)
        assert sorted(target["labels"].tolist()) == expected
        assert target["size"] == (80, 80) and target["orig_size"] == (80, 80)


def test_infer_dataset_reads_raw_images_and_captions(shapes, cfg_for):
    cfg = cfg_for(shapes, infer_data_sources={"image_dir": [str(shapes["infer_images"])],
                                              "captions": ["red circle . blue square", "red circle"]})
    ds = build_dataset(cfg, "infer")
    assert len(ds) == 3
    target = ds[0]["target"]
    assert target["phrases"] == ["red circle", "blue square"] and target["file_name"].endswith("infer_000.jpg")


def test_token_counter_matches_the_tokenizer_on_joined_captions():
    counter = token_counter(None)
    from gdino.data.captions import bundled_bert_uncased_tokenizer

    tokenizer = bundled_bert_uncased_tokenizer()
    phrases = ["red circle", "traffic light", "hair-drier", "person's umbrella", "Ünïcode façade", "a.b"]
    for k in range(1, len(phrases) + 1):
        caption = join_caption(phrases[:k])
        assert counter.caption_tokens(phrases[:k]) == len(tokenizer(caption)["input_ids"])


def test_fit_caption_drops_negatives_first_and_warns_before_dropping_positives(caplog):
    counter = token_counter(None)
    phrases = [f"negative number {i}" for i in range(30)] + ["the positive one"]
    fitted = fit_caption(phrases, {"the positive one"}, counter, max_text_len=20)
    assert "the positive one" in fitted.phrases and counter.caption_tokens(fitted.phrases) <= 20
    assert fitted.dropped_positives == []
    many_positives = [f"positive phrase {i}" for i in range(10)]
    with caplog.at_level("WARNING"):
        fitted = fit_caption(many_positives, set(many_positives), counter, max_text_len=12)
    assert fitted.dropped_positives and "dropped positive" in caplog.text
    assert counter.caption_tokens(fitted.phrases) <= 12


def test_od_caption_keeps_all_positives_beyond_max_labels():
    rng = np.random.default_rng(0)
    caption = build_od_caption(["a", "b", "c"], ["a", "b", "c", "d", "e"], 2, rng, token_counter(None), 256)
    assert sorted(caption.phrases) == ["a", "b", "c"]


def test_transform_primitives_move_boxes_with_pixels():
    from PIL import Image

    image = Image.new("RGB", (100, 50))
    s = Sample(image, np.array([[10, 5, 30, 25]], np.float32), np.array([0]))
    flipped = hflip(s)
    np.testing.assert_allclose(flipped.boxes, [[70, 5, 90, 25]])
    assert resized_hw(50, 100, 40, 60) == (30, 60)  # longer side capped at max_size
    small = resize(s, 25, None)
    assert small.image.size == (50, 25)
    np.testing.assert_allclose(small.boxes, [[5, 2.5, 15, 12.5]])
    cropped = random_size_crop(s, 10, 12, np.random.default_rng(0))
    assert cropped.image.width <= 12 and cropped.image.height <= 12
    assert len(cropped.boxes) == len(cropped.labels)
    settings = AugmentationSettings.from_config({"scales": [64], "horizontal_flip_prob": None})
    assert settings.scales == (64,) and settings.horizontal_flip_prob == 0.5


def test_generator_writes_the_tao_layout_reproducibly(tmp_path):
    a = generate(GenerateOptions(out_dir=tmp_path / "a", num_train=4, num_val=3, num_infer=1, image_size=64, seed=5))
    b = generate(GenerateOptions(out_dir=tmp_path / "b", num_train=4, num_val=3, num_infer=1, image_size=64, seed=5))
    c = generate(GenerateOptions(out_dir=tmp_path / "c", num_train=4, num_val=3, num_infer=1, image_size=64, seed=6))
    for name in ("train/images.tar.gz", "train/annotations_odvg.jsonl", "train/annotations_odvg_labelmap.json",
                 "eval/images.tar.gz", "eval/annotations.json", "eval/label_map.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert a["train_images"].read_bytes() != c["train_images"].read_bytes()
    label_map = json.loads(a["train_label_map"].read_text())
    assert list(label_map) == [str(i) for i in range(6)] and all(" " in n for n in label_map.values())
    coco = json.loads(a["eval_json"].read_text())
    assert [c["id"] for c in coco["categories"]] == list(range(6))
    assert min(ann["id"] for ann in coco["annotations"]) >= 1  # COCOeval treats annotation id 0 as unmatched


def test_build_dataset_rejects_an_unknown_split(shapes_cfg):
    with pytest.raises(ValueError):
        build_dataset(shapes_cfg, "holdout")


def test_datasets_pickle_for_spawned_loader_workers(shapes_cfg):
    import pickle

    for split in ("train", "val", "infer"):
        ds = build_dataset(shapes_cfg, split, **({"seed": 0} if split == "train" else {}))
        clone = pickle.loads(pickle.dumps(ds))
        assert torch.equal(clone[0]["image"], ds[0]["image"])


def test_a_dataloader_with_workers_yields_batches(shapes_cfg):
    ds = build_dataset(shapes_cfg, "train", seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_fn)
    batches = list(loader)
    assert sum(b["images"].shape[0] for b in batches) == len(ds)


def test_infer_phrases_can_come_from_a_classmap_file(shapes):
    cfg = {"dataset": {"infer_data_sources": {"image_dir": str(shapes["infer_images"]),
                                              "classmap": str(shapes["eval_label_map"])}}}
    assert build_dataset(cfg, "infer")[0]["target"]["phrases"] == class_names(6)


def test_every_path_may_be_an_fsspec_uri(shapes, cfg_for):
    import fsspec

    fs = fsspec.filesystem("memory")
    for key in ("train_images", "train_json", "train_label_map", "eval_images", "eval_json"):
        fs.pipe(f"/shapes-uri/{shapes[key].parent.name}/{shapes[key].name}", shapes[key].read_bytes())

    def uri(key: str) -> str:
        return f"memory://shapes-uri/{shapes[key].parent.name}/{shapes[key].name}"

    cfg = cfg_for(shapes, train_data_sources=[{"image_dir": uri("train_images"), "json_file": uri("train_json"),
                                               "label_map": uri("train_label_map")}],
                  val_data_sources={"image_dir": uri("eval_images"), "json_file": uri("eval_json")})
    local = build_dataset(cfg_for(shapes), "train", seed=4)
    remote = build_dataset(cfg, "train", seed=4)
    a, b = remote[1], local[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"]["boxes"], b["target"]["boxes"])
    assert a["target"]["caption"] == b["target"]["caption"]
    assert len(build_dataset(cfg, "val")) == 10
