"""Datasets built from the generated shapes: archives with a top-level folder, the validated config."""
from __future__ import annotations

import io
import json
import tarfile

from gdino.data import build_dataset


def test_archive_with_one_top_level_folder_is_found(shapes, tmp_path):
    """`tar czf images.tar.gz images/` puts every file under images/; file names stay relative."""
    wrapped = tmp_path / "images.tar.gz"
    with tarfile.open(shapes["eval_images"]) as src, tarfile.open(wrapped, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            member.name = f"images/{member.name}"
            dst.addfile(member, io.BytesIO(data))
    cfg = {"dataset": {"val_data_sources": {"image_dir": str(wrapped), "json_file": str(shapes["eval_json"])},
                       "augmentation": {"test_random_resize": 80}}, "model": {}}
    ds = build_dataset(cfg, "val")
    assert len(ds) == len(json.loads(shapes["eval_json"].read_text())["images"]) and ds[0]["image"].shape[0] == 3


def test_build_dataset_reads_the_validated_experiment_config(shapes):
    from gdino.data.generate import spec_overrides
    from gdino.spec import load_spec

    cfg = load_spec({}, [*spec_overrides(shapes), "dataset.augmentation.scales=[64,80]",
                         "dataset.augmentation.train_random_resize=[64,80]",
                         "dataset.augmentation.train_random_crop_min=48",
                         "dataset.augmentation.train_random_crop_max=80",
                         "dataset.augmentation.random_resize_max_size=80",
                         "dataset.augmentation.test_random_resize=80", "dataset.max_labels=3"])
    train = build_dataset(cfg, "train", seed=0)
    item = train[0]
    assert item["image"].shape == (3, 80, 80) and len(item["target"]["phrases"]) <= 3
    for split in ("val", "test"):
        assert build_dataset(cfg, split)[0]["target"]["category_ids"] == list(range(6))
    assert len(build_dataset(cfg, "infer")) == 3
