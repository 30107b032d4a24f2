"""load_spec: files, overrides (dotted, list index, shorthand), typed errors, exit code 2 via the CLI."""
from __future__ import annotations

import logging

import pytest
import yaml

from cli.main import main
from gdino.config import ExperimentConfig
from gdino.errors import GdinoError, SpecError, SpecErrors
from gdino.spec import (
    SHORTHAND_KEYS,
    InvalidOptionError,
    MalformedSpecError,
    MathCondError,
    MissingValueError,
    OutOfBoundsError,
    UnknownKeyError,
    WrongTypeError,
    dump_spec,
    get_dotted,
    load_spec,
    parse_override,
    redact_uri,
    set_dotted,
)

from .conftest import REPO, TAO_DIR, requires_tao, tao_templates

OUR_TRAIN_TEMPLATE = REPO / "references" / "spec_template_train.yaml"


def _only_error(excinfo) -> SpecError:
    errors = excinfo.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# ----------------------------------------------------------------------------- TAO's own templates
@requires_tao
@pytest.mark.parametrize("path", tao_templates(), ids=lambda p: p.name)
def test_every_real_tao_template_loads_unchanged(path):
    raw = yaml.safe_load(path.read_text())
    cfg = load_spec(path)
    dumped = cfg.model_dump(mode="json")
    # every value the template sets survives loading
    for key, value in _leaves(raw):
        assert get_dotted(dumped, key) == value, key


@requires_tao
def test_tao_placeholders_survive_and_only_fail_for_the_action_that_needs_them():
    cfg = load_spec(TAO_DIR / "spec_template_evaluate.yaml")
    assert cfg.evaluate.checkpoint == "???" and cfg.dataset.eval_class_ids == [1]
    with pytest.raises(SpecErrors) as excinfo:
        load_spec(TAO_DIR / "spec_template_evaluate.yaml", action="evaluate")
    error = _only_error(excinfo)
    assert isinstance(error, MissingValueError) and error.key == "evaluate.checkpoint"
    # the deploy template evaluates an engine: no checkpoint needed
    load_spec(TAO_DIR / "spec_template_deploy_evaluate.yaml", action="evaluate")
    load_spec(TAO_DIR / "spec_template_evaluate.yaml", ["evaluate.checkpoint=/m.pth"], action="evaluate")


