"""The built wheel works without the checkout: schemas, templates and skill_info travel inside it.

Build the wheel offline (`pip wheel --no-deps --no-build-isolation`) from a copy of the sources, install
it non-editable with `--no-deps` into a temporary `--target`, then, from a temporary working directory,
run an isolated interpreter (`python -I -S`: no checkout, no .pth files, so not the editable install
either) whose path is that target plus this environment's site-packages (the dependencies). There,
`grounding_dino automl space` prints the space of our packaged train schema and `train`'s policy
decision is the AutoML sweep, not plain training.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("cli", "gdino", "hpo", "trt", "pyproject.toml", "README.md")
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, **OFFLINE}
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel installed into a fresh --target folder (built from a copy: the checkout gets no build/)."""
    src, wheels, target = (tmp_path_factory.mktemp(n) for n in ("src", "wheels", "target"))
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src), cwd=src)
    (wheel,) = wheels.glob("gdino_automl-*.whl")
    _pip("install", "--no-deps", "--no-compile", "--target", str(target), str(wheel), cwd=src)
    return target


def _run_isolated(target: Path, cwd: Path, body: str) -> subprocess.CompletedProcess:
    """`body` under `python -I -S` with sys.path = target, then this environment's site-packages."""
    prelude = (f"import sys; sys.path.insert(0, {str(target)!r}); "
               f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(body)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_installed_wheel_runs_automl_space_and_decides_for_the_sweep(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "spec.yaml").write_text(yaml.safe_dump({"train": {"num_epochs": 4},
                                                    "automl": {"algorithm": "random", "seed": 3}}))
    done = _run_isolated(installed, work, """
        import contextlib, io, json
        from importlib import metadata

        import cli, gdino, hpo
        # the console script as the wheel declares it
        (script,) = [ep for ep in metadata.distribution("gdino-automl").entry_points if ep.name == "grounding_dino"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = script.load()(["automl", "space", "-e", "spec.yaml", "--sample", "2", "--format", "json"])
        from gdino.config import ExperimentConfig
        from hpo.policy import decide_policy
        from hpo.schema_reader import default_schema_path

        decision = decide_policy(ExperimentConfig())
        print(json.dumps({"code": code, "space": json.loads(out.getvalue()), "use_automl": decision.use_automl,
                          "reason": decision.reason, "files": [cli.__file__, gdino.__file__, hpo.__file__],
                          "schema": str(default_schema_path()), "script": script.value, "sys_path": sys.path}))
    """)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["script"] == "cli.main:main"
    for imported in report["files"] + [report["schema"]]:  # the wheel's copies, never the checkout's
        assert Path(imported).resolve().is_relative_to(installed.resolve()), imported
    assert str(REPO) not in report["sys_path"] and str(work) not in report["sys_path"]
    assert report["code"] == 0
    space = report["space"]
    assert space["seed"] == 3 and len(space["trials"]) == 2
    assert "train.optim.lr" in {row["parameter"] for row in space["parameters"]}
    assert report["use_automl"], report["reason"]
    assert report["reason"].startswith("AutoML sweep")
