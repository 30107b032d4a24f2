"""Secrets never reach params, tags, artifacts or logs: `redact` and the logging filter."""
from __future__ import annotations

import io
import logging

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gdino.redact import MASK, RedactingFilter, install_log_redaction, is_secret_key, redact, redact_text


def test_secret_keys_are_masked_at_any_depth() -> None:
    spec = {"encryption_key": "tlt_encode", "model": {"num_queries": 900},
            "dataset": {"hf_token": "hf_abc", "sources": [{"password": "pw1", "image_dir": "/data"}]},
            "mlflow": {"tracking_uri": "https://u:pw2@host:5000"}, "empty_token": ""}
    clean = redact(spec)
    assert clean["encryption_key"] == MASK and clean["dataset"]["hf_token"] == MASK
    assert clean["dataset"]["sources"][0] == {"password": MASK, "image_dir": "/data"}
    assert clean["mlflow"]["tracking_uri"] == "https://***@host:5000"
    assert clean["model"] == {"num_queries": 900} and clean["empty_token"] == ""
    assert spec["encryption_key"] == "tlt_encode"  # the input is not modified
    dumped = yaml.safe_dump(clean)
    assert not any(s in dumped for s in ("tlt_encode", "hf_abc", "pw1", "pw2"))


def test_hyperparameter_names_are_not_secrets() -> None:
    for name in ("dataset.max_text_len", "model.text_encoder_type", "train.optim.lr", "model.num_select",
                 "trial_id", "mlflow.parentRunId", "author"):
        assert not is_secret_key(name), name
    for name in ("encryption_key", "ENCRYPTION-KEY", "hf_token", "aws_secret_access_key", "db.password",
                 "api_key", "credentials"):
        assert is_secret_key(name), name


def test_secrets_inside_free_text() -> None:
    text = ("connect s3://AKIA:sEcReT@bucket/x and https://bob@host/p; token=tok123, "
            "\"encryption_key\": \"k-99\" password: 'a b' max_text_len=256 lr=0.1")
    clean = redact_text(text)
    for secret in ("sEcReT", "AKIA", "tok123", "k-99", "'a b'"):
        assert secret not in clean
    assert "s3://***@bucket/x" in clean and "https://***@host/p" in clean
    assert "max_text_len=256" in clean and "lr=0.1" in clean


@settings(max_examples=200, deadline=None)
@given(user=st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=12),
       password=st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_.~!$"),
                        min_size=4, max_size=20),
       scheme=st.sampled_from(["http", "https", "s3", "postgresql+psycopg2", "mysql"]))
def test_uri_passwords_never_survive(user: str, password: str, scheme: str) -> None:
    password = f"ZQ{password}"  # cannot occur in the rest of the line by chance
    clean = redact_text(f"uri={scheme}://{user}:{password}@db.example:5432/mlflow")
    assert password not in clean.replace("db.example:5432/mlflow", "")
    assert clean.endswith("@db.example:5432/mlflow")


def test_logging_filter_masks_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("hpo.tracking.test_redact")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    root_handler = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(root_handler)
    try:
        redactor = install_log_redaction()
        assert isinstance(redactor, RedactingFilter)
        handler.addFilter(redactor)
        logger.info("tracking at %s with encryption_key=%s", "https://u:pw-77@h", "key-55")
        try:
            raise RuntimeError("token=tok-66 rejected")
        except RuntimeError:
            logger.exception("failed")
        assert install_log_redaction() is redactor  # idempotent
    finally:
        logger.removeHandler(handler)
        logging.getLogger().removeHandler(root_handler)
        for name in ("gdino", "hpo", "trt"):
            logging.getLogger(name).removeFilter(redactor)
    output = stream.getvalue()
    assert "https://***@h" in output and "encryption_key=***" in output and "token=***" in output
    assert not any(s in output for s in ("pw-77", "key-55", "tok-66"))
