"""`grounding_dino dataset generate` -> `dataset check`, through the real CLI entry point."""
from __future__ import annotations

import yaml

from cli.main import main as cli_main


def test_generate_then_check_passes(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert cli_main(["dataset", "generate", str(out), "--num-train", "6", "--num-val", "4", "--num-infer", "2",
                     "--image-size", "64", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    overrides = [line.strip().strip("\\").strip().strip("'") for line in printed.splitlines() if "=" in line]
    assert any(o.startswith("dataset.train_data_sources=") for o in overrides)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": {"max_text_len": 256}}))
    assert cli_main(["dataset", "check", "-e", str(spec), *overrides]) == 0
    report = capsys.readouterr().out
    assert "6 images" in report and "4 images" in report and "dataset check: OK" in report
    for sub in ("train/images.tar.gz", "train/annotations_odvg.jsonl", "train/annotations_odvg_labelmap.json",
                "eval/images.tar.gz", "eval/annotations.json"):
        assert (out / sub).is_file(), sub


def test_generate_rejects_nonsense_arguments(tmp_path, capsys):
    assert cli_main(["dataset", "generate", str(tmp_path / "x"), "--image-size", "8"]) == 2
    assert "--image-size" in capsys.readouterr().err
    assert cli_main(["dataset", "generate", str(tmp_path / "x"), "--num-classes", "99"]) == 2
    assert "--num-classes" in capsys.readouterr().err
    assert cli_main(["dataset", "generate", str(tmp_path / "x"), "--object-size", "0.5", "0.1"]) == 2
    assert "--object-size" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