def _leaves(node, path=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, node


# ----------------------------------------------------------------------------- overrides
def test_dotted_list_index_and_shorthand_overrides():
    cfg = load_spec(OUR_TRAIN_TEMPLATE, [
        "train.optim.lr=1e-4", "dataset.train_data_sources[0].image_dir=/data/imgs",
        "dataset.train_data_sources[1].image_dir=/data/b", "dataset.train_data_sources[1].json_file=/data/b.jsonl",
        "num_epochs=3", "batch_size=2", "learning_rate=5e-5", "num_queries=30", "num_select=20",
        "max_text_len=64", "resume_checkpoint=/ckpt/last.pth", "model.return_interm_indices=[1, 2]",
        "inference.color_map={person: red}", "train.pretrained_model_path=",
    ])
    assert cfg.train.optim.lr == 5e-5  # the later override wins
    assert cfg.dataset.train_data_sources[0].image_dir == "/data/imgs"
    assert cfg.dataset.train_data_sources[1].json_file == "/data/b.jsonl"
    assert cfg.dataset.train_data_sources[1].label_map is None
    assert (cfg.train.num_epochs, cfg.dataset.batch_size) == (3, 2)
    assert (cfg.model.num_queries, cfg.model.num_select, cfg.model.max_text_len) == (30, 20, 64)
    assert cfg.train.resume_training_checkpoint_path == "/ckpt/last.pth"
    assert cfg.model.return_interm_indices == [1, 2]
    assert cfg.inference.color_map == {"person": "red"}
    assert cfg.train.pretrained_model_path == ""


def test_shorthand_keys_match_the_seed():
    assert SHORTHAND_KEYS == {
        "num_epochs": "train.num_epochs", "batch_size": "dataset.batch_size", "learning_rate": "train.optim.lr",
        "num_queries": "model.num_queries", "num_select": "model.num_select", "max_text_len": "model.max_text_len",
        "resume_checkpoint": "train.resume_training_checkpoint_path"}


def test_shorthand_at_top_level_of_a_mapping_and_dict_input_is_not_mutated():
    raw = {"num_epochs": 4, "train": {"optim": {"lr": 1e-3}}}
    cfg = load_spec(raw, ["train.optim.lr=2e-3"])
    assert cfg.train.num_epochs == 4 and cfg.train.optim.lr == 2e-3
    assert raw == {"num_epochs": 4, "train": {"optim": {"lr": 1e-3}}}


def test_set_and_get_dotted():
    tree: dict = {}
    set_dotted(tree, "a.b[0].c", 1)
    set_dotted(tree, "a.b[0].d", "x")
    set_dotted(tree, "a.b[1]", 5)
    assert tree == {"a": {"b": [{"c": 1, "d": "x"}, 5]}}
    assert get_dotted(tree, "a.b[0].d") == "x"
    assert get_dotted(tree, "a.b[2]", "missing") == "missing"
    assert get_dotted(tree, "a.z.y") is None
    with pytest.raises(MalformedSpecError):
        set_dotted(tree, "a.b[5]", 1)
    with pytest.raises(MalformedSpecError):
        set_dotted(tree, "a.b[0].c.e", 1)  # c holds a value, not a section


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=1e-4") == ("a.b", 1e-4)
    assert parse_override("a.b=true") == ("a.b", True)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=x=y") == ("a.b", "x=y")
    assert parse_override("learning_rate=0.1") == ("train.optim.lr", 0.1)


# ----------------------------------------------------------------------------- typed errors
@pytest.mark.parametrize("override, error_type, key, must_mention", [
    ("train.optim.lrr=1", UnknownKeyError, "train.optim.lrr", "did you mean train.optim.lr"),
    ("train.batch_size=2", UnknownKeyError, "train.batch_size", "did you mean dataset.batch_size"),
    ("num_epoch=2", UnknownKeyError, "num_epoch", "did you mean num_epochs"),
    ("model.num_queries=abc", WrongTypeError, "model.num_queries", "int"),
    ("dataset.train_data_sources=5", WrongTypeError, "dataset.train_data_sources", "list"),
    ("model.backbone=resnet_101", InvalidOptionError, "model.backbone", "resnet_18"),
    ("train.optim.lr=-1", OutOfBoundsError, "train.optim.lr", "[0.0, inf]"),
    ("model.num_select=5000", OutOfBoundsError, "model.num_select", "1000"),
    ("model.focal_gamma=0", MathCondError, "model.focal_gamma", "> 0.0"),
    ("dataset.augmentation.train_random_crop_max=300", MathCondError,
     "dataset.augmentation.train_random_crop_max", "train_random_crop_min"),
    ("train.num_epochs=???", MissingValueError, "train.num_epochs", "???"),
    ("train.optim.lr=[1", MalformedSpecError, "train.optim.lr", "YAML"),
    ("train..lr=1", MalformedSpecError, "train..lr", "dotted"),
])
def test_each_error_kind_is_typed_and_names_key_value_and_allowed(override, error_type, key, must_mention):
    with pytest.raises(SpecErrors) as excinfo:
        load_spec(OUR_TRAIN_TEMPLATE, [override])
    error = _only_error(excinfo)
    assert isinstance(error, error_type) and isinstance(error, SpecError)
    assert error.key == key
    assert must_mention in str(error)
    assert error.allowed


def test_all_problems_are_reported_at_once():
    with pytest.raises(SpecErrors) as excinfo:
        load_spec(OUR_TRAIN_TEMPLATE, ["train.optim.lr=-1", "model.nheads=x", "model.foo=1"])
    assert sorted(e.key for e in excinfo.value.errors) == ["model.foo", "model.nheads", "train.optim.lr"]


def test_malformed_yaml_reports_the_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("model:\n  backbone: resnet_18\ntrain:\n  optim: [1\n  lr: 2\n")
    with pytest.raises(SpecErrors) as excinfo:
        load_spec(spec)
    error = _only_error(excinfo)
    assert isinstance(error, MalformedSpecError) and "line 5" in str(error)


def test_non_mapping_and_missing_files_are_spec_errors(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecErrors, match="mapping"):
        load_spec(tmp_path / "list.yaml")
    with pytest.raises(SpecErrors, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_train_action_requires_a_train_source():
    with pytest.raises(SpecErrors) as excinfo:
        load_spec({}, action="train")
    assert _only_error(excinfo).key == "dataset.train_data_sources"
    load_spec(OUR_TRAIN_TEMPLATE, action="train")


def test_wandb_is_accepted_and_ignored_with_a_notice(caplog, monkeypatch):
    monkeypatch.setattr("gdino.spec._notices_shown", set())
    with caplog.at_level(logging.INFO, logger="gdino.spec"):
        cfg = load_spec({"wandb": {"enable": True, "project": "p"}})
        load_spec({"wandb": {"enable": True}})  # once per process, not once per load
    assert cfg.wandb.project == "p"
    notices = [r for r in caplog.records if "wandb" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()


# ----------------------------------------------------------------------------- secrets and output
def test_dump_spec_redacts_secrets_and_round_trips():
    cfg = load_spec(OUR_TRAIN_TEMPLATE, ["encryption_key=tlt_encode",
                                         "mlflow.tracking_uri=https://user:tok3n@mlflow.example/x"])
    text = dump_spec(cfg)
    assert "tlt_encode" not in text and "tok3n" not in text and "***" in text
    unredacted = dump_spec(cfg, redact=False)
    assert load_spec(yaml.safe_load(unredacted)) == cfg
    assert redact_uri("sqlite:///r/mlflow.db") == "sqlite:///r/mlflow.db"


def test_errors_never_show_the_encryption_key():
    with pytest.raises(SpecErrors) as excinfo:
        load_spec({"encryption_key": ["s3cr3t"]})
    assert "s3cr3t" not in str(excinfo.value)


# ----------------------------------------------------------------------------- the validate CLI
def test_validate_cli_prints_resolved_spec(capsys):
    assert main(["validate", "-e", str(OUR_TRAIN_TEMPLATE), "num_epochs=7", "encryption_key=k3y"]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)
    assert resolved["train"]["num_epochs"] == 7 and resolved["encryption_key"] == "***"
    ExperimentConfig.model_validate({**resolved, "encryption_key": ""})


@requires_tao
def test_validate_cli_exits_2_naming_the_key_and_bound(capsys):
    template = TAO_DIR / "spec_template_train.yaml"
    assert main(["validate", "-e", str(template), "train.optim.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "train.optim.lr" in err and "[0.0, inf]" in err and "Traceback" not in err


@pytest.mark.parametrize("overrides", [["train.optim.lrr=1"], ["model.nheads=x"], ["model.backbone=x"],
                                       ["model.focal_alpha=-1"], ["train.seed=-5"], ["a.b=[1"]])
def test_validate_cli_exit_code_2_for_each_error_kind(overrides, capsys):
    assert main(["validate", "-e", str(OUR_TRAIN_TEMPLATE), *overrides]) == 2
    assert "error:" in capsys.readouterr().err


def test_validate_cli_action_checks_required_values(capsys):
    evaluate = REPO / "references" / "spec_template_evaluate.yaml"
    assert main(["validate", "-e", str(evaluate)]) == 0
    assert main(["validate", "-e", str(evaluate), "--action", "evaluate"]) == 2
    assert "evaluate.checkpoint" in capsys.readouterr().err
    assert main(["validate", "-e", str(evaluate), "--action", "evaluate", "evaluate.checkpoint=/m.pth"]) == 0


def test_validate_cli_malformed_yaml_exit_2(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("train: {num_epochs: 2\n")
    assert main(["validate", "-e", str(spec)]) == 2
    assert "line" in capsys.readouterr().err


def test_spec_errors_are_gdino_errors_with_exit_code_2():
    with pytest.raises(GdinoError) as excinfo:
        load_spec({"model": {"x": 1}})
    assert excinfo.value.exit_code == 2


def test_automl_policy_off_override_survives_yaml_bool():
    """`automl_policy=off` is read by YAML as False: it must still mean 'off' (and `on` means 'auto')."""
    from gdino.spec import load_spec

    assert load_spec(None, ["automl_policy=off"]).automl_policy == "off"
    assert load_spec(None, ["automl_policy=on"]).automl_policy == "auto"
