"""From the command line, per checkpoint family: `grounding_dino evaluate` prints the load table (N/N per
part) and exits 0; the same file with one tensor removed exits non-zero naming that tensor."""
from __future__ import annotations

import logging
import re

import pytest
import torch
import yaml
from idea_reference import TINY
from reference_states import fixture_state, tao_names
from tiny_model import tiny_model_cfg

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def private_data_cache(tmp_path_factory, monkeypatch):
    """Archives extracted by evaluate go to this session's own cache, not the user's."""
    monkeypatch.setenv("GDINO_DATA_CACHE", str(tmp_path_factory.getbasetemp() / "gdino-cache"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from gdino.data.generate import GenerateOptions, generate

    out = tmp_path_factory.mktemp("shapes")
    generate(GenerateOptions(out_dir=out, num_train=2, num_val=2, num_infer=1, image_size=64, num_classes=2,
                             max_objects=1, seed=5))
    return out


def _spec(tmp_path, shapes, model: dict) -> str:
    spec = {"results_dir": str(tmp_path / "results"), "model": model,
            "dataset": {"test_data_sources": {"image_dir": str(shapes / "eval/images.tar.gz"),
                                              "json_file": str(shapes / "eval/annotations.json")},
                        "batch_size": 2, "workers": 1,
                        "augmentation": {"test_random_resize": 64, "random_resize_max_size": 64}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _evaluate(tmp_path, spec: str, checkpoint, capsys, caplog) -> tuple[int, str]:
    from cli.main import main

    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(["evaluate", "-e", spec, f"evaluate.checkpoint={checkpoint}", "--jobs_root",
                     str(tmp_path / "jobs")])
    return code, caplog.text + capsys.readouterr().err


def _model(cfg) -> dict:
    return {k: v for k, v in cfg.model_dump(mode="json").items() if v is not None}


def _assert_full_table(text: str) -> None:
    rows = re.findall(r"\s(backbone|text encoder|encoder|decoder|heads)\s+(\d+)/(\d+) tensors", text)
    assert {r[0] for r in rows} == {"backbone", "text encoder", "encoder", "decoder", "heads"}, text
    assert all(loaded == expected for _, loaded, expected in rows), text


def _check_family(tmp_path, spec, save, state, removed: str, capsys, caplog) -> None:
    save(state, tmp_path / "full")
    code, text = _evaluate(tmp_path, spec, tmp_path / "full", capsys, caplog)
    assert code == 0, text
    _assert_full_table(text)
    save({k: v for k, v in state.items() if k != removed}, tmp_path / "cut")
    code, text = _evaluate(tmp_path, spec, tmp_path / "cut", capsys, caplog)
    assert code != 0 and "not in the checkpoint" in text, text


def _torch_save(wrap=None):
    def save(state, path):
        torch.save(wrap(state) if wrap else state, path)
    return save


def test_ours_and_hf_from_the_cli(tmp_path, shapes, tiny_bert, capsys, caplog):
    from gdino.model.network import build_network

    cfg = tiny_model_cfg(tiny_bert)
    spec = _spec(tmp_path, shapes, _model(cfg))
    net = build_network(cfg, load_pretrained=False)
    ours = {f"net.{k}": v for k, v in net.state_dict().items()}
    _check_family(tmp_path, spec, _torch_save(lambda s: {"state_dict": s}), ours, "net.detector.model.level_embed",
                  capsys, caplog)
    from transformers import GroundingDinoForObjectDetection

    from gdino.model.network import hf_config

    hf = GroundingDinoForObjectDetection(hf_config(cfg)).state_dict()  # HF's own TimmBackbone resnet18 names
    _check_family(tmp_path, spec, _torch_save(), hf, "model.text_projection.weight", capsys, caplog)


def test_idea_and_tao_from_the_cli(tmp_path, shapes, tiny_bert, capsys, caplog):
    cfg = tiny_model_cfg(tiny_bert, backbone="swin_tiny_224_1k", **TINY)
    spec = _spec(tmp_path, shapes, _model(cfg))
    idea = fixture_state("idea_swint_tiny.json")
    _check_family(tmp_path, spec, _torch_save(lambda s: {"model": s}), idea, "feat_map.weight", capsys, caplog)
    _check_family(tmp_path, spec, _torch_save(lambda s: {"state_dict": s}), tao_names(idea),
                  "model.model.backbone.0.body.norm3.bias", capsys, caplog)
