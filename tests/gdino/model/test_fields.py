"""The model.* support table: complete, refusals typed, markdown in sync."""
from __future__ import annotations

from pathlib import Path

import pytest

from gdino.config import ModelConfig
from gdino.errors import UnsupportedError
from gdino.model.fields import MODEL_FIELDS, check_model_config, markdown_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "model_fields.md"


def test_every_model_field_is_in_the_table():
    assert set(MODEL_FIELDS) == set(ModelConfig.model_fields)


def test_tao_defaults_are_all_supported():
    check_model_config(ModelConfig())


@pytest.mark.parametrize("change, field", [({"dilation": True}, "dilation"), ({"pre_norm": True}, "pre_norm"),
                                           ({"decoder_sa_type": "ca_label"}, "decoder_sa_type"),
                                           ({"hidden_dim": 100}, "hidden_dim"), ({"dec_layers": 1}, "dec_layers"),
                                           ({"pe_temperatureH": 10}, "pe_temperatureH"),
                                           ({"loss_types": ["masks"]}, "loss_types")])
def test_unsupported_values_are_refused_by_name(change, field):
    with pytest.raises(UnsupportedError, match=f"model.{field}"):
        check_model_config(ModelConfig(**change))


def test_markdown_doc_is_generated_from_the_table():
    assert DOC.read_text() == markdown_table()


def test_readme_carries_the_same_table():
    readme = (DOC.parents[1] / "README.md").read_text()
    block = readme.split("<!-- model-fields:start -->\n", 1)[1].split("\n<!-- model-fields:end -->", 1)[0]
    assert block == "\n".join(line for line in markdown_table().splitlines() if line.startswith("|"))
