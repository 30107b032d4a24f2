"""Pre- and post-processing shared by every deployment backend (PyTorch reference, ONNX Runtime, TensorRT).

TAO deploy's pipeline (notes/tao.md §4.3): the image is resized to the engine's H x W and normalised with
ImageNet mean/std; the caption (phrases joined " . ", closed with " .") is tokenised to 256 tokens outside
the graph; the sub-sentence mask and position ids come from the model's own rule; scoring is the mean token
probability over each phrase (row-normalised positive map), top-k `num_select` over queries x phrases,
boxes cxcywh -> xyxy in original pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# [CLS], [SEP], ".", "?" and [PAD] end a phrase (bert-base-uncased ids; HF's SPECIAL_TOKENS + padding).
PHRASE_DELIMITERS = (101, 102, 1012, 1029, 0)


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


def tokenize_captions(tokenizer, captions: Sequence[str], max_text_len: int) -> TextInputs:
    """Pad/truncate to `max_text_len` (TAO fixes T at 256) and derive the masks as the model would."""
    import torch

    from trt.patches import text_masks_from_ids

    enc = tokenizer(list(captions), padding="max_length", truncation=True, max_length=max_text_len,
                    return_tensors="pt")
    input_ids = enc["input_ids"].long()
    text_token_mask, position_ids = text_masks_from_ids(input_ids)
    token_type_ids = enc.get("token_type_ids", torch.zeros_like(input_ids))
    return TextInputs(input_ids=input_ids.numpy(), attention_mask=enc["attention_mask"].bool().numpy(),
                      position_ids=position_ids.long().numpy(), token_type_ids=token_type_ids.long().numpy(),
                      text_token_mask=text_token_mask.bool().numpy())


def positive_map(input_ids: np.ndarray, num_phrases: int) -> np.ndarray:
    """[num_phrases, T]: phrase k covers the k-th run of tokens between delimiters, rows sum to 1.

    A phrase cut off by truncation gets an all-zero row (it can never score), as in TAO.
    """
    rows = np.zeros((num_phrases, input_ids.shape[-1]), dtype=np.float32)
    phrase, inside = -1, False
    for t, token in enumerate(input_ids.tolist()):
        if token in PHRASE_DELIMITERS:
            inside = False
            continue
        if not inside:
            phrase, inside = phrase + 1, True
        if phrase >= num_phrases:
            break
        rows[phrase, t] = 1.0
    sums = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, sums, out=np.zeros_like(rows), where=sums > 0)


def preprocess_image(image: Image.Image, height: int, width: int,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """RGB image -> float32 [3,H,W]: resized to the network input (no aspect-ratio padding, as TAO deploy)."""
    resized = image.convert("RGB").resize((width, height), Image.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


@dataclass
class Detections:
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] phrase index
    boxes: np.ndarray   # [K,4] xyxy, original-image pixels


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def postprocess(pred_logits: np.ndarray, pred_boxes: np.ndarray, positive_maps: Sequence[np.ndarray],
                orig_sizes: Sequence[tuple[int, int]], num_select: int) -> list[Detections]:
    """Per image: phrase scores = sigmoid(token logits) @ pos_map^T, top `num_select` over queries x phrases."""
    results = []
    for logits, boxes, pos_map, (height, width) in zip(pred_logits, pred_boxes, positive_maps, orig_sizes):
        prob = _sigmoid(logits.astype(np.float32)) @ pos_map.T  # [Q, P]
        flat = prob.reshape(-1)
        k = min(num_select, flat.size)
        top = np.argpartition(-flat, k - 1)[:k]
        top = top[np.argsort(-flat[top], kind="stable")]
        query, label = np.divmod(top, prob.shape[1])
        cx, cy, w, h = boxes[query].astype(np.float32).T
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        xyxy *= np.asarray([width, height, width, height], dtype=np.float32)
        results.append(Detections(scores=flat[top], labels=label, boxes=xyxy))
    return results
