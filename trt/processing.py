"""Pre- and post-processing shared by every deployment backend (PyTorch reference, ONNX Runtime, TensorRT).

TAO deploy's pipeline (notes/tao.md §4.3): the image is resized to the engine's H x W and normalised with
ImageNet mean/std; the caption (phrases joined " . ", closed with " .") is tokenised to 256 tokens outside
the graph; the sub-sentence mask and position ids come from the model's own rule; scoring is the mean token
probability over each phrase (row-normalised positive map), top-k `num_select` over queries x phrases,
boxes cxcywh -> xyxy in original pixels. Tokenisation and post-processing are the model package's
(gdino.model.text, gdino.model.postprocess), so every backend scores exactly as the PyTorch path does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def caption_of(phrases: Sequence[str]) -> str:
    return " . ".join(phrases) + " ."


@dataclass
class TextInputs:
    """TAO's text inputs for a batch: [B,T] ids/masks and the [B,T,T] sub-sentence mask."""

    input_ids: np.ndarray        # int64
    attention_mask: np.ndarray   # bool
    position_ids: np.ndarray     # int64
    token_type_ids: np.ndarray   # int64
    text_token_mask: np.ndarray  # bool

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "position_ids": self.position_ids, "token_type_ids": self.token_type_ids,
                "text_token_mask": self.text_token_mask}


def encode_phrases(tokenizer, phrases: Sequence[str], max_text_len: int) -> tuple[TextInputs, np.ndarray]:
    """One caption of `phrases` -> TAO's text inputs (padded to `max_text_len`, batch 1) and its positive map
    [num_phrases, max_text_len] with rows summing to 1 (mean token probability per phrase, as TAO scores).

    Tokenisation, sub-sentence mask, position ids and phrase spans are the model package's
    (gdino.model.text.tokenize_batch), so every backend sees what the PyTorch path sees.
    """
    from gdino.model.text import tokenize_batch

    batch = tokenize_batch(tokenizer, [caption_of(phrases)], [list(phrases)], max_text_len, pad_to_max=True)
    text = TextInputs(input_ids=batch.input_ids.long().numpy(), attention_mask=batch.attention_mask.bool().numpy(),
                      position_ids=batch.position_ids.long().numpy(),
                      token_type_ids=batch.token_type_ids.long().numpy(),
                      text_token_mask=batch.text_self_attention_masks.bool().numpy())
    return text, normalise_rows(batch.positive_maps[0].numpy())


def normalise_rows(pos_map: np.ndarray) -> np.ndarray:
    """Rows sum to 1; a phrase cut off by truncation keeps an all-zero row (it can never score), as in TAO."""
    pos_map = np.asarray(pos_map, dtype=np.float32)
    sums = pos_map.sum(axis=1, keepdims=True)
    return np.divide(pos_map, sums, out=np.zeros_like(pos_map), where=sums > 0)


def preprocess_image(image: Image.Image, height: int, width: int,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """RGB image -> float32 [3,H,W]: resized to the network input (no aspect-ratio padding, as TAO deploy)."""
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    normalised = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


@dataclass
class Detections:
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] phrase index
    boxes: np.ndarray   # [K,4] xyxy, original-image pixels


def postprocess(pred_logits: np.ndarray, pred_boxes: np.ndarray, positive_maps: Sequence[np.ndarray],
                orig_sizes: Sequence[tuple[int, int]], num_select: int) -> list[Detections]:
    """The model package's post-processing (gdino.model.postprocess, shared with the PyTorch path) on
    backend outputs."""
    import torch

    from gdino.model.postprocess import postprocess as shared_postprocess

    detections = []
    for logits, boxes, pos_map, size in zip(pred_logits, pred_boxes, positive_maps, orig_sizes):
        # one image at a time: images of a batch may carry captions with different phrase counts
        (result,) = shared_postprocess(torch.as_tensor(np.asarray(logits, dtype=np.float32))[None],
                                       torch.as_tensor(np.asarray(boxes, dtype=np.float32))[None],
                                       torch.as_tensor(np.asarray(pos_map, dtype=np.float32)),
                                       torch.as_tensor([size], dtype=torch.float32), num_select)
        detections.append(Detections(scores=result["scores"].numpy(), labels=result["labels"].numpy(),
                                     boxes=result["boxes"].numpy()))
    return detections
