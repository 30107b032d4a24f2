"""Promotion of a sweep's best trial against a real MLflow sqlite store and real ONNX Runtime.

The sweep directories are written the way hpo.sweep writes them (sweep.json via SweepSetup, ledger.jsonl
via Ledger, trials/<id>/spec.yaml) around two tiny Grounding DINO checkpoints A and B. The evaluation data
is the generated val images labelled with A's own detections, so A scores high and B low on it: that
gives the champion comparison a real, deterministic order without training.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.timeout(300)]

ENGINE_HELPERS = Path(__file__).resolve().parents[2] / "gdino" / "engine" / "tiny_run.py"
MODEL_NAME = "gdino_promote_test"
SECRET = "tlt-s3cr3t-4711"  # encryption_key: must never reach best_model/ or the MLflow store


def _tiny_run():
    spec = importlib.util.spec_from_file_location("gdino_tiny_run", ENGINE_HELPERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save_checkpoint(cfg, seed: int, path: Path) -> Path:
    import torch

    from gdino.model.network import build_network

    torch.manual_seed(seed)
    net = build_network(cfg.model, load_pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def _pseudo_labels(cfg, checkpoint: Path, source: dict, out: Path) -> Path:
    """`source`'s images labelled with the checkpoint's own 3 best boxes per image (ONNX Runtime path)."""
    from gdino.data import sources
    from gdino.data.datasets import load_image
    from trt.actions import build_detector
    from trt.export import export_onnx

    cfg = cfg.model_copy(deep=True)
    cfg.export.checkpoint, cfg.export.onnx_file = str(checkpoint), str(out.parent / "labeller.onnx")
    onnx_file = export_onnx(cfg, overwrite=True)
    spec = cfg.model_dump(mode="json")
    spec["model"]["num_select"] = 3
    detector = build_detector(cfg.model_validate(spec), "onnx", str(onnx_file), "evaluate")
    coco = json.loads(Path(source["json_file"]).read_text())
    root = sources.resolve_image_dir(source["image_dir"])
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    ids = [c["id"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    annotations = []
    for image in coco["images"]:
        dets = detector.detect([load_image(root / image["file_name"])], names)[0]
        for label, (x1, y1, x2, y2) in zip(dets.labels, dets.boxes):
            x1, y1 = max(float(x1), 0.0), max(float(y1), 0.0)
            x2, y2 = min(float(x2), image["width"]), min(float(y2), image["height"])
            if x2 - x1 > 1 and y2 - y1 > 1:
                annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": ids[int(label)],
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    assert annotations, "the labeller must find boxes"
    out.write_text(json.dumps({**coco, "annotations": annotations}))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data, tiny text encoder, checkpoints A (labeller) and B, a base spec and a shared MLflow store."""
    import os

    from gdino.data.generate import GenerateOptions, generate
    from gdino.spec import load_spec

    root = tmp_path_factory.mktemp("promote")
    previous_cache = os.environ.get("GDINO_DATA_CACHE")
    os.environ["GDINO_DATA_CACHE"] = str(root / "cache")
    helpers = _tiny_run()
    data = root / "shapes"
    generate(GenerateOptions(out_dir=data, num_train=4, num_val=4, num_infer=1, image_size=64, num_classes=3,
                             max_objects=2, seed=3))
    spec = helpers.tiny_spec(data, helpers.make_tiny_bert(root / "tiny-bert"), root / "results")
    spec["export"] = {"input_height": 64, "input_width": 64, "batch_size": -1}
    spec["encryption_key"] = SECRET
    cfg = load_spec(spec)
    a = _save_checkpoint(cfg, 1, root / "ckpts" / "a" / "model.ckpt")
    b = _save_checkpoint(cfg, 2, root / "ckpts" / "b" / "model.ckpt")
    val = spec["dataset"]["val_data_sources"]
    labels = _pseudo_labels(cfg, a, val, root / "labels_of_a.json")
    spec["dataset"]["test_data_sources"] = {"image_dir": val["image_dir"], "json_file": str(labels)}
    spec["mlflow"] = {"tracking_uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", "experiment_name": "promote"}
    (root / "mlflow").mkdir()
    spec["automl"] = {"registered_model_name": MODEL_NAME, "metric": "val_mAP50"}
    yield {"root": root, "spec": spec, "a": a, "b": b, "uri": spec["mlflow"]["tracking_uri"]}
    if previous_cache is None:
        os.environ.pop("GDINO_DATA_CACHE", None)
    else:
        os.environ["GDINO_DATA_CACHE"] = previous_cache


