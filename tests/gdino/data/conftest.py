"""Shared fixtures: a small generated shapes dataset and a private extraction cache per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from gdino.data.generate import GenerateOptions, generate

SMALL_AUG = dict(scales=[64, 80], train_random_resize=[64, 80], train_random_crop_min=48, train_random_crop_max=80,
                 random_resize_max_size=80, test_random_resize=80, fixed_padding=True, horizontal_flip_prob=0.5)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "gdino-cache"
    monkeypatch.setenv("GDINO_DATA_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("shapes")
    return generate(GenerateOptions(out_dir=out, num_train=24, num_val=10, num_infer=3, image_size=80, seed=3))


def make_cfg(paths: dict[str, Path], **dataset_overrides) -> dict:
    dataset = {
        "train_data_sources": [{"image_dir": str(paths["train_images"]), "json_file": str(paths["train_json"]),
                                "label_map": str(paths["train_label_map"])}],
        "val_data_sources": {"image_dir": str(paths["eval_images"]), "json_file": str(paths["eval_json"])},
        "test_data_sources": {"image_dir": str(paths["eval_images"]), "json_file": str(paths["eval_json"])},
        "infer_data_sources": {"image_dir": [str(paths["infer_images"])], "captions": ["red circle", "blue square"]},
        "max_labels": 50, "augmentation": dict(SMALL_AUG),
    }
    dataset.update(dataset_overrides)
    return {"dataset": dataset, "model": {"max_text_len": 256}}


@pytest.fixture
def cfg_for():
    """`cfg_for(paths, **dataset_overrides)` -> a spec dict pointing at a generated dataset."""
    return make_cfg


@pytest.fixture
def shapes_cfg(shapes) -> dict:
    return make_cfg(shapes)
