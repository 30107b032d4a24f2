"""IDEA's own GroundingDINO model code, built tiny on CPU, as the reference for the IDEA/TAO equivalence.

The code comes from the `rf-groundingdino` wheel (PyPI, pure Python: a packaged copy of
IDEA-Research/GroundingDINO's `groundingdino/` sources; its CUDA kernel is optional and IDEA falls back to
PyTorch's grid_sample path). It is NOT a test dependency: `available()` is False unless the package is
importable, e.g. after
    pip download --no-deps rf-groundingdino && unzip rf_groundingdino-*.whl -d /tmp/rfgd
    pip install --target /tmp/rfgd-deps --no-deps addict yapf
    export GDINO_IDEA_REFERENCE=/tmp/rfgd:/tmp/rfgd-deps
Two shims keep IDEA's 2023 code running on transformers 5 without changing what it computes for the
detector: `cv2` (imported by IDEA's visualizer only) is stubbed, and IDEA's `BertModelWarper` (which calls
BERT internals transformers 5 removed) is replaced by one that keeps its tensor names (`bert.embeddings`,
`bert.encoder`, `bert.pooler`) and runs HF's BertModel with IDEA's sub-sentence mask and position ids.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The tiny configuration shared by the reference and our network (IDEA config/GroundingDINO_SwinT_OGC.py
# with small transformer sizes; IDEA hard-codes 256 text position features, so hidden_dim stays 256).
TINY = dict(hidden_dim=256, nheads=8, enc_layers=1, dec_layers=2, dim_feedforward=64, num_queries=12,
            max_text_len=32)
CAPTION = "red circle . blue square ."


def _add_paths() -> None:
    for path in reversed([p for p in os.environ.get("GDINO_IDEA_REFERENCE", "").split(os.pathsep) if p]):
        if path not in sys.path:
            sys.path.insert(0, path)
    if "cv2" not in sys.modules:
        sys.modules["cv2"] = types.ModuleType("cv2")


def available() -> bool:
    _add_paths()
    try:
        import addict  # noqa: F401  (IDEA's SLConfig)
        import groundingdino.models.GroundingDINO.groundingdino  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure: the reference is not installed here
        return False
    return True


class _BertWarper(nn.Module):
    """IDEA's BertModelWarper tensor names; forward = HF BertModel with the 3-D sub-sentence mask."""

    def __init__(self, bert_model: nn.Module) -> None:
        super().__init__()
        self.config = bert_model.config
        self.embeddings = bert_model.embeddings
        self.encoder = bert_model.encoder
        self.pooler = bert_model.pooler
        self._bert = [bert_model]  # not a submodule: its tensors are the three above

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, **_: Any):
        if attention_mask is not None and attention_mask.ndim == 3:  # IDEA's [B, T, T] -> [B, 1, T, T]
            attention_mask = attention_mask[:, None, :, :]
        return self._bert[0](input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, return_dict=True)


def build_idea_model(text_encoder: Path, backbone: str = "swin_T_224_1k") -> nn.Module:
    """IDEA's `build_groundingdino` with the TINY sizes and a local BERT folder (with weights)."""
    _add_paths()
    import groundingdino.models.GroundingDINO.groundingdino as gd

    gd.BertModelWarper = _BertWarper
    args = types.SimpleNamespace(
        backbone=backbone, position_embedding="sine", pe_temperatureH=20, pe_temperatureW=20,
        return_interm_indices=[1, 2, 3], backbone_freeze_keywords=None, enc_layers=TINY["enc_layers"],
        dec_layers=TINY["dec_layers"], pre_norm=False, dim_feedforward=TINY["dim_feedforward"],
        hidden_dim=TINY["hidden_dim"], dropout=0.0, nheads=TINY["nheads"], num_queries=TINY["num_queries"],
        query_dim=4, num_patterns=0, num_feature_levels=4, enc_n_points=4, dec_n_points=4,
        two_stage_type="standard", two_stage_bbox_embed_share=False, two_stage_class_embed_share=False,
        transformer_activation="relu", dec_pred_bbox_embed_share=True, dn_box_noise_scale=1.0,
        dn_label_noise_ratio=0.5, dn_labelbook_size=2000, embed_init_tgt=True, max_text_len=TINY["max_text_len"],
        text_encoder_type=str(text_encoder), use_text_enhancer=True, use_fusion_layer=True, use_checkpoint=False,
        use_transformer_ckpt=False, use_text_cross_attention=True, text_dropout=0.0, fusion_dropout=0.0,
        fusion_droppath=0.1, sub_sentence_present=True, dilation=False, lr_backbone=1e-5, masks=False)
    return gd.build_groundingdino(args).eval()


@torch.no_grad()
def idea_outputs(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """IDEA's forward on one image (no padding) and CAPTION."""
    out = model(image, captions=[CAPTION])
    return {"pred_logits": out["pred_logits"], "pred_boxes": out["pred_boxes"]}