def make_sweep(world, name: str, trials: list[tuple[str, float, Path]], spec: dict | None = None) -> Path:
    """A finished sweep dir as hpo.sweep leaves it: sweep.json, ledger.jsonl, trials/<id>/spec.yaml and each
    trial's checkpoint dir (a copy of the given weights file)."""
    import shutil

    from hpo.sweep.engine import SweepSetup
    from hpo.sweep.ledger import Ledger

    base = spec or world["spec"]
    sweep_dir = world["root"] / "sweeps" / name
    sweep_dir.mkdir(parents=True)
    SweepSetup(sweep_dir=str(sweep_dir), base_spec=base, automl=base["automl"], metric="val_mAP50", mode="max",
               algorithm="random", mlflow=base["mlflow"]).save()
    ledger = Ledger(sweep_dir, "val_mAP50", "max")
    for trial_id, score, weights in trials:
        trial_dir = sweep_dir / "trials" / trial_id
        ckpt_dir = trial_dir / "checkpoints" / "epoch_0002"
        ckpt_dir.mkdir(parents=True)
        shutil.copy(weights, ckpt_dir / "model.ckpt")
        (trial_dir / "spec.yaml").write_text(yaml.safe_dump({**base, "results_dir": str(trial_dir)}))
        ledger.append("start", trial_id, config={"train.optim.lr": 1e-3})
        ledger.append("result", trial_id, epoch=1, value=score / 2, checkpoint=None)
        ledger.append("result", trial_id, epoch=2, value=score, checkpoint=str(ckpt_dir))
        ledger.append("complete", trial_id)
    return sweep_dir


def _client(world):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=world["uri"])


def _alias_version(client, alias: str) -> str:
    return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)


def _track_trial_runs(world, sweep_dir: Path, trial_id: str) -> str:
    """The parent/child runs hpo.tracking leaves for a sweep (same tags), so the source run can be found."""
    import mlflow

    mlflow.set_tracking_uri(world["uri"])
    experiment = mlflow.set_experiment("promote")
    client = _client(world)
    parent = client.create_run(experiment.experiment_id, tags={"sweep_id": sweep_dir.name, "gdino.run_type": "sweep"})
    child = client.create_run(experiment.experiment_id, tags={
        "sweep_id": sweep_dir.name, "trial_id": trial_id, "gdino.run_type": "trial",
        "mlflow.parentRunId": parent.info.run_id})
    return child.info.run_id


# The tests below share one registry and run in order: first champion, better, worse, failure.

def test_first_promotion_writes_best_model_onnx_and_makes_a_champion(world):
    import onnxruntime

    from hpo.promote import promote_sweep

    sweep = make_sweep(world, "sweep1", [("t_b", 0.30, world["b"]), ("t_a", 0.10, world["a"])])
    source_run = _track_trial_runs(world, sweep, "t_b")
    result = promote_sweep(sweep)

    assert result.trial_id == "t_b"  # the ledger's best score wins, whatever the test data says
    best = Path(world["spec"]["results_dir"]) / "best_model"
    assert Path(result.best_model_dir) == best
    for name in ("model.pth", "model.onnx", "spec.yaml", "recommendation_t_b.yaml", "promotion.json"):
        assert (best / name).is_file(), name
    assert not [p for p in best.parent.iterdir() if p.name.startswith(".best_model")]  # no staging left
    assert yaml.safe_load((best / "recommendation_t_b.yaml").read_text())["config"] == {"train.optim.lr": 1e-3}
    session = onnxruntime.InferenceSession(result.onnx_file, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()][0] == "inputs"
    assert result.evaluation_split == "test"
    assert result.engine_file is None and "TensorRT" in (result.engine_skipped or "")

    assert (best / "model.onnx").stat().st_nlink == 2  # one set of bytes shared with MLflow's copy
    client = _client(world)
    version = client.get_model_version(MODEL_NAME, result.model_version)
    assert _alias_version(client, "champion") == result.model_version
    assert version.tags["sweep_id"] == "sweep1" and version.tags["trial_id"] == "t_b"
    assert version.tags["source_run_id"] == source_run == result.source_run_id
    assert float(version.tags["eval_AP50"]) == pytest.approx(result.evaluation["AP50"])
    assert version.tags["eval_dataset_hash"] == result.dataset_hash
    assert client.get_run(result.promotion_run_id).data.tags["mlflow.parentRunId"] != ""
    assert "champion: moved" in result.summary()
    assert set(result.step_seconds) >= {"select", "stage", "export", "evaluate", "engine", "publish", "register",
                                        "champion"}
    print(result.summary(), result.step_seconds)


