"""The Grounding DINO network: HF `GroundingDinoForObjectDetection` built from explicit sub-configs.

`build_network(model_cfg)` never passes a backbone or text-model *name* to transformers (that queries
the model hub): the HF config gets a `TimmBackboneConfig` and a `BertConfig` object, then the timm
backbone is swapped for `TimmNchwBackbone` and the text encoder weights are copied in.

`GroundingDinoNet.forward` takes the text inputs explicitly (input_ids, attention_mask, token_type_ids,
position_ids, text_self_attention_masks: what TAO's exported graph takes) and returns every decoder
layer's predictions plus the un-detached encoder top-k proposals that our criterion supervises.
`net.detector` is the HF model (for export and for HF-format weights).
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Iterator, Optional

import torch
from torch import nn

from gdino.model.backbone import BACKBONES, install_backbone, load_backbone_weights, timm_out_indices
from gdino.model.fields import check_model_config

log = logging.getLogger(__name__)


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    value = cfg.get(name, default) if isinstance(cfg, dict) else getattr(cfg, name, default)
    return default if value is None else value


def parse_log_scale(value: Any) -> Optional[str | float]:
    """'auto' | None | float (TAO's model.log_scale: 'none' and '' mean no scaling)."""
    if value is None or str(value).strip().lower() in ("none", ""):
        return None
    if str(value).strip().lower() == "auto":
        return "auto"
    return float(value)


class ContrastiveHead(nn.Module):
    """Vision-text similarity, optionally scaled and biased (MM-Grounding-DINO's head).

    log_scale 'auto' divides by sqrt(d); a number is the initial value of a learnable log-scale;
    None leaves the plain dot product (HF Grounding DINO). Padded tokens and the tail up to
    `max_text_len` are -inf, as in HF.
    """

    def __init__(self, max_text_len: int, log_scale: Optional[str | float], bias: bool) -> None:
        super().__init__()
        self.max_text_len = max_text_len
        self.auto_scale = log_scale == "auto"
        self.log_scale = (nn.Parameter(torch.tensor(float(log_scale)))
                          if isinstance(log_scale, float) else None)
        # prior probability 0.01, as detection heads trained with a focal loss start (MMDet's ContrastiveEmbed)
        self.bias = nn.Parameter(torch.tensor(-math.log((1 - 0.01) / 0.01))) if bias else None

    def forward(self, vision_hidden_state: torch.Tensor, text_hidden_state: torch.Tensor,
                text_token_mask: torch.BoolTensor) -> torch.Tensor:
        res = vision_hidden_state @ text_hidden_state.transpose(-1, -2)
        if self.auto_scale:
            res = res / math.sqrt(vision_hidden_state.shape[-1])
        if self.log_scale is not None:
            res = res * self.log_scale.exp()
        if self.bias is not None:
            res = res + self.bias
        res = res.masked_fill(~text_token_mask[:, None, :], float("-inf"))
        out = torch.full((*res.shape[:-1], self.max_text_len), float("-inf"), device=res.device, dtype=res.dtype)
        out[..., : res.shape[-1]] = res
        return out


def hf_config(model_cfg: Any):
    """The HF GroundingDinoConfig for `model.*` (explicit sub-config objects only)."""
    from transformers import GroundingDinoConfig, TimmBackboneConfig

    from gdino.model.text import load_text_config

    check_model_config(model_cfg)
    backbone = _get(model_cfg, "backbone", "swin_tiny_224_1k")
    indices = list(_get(model_cfg, "return_interm_indices", [1, 2, 3, 4]))
    backbone_config = TimmBackboneConfig(backbone=BACKBONES[backbone].timm_name, num_channels=3,
                                         out_indices=list(timm_out_indices(backbone, indices)))
    text_config = load_text_config(_get(model_cfg, "text_encoder_type", "bert-base-uncased"))
    text_config.max_position_embeddings = max(text_config.max_position_embeddings, 256)
    heads = int(_get(model_cfg, "nheads", 8))
    ffn = int(_get(model_cfg, "dim_feedforward", 2048))
    return GroundingDinoConfig(
        backbone_config=backbone_config, text_config=text_config,
        d_model=int(_get(model_cfg, "hidden_dim", 256)),
        num_queries=int(_get(model_cfg, "num_queries", 900)),
        num_feature_levels=int(_get(model_cfg, "num_feature_levels", 4)),
        encoder_layers=int(_get(model_cfg, "enc_layers", 6)), decoder_layers=int(_get(model_cfg, "dec_layers", 6)),
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        encoder_n_points=int(_get(model_cfg, "enc_n_points", 4)),
        decoder_n_points=int(_get(model_cfg, "dec_n_points", 4)),
        dropout=float(_get(model_cfg, "dropout_ratio", 0.0)),
        two_stage=_get(model_cfg, "two_stage_type", "standard") == "standard",
        embedding_init_target=bool(_get(model_cfg, "embed_init_tgt", True)),
        positional_embedding_temperature=int(_get(model_cfg, "pe_temperatureH", 20)),
        max_text_len=int(_get(model_cfg, "max_text_len", 256)),
        focal_alpha=float(_get(model_cfg, "focal_alpha", 0.25)),
        auxiliary_loss=bool(_get(model_cfg, "aux_loss", True)),
    )


@contextlib.contextmanager
def _given_text_masks(masks: torch.Tensor, position_ids: torch.Tensor) -> Iterator[None]:
    """Make HF's forward use our precomputed sub-sentence mask and position ids.

    HF recomputes them from input_ids inside `GroundingDinoModel.forward` through a module-level
    function; substituting that function keeps the masks a real input (as in TAO's exported graph)
    without copying HF's forward. Training is single-threaded per process, so the swap is safe.
    """
    import transformers.models.grounding_dino.modeling_grounding_dino as gdm

    original = gdm.generate_masks_with_special_tokens_and_transfer_map
    gdm.generate_masks_with_special_tokens_and_transfer_map = lambda input_ids, special_tokens: (masks, position_ids)
    try:
        yield
    finally:
        gdm.generate_masks_with_special_tokens_and_transfer_map = original


class GroundingDinoNet(nn.Module):
    """HF detector + explicit text inputs + per-layer and encoder outputs for our criterion."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.max_text_len = int(detector.config.max_text_len)
        self.num_queries = int(detector.config.num_queries)
        self.two_stage = bool(detector.config.two_stage)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor, position_ids: torch.Tensor,
                text_self_attention_masks: torch.Tensor, pixel_mask: Optional[torch.Tensor] = None) -> dict:
        if pixel_mask is not None:
            pixel_mask = pixel_mask.long()
        with _given_text_masks(text_self_attention_masks, position_ids):
            out = self.detector.model(pixel_values=pixel_values, input_ids=input_ids,
                                      token_type_ids=token_type_ids, attention_mask=attention_mask,
                                      pixel_mask=pixel_mask, return_dict=True)
        text_mask = attention_mask.bool()
        logits, boxes = self._decoder_predictions(out, text_mask)
        result = {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
                  "aux_outputs": [{"pred_logits": l, "pred_boxes": b} for l, b in zip(logits[:-1], boxes[:-1])],
                  "interm_outputs": self._encoder_topk(out) if self.two_stage else None,
                  "text_mask": self._pad_text_mask(text_mask)}
        return result

    def _decoder_predictions(self, out: Any, text_mask: torch.Tensor) -> tuple[list, list]:
        """Class logits and boxes of every decoder layer (HF computes them only inside its own loss)."""
        hidden = out.intermediate_hidden_states
        text = out.encoder_last_hidden_state_text
        logits, boxes = [], []
        for level in range(hidden.shape[1]):
            reference = out.init_reference_points if level == 0 else out.intermediate_reference_points[:, level - 1]
            reference = torch.special.logit(reference, eps=1e-5)
            logits.append(self.detector.class_embed[level](hidden[:, level], text, text_mask))
            delta = self.detector.bbox_embed[level](hidden[:, level])
            if reference.shape[-1] == 4:
                coord = delta + reference
            else:
                coord = torch.cat([delta[..., :2] + reference, delta[..., 2:]], dim=-1)
            boxes.append(coord.sigmoid())
        return logits, boxes

    def _encoder_topk(self, out: Any) -> dict:
        """The same top-k as the model's query selection, but *un-detached* so the encoder head learns."""
        enc_class, enc_coord = out.enc_outputs_class, out.enc_outputs_coord_logits
        topk = torch.topk(enc_class.max(-1)[0], self.num_queries, dim=1)[1]
        logits = torch.gather(enc_class, 1, topk.unsqueeze(-1).expand(-1, -1, enc_class.shape[-1]))
        coords = torch.gather(enc_coord, 1, topk.unsqueeze(-1).expand(-1, -1, 4))
        return {"pred_logits": logits, "pred_boxes": coords.sigmoid()}

    def _pad_text_mask(self, text_mask: torch.Tensor) -> torch.Tensor:
        padded = torch.zeros(text_mask.shape[0], self.max_text_len, dtype=torch.bool, device=text_mask.device)
        width = min(text_mask.shape[1], self.max_text_len)
        padded[:, :width] = text_mask[:, :width]
        return padded

    # ---------------------------------------------------------------------------- named parts
    @property
    def backbone(self) -> nn.Module:
        return self.detector.model.backbone.conv_encoder.model

    @property
    def text_backbone(self) -> nn.Module:
        return self.detector.model.text_backbone


def build_network(model_cfg: Any, *, load_pretrained: bool = True) -> GroundingDinoNet:
    """The network for `model.*`; `load_pretrained` loads text-encoder and backbone weights."""
    from transformers import GroundingDinoForObjectDetection

    from gdino.model.text import load_text_encoder_weights

    config = hf_config(model_cfg)
    detector = GroundingDinoForObjectDetection(config)
    backbone_name = _get(model_cfg, "backbone", "swin_tiny_224_1k")
    indices = list(_get(model_cfg, "return_interm_indices", [1, 2, 3, 4]))
    backbone = install_backbone(detector, backbone_name, timm_out_indices(backbone_name, indices))
    _install_contrastive_heads(detector, model_cfg)
    if load_pretrained:
        load_text_encoder_weights(detector.model.text_backbone, _get(model_cfg, "text_encoder_type"))
        if _get(model_cfg, "pretrained_backbone_path", ""):
            load_backbone_weights(backbone, _get(model_cfg, "pretrained_backbone_path"))
    return GroundingDinoNet(detector)


def _install_contrastive_heads(detector: nn.Module, model_cfg: Any) -> None:
    log_scale = parse_log_scale(_get(model_cfg, "log_scale", None))
    bias = bool(_get(model_cfg, "class_embed_bias", False))
    if log_scale is None and not bias:
        return  # HF's parameter-free dot product is exactly that
    max_len = int(detector.config.max_text_len)
    detector.class_embed = nn.ModuleList(ContrastiveHead(max_len, log_scale, bias)
                                         for _ in range(len(detector.class_embed)))
    if getattr(detector.model, "encoder_output_class_embed", None) is not None:
        detector.model.encoder_output_class_embed = ContrastiveHead(max_len, log_scale, bias)
