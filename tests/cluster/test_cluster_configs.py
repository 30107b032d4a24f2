"""cluster.yaml is a valid Ray cluster-launcher config with a CPU head and a GPU worker type that
installs this package and documents shared storage and an MLflow server; the KubeRay RayJob runs
`grounding_dino train -e`."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def test_cluster_yaml_passes_rays_schema() -> None:
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(load("cluster.yaml"), schema)


def test_cluster_yaml_has_cpu_head_gpu_workers_and_installs_the_package() -> None:
    config = load("cluster.yaml")
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] > 0
    gpu_types = [n for n in nodes.values() if n["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(n["max_workers"] >= 1 for n in gpu_types)
    assert any("pip install" in c and "gdino-automl" in c for c in config["setup_commands"])


def test_cluster_yaml_documents_shared_storage_and_mlflow_server() -> None:
    text = (ROOT / "cluster.yaml").read_text()
    config = load("cluster.yaml")
    assert "automl.storage_path=/mnt/shared" in text
    assert any("mount" in c and "/mnt/shared" in c for c in config["initialization_commands"])
    assert any("mlflow server" in c for c in config["head_setup_commands"])
    assert "mlflow.tracking_uri=http://" in text


def test_rayjob_manifest_runs_the_train_action_on_gpu_workers() -> None:
    job = load("deploy/kuberay/rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["entrypoint"].startswith("grounding_dino train -e ")
    assert "automl.storage_path=/shared" in job["spec"]["entrypoint"]
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    workers = cluster["workerGroupSpecs"]
    assert any(w["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") for w in workers)
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["HF_HUB_OFFLINE"] == "1"


def test_docs_cover_laptop_cluster_and_kubernetes() -> None:
    text = (ROOT / "docs" / "cluster.md").read_text()
    for heading in ("## Laptop", "## Ray cluster", "## Kubernetes"):
        assert heading in text