def test_the_encryption_key_reaches_neither_best_model_nor_mlflow(world):
    best = Path(world["spec"]["results_dir"]) / "best_model"
    store = world["root"] / "mlflow"
    written = [p for p in [*best.rglob("*"), *store.rglob("*")] if p.is_file()]
    assert any(p.name == "mlflow.db" for p in written) and any(p.name == "spec.yaml" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []
    assert "encryption_key" in (best / "spec.yaml").read_text()  # the key stays, masked


def test_a_better_model_takes_champion_and_the_old_one_keeps_previous(world):
    from hpo.promote import promote_sweep

    client = _client(world)
    old = _alias_version(client, "champion")
    result = promote_sweep(make_sweep(world, "sweep2", [("t_a", 0.20, world["a"])]))

    assert result.champion.moved, result.champion.reason
    assert result.evaluation["AP50"] > result.champion.previous_score  # A is scored on its own labels
    assert _alias_version(client, "champion") == result.model_version != old
    assert _alias_version(client, "previous") == old


def test_a_worse_model_is_registered_but_does_not_move_the_champion(world):
    from hpo.promote import promote_sweep

    client = _client(world)
    champion, previous = _alias_version(client, "champion"), _alias_version(client, "previous")
    result = promote_sweep(make_sweep(world, "sweep3", [("t_b", 0.90, world["b"])]))  # high sweep score, worse model

    assert not result.champion.moved
    assert "does not beat" in result.champion.reason
    assert client.get_model_version(MODEL_NAME, result.model_version).tags["trial_id"] == "t_b"
    assert (_alias_version(client, "champion"), _alias_version(client, "previous")) == (champion, previous)


def test_promoting_the_same_sweep_again_reuses_its_registered_version(world):
    from hpo.promote import promote_sweep

    client = _client(world)
    versions = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    champion = _alias_version(client, "champion")
    result = promote_sweep(world["root"] / "sweeps" / "sweep2")  # the champion's own sweep, by hand

    assert result.model_version == champion
    assert result.champion.reason == "already the champion"
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == versions


def test_a_corrupt_checkpoint_leaves_the_champion_and_best_model_untouched(world):
    from hpo.promote import PromotionError, promote_sweep

    client = _client(world)
    champion = _alias_version(client, "champion")
    versions = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    best = Path(world["spec"]["results_dir"]) / "best_model"
    before = (best / "promotion.json").read_text()
    corrupted = world["root"] / "corrupted.ckpt"
    corrupted.write_bytes(b"not a checkpoint")

    with pytest.raises(PromotionError) as caught:
        promote_sweep(make_sweep(world, "sweep4", [("t_bad", 0.99, corrupted)]))

    assert caught.value.step == "stage"  # staging reads the checkpoint to write best_model/model.pth
    assert _alias_version(client, "champion") == champion
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == versions
    assert (best / "promotion.json").read_text() == before  # the previous best_model, complete
    assert not [p for p in best.parent.iterdir() if p.name.startswith(".best_model")]


def test_a_champion_scored_on_other_data_is_re_evaluated_on_the_current_data(world):
    from hpo.promote import promote_sweep

    spec = json.loads(json.dumps(world["spec"]))
    spec["dataset"].pop("test_data_sources")  # evaluate on val: other data than the champion's tag
    result = promote_sweep(make_sweep(world, "sweep5", [("t_b", 0.5, world["b"])], spec=spec))

    assert result.evaluation_split == "val"
    assert "re-evaluated" in result.champion.reason


def test_without_tracking_nothing_is_registered(world):
    from hpo.promote import promote_sweep

    client = _client(world)
    versions = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    result = promote_sweep(make_sweep(world, "sweep6", [("t_a", 0.5, world["a"])]), tracking=False)

    assert result.model_version is None and Path(result.onnx_file).is_file()
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == versions


def test_a_sweep_without_a_finished_trial_fails_at_select(world, tmp_path):
    from hpo.promote import PromotionError, promote_sweep
    from hpo.sweep.engine import SweepSetup

    SweepSetup(sweep_dir=str(tmp_path), base_spec=world["spec"], automl=world["spec"]["automl"]).save()
    with pytest.raises(PromotionError) as caught:
        promote_sweep(tmp_path)
    assert caught.value.step == "select"
