"""The Grounding DINO network: HF `GroundingDinoForObjectDetection` built from explicit sub-configs.

`build_network(model_cfg)` never passes a backbone or text-model *name* to transformers (that queries
the model hub): the HF config gets a `TimmBackboneConfig` and a `BertConfig` object, then the timm
backbone is swapped for ours (gdino.model.backbone) and the text encoder weights are copied in.

`GroundingDinoNet.forward` takes the text inputs explicitly (input_ids, attention_mask, token_type_ids,
position_ids, text_self_attention_masks: what TAO's exported graph takes) and returns every decoder
layer's predictions plus the un-detached encoder top-k proposals that our criterion supervises. It runs
HF's submodules itself (bit-identical to HF's forward without denoising) so that it can
  - pad images and pixel masks to the backbone's `size_divisibility` (any input size works; a forward
    pre-hook gives HF's own forward, used by export and the runtime backends, the same padding);
  - add DINO's denoising queries and their attention mask in training (`targets`, model.dn_number > 0;
    gdino.model.dn), returned apart as `dn_outputs`;
  - refine boxes as DINO/IDEA/TAO do ("look forward twice": layer l's box head learns from layer l+1).
`net.detector` is the HF model (for export and for HF-format weights).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from gdino.config import ModelConfig
from gdino.model.backbone import BACKBONES, install_backbone, load_backbone_weights, timm_out_indices
from gdino.model.dn import DnSettings, build_dn_queries
from gdino.model.fields import check_model_config

log = logging.getLogger(__name__)


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


def hf_config(model_cfg: ModelConfig):
    """The HF GroundingDinoConfig for `model.*` (explicit sub-config objects only)."""
    from transformers import GroundingDinoConfig, TimmBackboneConfig

    from gdino.model.text import load_text_config

    check_model_config(model_cfg)
    backbone = model_cfg.backbone
    indices = list(model_cfg.return_interm_indices)
    backbone_config = TimmBackboneConfig(backbone=BACKBONES[backbone].timm_name, num_channels=3,  # type: ignore[call-arg]
                                         out_indices=list(timm_out_indices(backbone, indices)))
    text_config = load_text_config(model_cfg.text_encoder_type)
    text_config.max_position_embeddings = max(text_config.max_position_embeddings, 256)
    heads = model_cfg.nheads
    ffn = model_cfg.dim_feedforward
    return GroundingDinoConfig(
        backbone_config=backbone_config, text_config=text_config,
        d_model=model_cfg.hidden_dim,
        num_queries=model_cfg.num_queries,
        num_feature_levels=model_cfg.num_feature_levels,
        encoder_layers=model_cfg.enc_layers, decoder_layers=model_cfg.dec_layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        encoder_n_points=model_cfg.enc_n_points,
        decoder_n_points=model_cfg.dec_n_points,
        dropout=float(model_cfg.dropout_ratio),
        two_stage=model_cfg.two_stage_type == "standard",
        embedding_init_target=model_cfg.embed_init_tgt,
        positional_embedding_temperature=model_cfg.pe_temperatureH,
        max_text_len=model_cfg.max_text_len,
        focal_alpha=float(model_cfg.focal_alpha),
        auxiliary_loss=model_cfg.aux_loss,
    )


def pad_to_multiple(pixel_values: torch.Tensor, pixel_mask: Optional[torch.Tensor],
                    multiple: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Zero-pad the bottom/right edges to a multiple of `multiple` and mask the padding out.

    What IDEA's and TAO's batches do (`NestedTensor`: padded pixels are invalid), so boxes stay relative to the
    real image (valid ratios) whatever the input size; a Swin patch/window grid needs e.g. 32. Nothing changes
    when the size already fits (then a missing mask stays missing, as before).
    """
    height, width = pixel_values.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return pixel_values, pixel_mask
    if pixel_mask is None:
        pixel_mask = torch.ones(pixel_values.shape[0], height, width, dtype=torch.long, device=pixel_values.device)
    padded_mask = nn.functional.pad(pixel_mask.long(), (0, pad_w, 0, pad_h), value=0)
    return nn.functional.pad(pixel_values, (0, pad_w, 0, pad_h), value=0.0), padded_mask.to(pixel_mask.dtype)


def backbone_size_divisibility(backbone: nn.Module) -> int:
    """What the backbone needs its input size to divide by (gdino.model.backbone exposes `size_divisibility`;
    the fallback covers a Swin whose stride-32 grid needs 32, and convolutional backbones, which need nothing)."""
    value = getattr(backbone, "size_divisibility", None)
    if value is not None:
        return max(1, int(value))
    return 32 if getattr(backbone, "channels_last", False) else 1


def _pad_hf_inputs(module: nn.Module, args: tuple, kwargs: dict, *, multiple: int) -> tuple[tuple, dict]:
    """Forward pre-hook on the HF `GroundingDinoModel`: the export, inference and evaluate paths call the HF
    detector directly, and get the same padding as `GroundingDinoNet.forward`."""
    if args:  # positional pixel_values (HF's own callers pass keywords)
        pixel_values, rest = args[0], args[1:]
        padded, mask = pad_to_multiple(pixel_values, kwargs.get("pixel_mask"), multiple)
        return (padded, *rest), ({**kwargs, "pixel_mask": mask} if mask is not None else kwargs)
    pixel_values = kwargs.get("pixel_values")
    if pixel_values is None:
        return args, kwargs
    padded, mask = pad_to_multiple(pixel_values, kwargs.get("pixel_mask"), multiple)
    return args, {**kwargs, "pixel_values": padded, "pixel_mask": mask}


class GroundingDinoNet(nn.Module):
    """HF detector + explicit text inputs + per-layer and encoder outputs for our criterion.

    `forward` runs HF's submodules (text encoder, backbone, encoder, query selection, decoder layers, heads)
    in HF's order, so without denoising its outputs equal HF's own forward bit for bit; it adds what HF's
    forward cannot: the padding the backbone needs, DN queries (training with `targets`), and DINO's
    "look forward twice" box refinement.
    """

    # HF's GroundingDinoForObjectDetection; typed Any because its submodules are reached by attribute name
    # (nn.Module.__getattr__ would type each of them `Tensor | Module`)
    detector: Any
    label_enc: Optional[nn.Embedding]
    allow_partial_load: bool  # model.allow_partial_load, set by build_network

    def __init__(self, detector: Any, dn: Optional[DnSettings] = None) -> None:
        super().__init__()
        self.detector = detector
        self.max_text_len = int(detector.config.max_text_len)
        self.num_queries = int(detector.config.num_queries)
        self.two_stage = bool(detector.config.two_stage)
        self.dn = dn or DnSettings()
        # phrase index -> DN content query; TAO's `label_enc` (dn_labelbook_size + 1 rows, labelbook = max_text_len)
        self.label_enc = (nn.Embedding(self.max_text_len + 1, int(detector.config.d_model))
                          if self.dn.builds_label_embedding else None)
        self.size_divisibility = backbone_size_divisibility(self.backbone)
        detector.model.register_forward_pre_hook(
            functools.partial(_pad_hf_inputs, multiple=self.size_divisibility), with_kwargs=True)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor, position_ids: torch.Tensor,
                text_self_attention_masks: torch.Tensor, pixel_mask: Optional[torch.Tensor] = None,
                targets: Optional[Sequence[dict]] = None) -> dict:
        """targets (training only): per image `boxes` [N,4] cxcywh and `labels` [N]; they add DN queries when
        `model.dn_number > 0` and `use_dn`. Inference and export never pass them."""
        if pixel_mask is not None:
            pixel_mask = pixel_mask.long()
        pixel_values, pixel_mask = pad_to_multiple(pixel_values, pixel_mask, self.size_divisibility)
        text = self._encode_text(input_ids, attention_mask, token_type_ids, position_ids, text_self_attention_masks)
        vision = self._vision_levels(pixel_values, pixel_mask)
        memory, memory_text = self._encode(vision, text)
        target, reference, selection = self._select_queries(vision, memory, memory_text, text.token_mask)
        dn = None
        if self.training and targets is not None and self.dn.enabled:
            assert self.label_enc is not None  # dn.enabled implies dn_number > 0, which builds it
            dn = build_dn_queries(targets, self.dn, self.label_enc, self.num_queries, self.max_text_len)
            dn = dn if dn.pad_size else None  # no box in the batch: nothing to denoise
        if dn is not None:
            target = torch.cat([dn.content.to(target.dtype), target], dim=1)
            reference = torch.cat([dn.reference.to(reference.dtype), reference], dim=1)
        hidden, references = self._decode(target, reference, vision, memory, memory_text, text.token_mask,
                                          dn.attn_mask if dn is not None else None)
        logits, boxes = self._decoder_predictions(hidden, references, memory_text, text.token_mask)
        if self.label_enc is not None and self.training:
            # keep the DN embedding in the graph when no DN query was built (no boxes, use_dn off): DDP
            # expects a gradient for every parameter (TAO adds label_enc.weight[0, 0] * 0.0 the same way)
            logits[-1] = logits[-1] + self.label_enc.weight[0, 0] * 0.0
        result: dict[str, Any] = {}
        if dn is not None:
            pad = dn.pad_size
            dn_logits, dn_boxes = [x[:, :pad] for x in logits], [x[:, :pad] for x in boxes]
            logits, boxes = [x[:, pad:] for x in logits], [x[:, pad:] for x in boxes]
            result["dn_outputs"] = {
                "pred_logits": dn_logits[-1], "pred_boxes": dn_boxes[-1],
                "aux_outputs": [{"pred_logits": l, "pred_boxes": b} for l, b in zip(dn_logits[:-1], dn_boxes[:-1])]}
            result["dn_meta"] = {"group_size": dn.group_size, "num_groups": dn.num_groups, "pad_size": pad}
        result.update({
            "pred_logits": logits[-1], "pred_boxes": boxes[-1],
            "aux_outputs": [{"pred_logits": l, "pred_boxes": b} for l, b in zip(logits[:-1], boxes[:-1])],
            "interm_outputs": self._encoder_topk(selection) if selection is not None else None,
            "text_mask": self._pad_text_mask(text.token_mask)})
        return result

    # ------------------------------------------------------------------ the steps of HF's GroundingDinoModel.forward
    def _encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                     position_ids: torch.Tensor, self_attention_masks: torch.Tensor) -> "_Text":
        """BERT with the sub-sentence mask and phrase-restarting positions given as inputs (TAO's interface),
        truncated to max_text_len as HF does, then projected to d_model."""
        model = self.detector.model
        token_mask = attention_mask.bool()
        width = self.max_text_len
        if self_attention_masks.shape[1] > width:
            self_attention_masks = self_attention_masks[:, :width, :width]
            position_ids, input_ids = position_ids[:, :width], input_ids[:, :width]
            token_type_ids, token_mask = token_type_ids[:, :width], token_mask[:, :width]
        if self_attention_masks.ndim == 3:
            self_attention_masks = self_attention_masks[:, None, :, :]
        hidden = model.text_backbone(input_ids, self_attention_masks, token_type_ids, position_ids,
                                     return_dict=True).last_hidden_state
        return _Text(model.text_projection(hidden), token_mask, self_attention_masks, position_ids)

    def _vision_levels(self, pixel_values: torch.Tensor, pixel_mask: Optional[torch.Tensor]) -> "_Vision":
        """Backbone levels + extra strided levels, projected to d_model and flattened for the encoder."""
        model, config = self.detector.model, self.detector.config
        if pixel_mask is None:
            pixel_mask = torch.ones(pixel_values.shape[0], *pixel_values.shape[-2:], dtype=torch.long,
                                    device=pixel_values.device)
        features, positions = model.backbone(pixel_values, pixel_mask)
        maps = [model.input_proj_vision[level](source) for level, (source, _) in enumerate(features)]
        masks = [mask for _, mask in features]
        for level in range(len(maps), config.num_feature_levels):
            source = model.input_proj_vision[level](features[-1][0] if level == len(features) else maps[-1])
            mask = nn.functional.interpolate(pixel_mask[None].float(), size=source.shape[-2:]).to(torch.bool)[0]
            maps.append(source)
            masks.append(mask)
            positions.append(model.backbone.position_embedding(source, mask).to(source.dtype))
        shapes = [tuple(m.shape[-2:]) for m in maps]
        flat = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        flat_mask = torch.cat([m.flatten(1) for m in masks], 1)
        flat_pos = torch.cat([p.flatten(2).transpose(1, 2) + model.level_embed[level].view(1, 1, -1)
                              for level, p in enumerate(positions)], 1)
        spatial = torch.as_tensor(shapes, dtype=torch.long, device=flat.device)
        starts = torch.cat((spatial.new_zeros((1,)), spatial.prod(1).cumsum(0)[:-1]))
        ratios = torch.stack([model.get_valid_ratio(m, dtype=flat.dtype) for m in masks], 1)
        return _Vision(flat, flat_mask, flat_pos, spatial, shapes, starts, ratios)

    def _encode(self, vision: "_Vision", text: "_Text") -> tuple[torch.Tensor, torch.Tensor]:
        out = self.detector.model.encoder(
            vision_features=vision.features, vision_attention_mask=~vision.mask,
            vision_position_embedding=vision.position, spatial_shapes=vision.spatial_shapes,
            spatial_shapes_list=vision.shapes, level_start_index=vision.level_start,
            valid_ratios=vision.valid_ratios, text_features=text.features, text_attention_mask=~text.token_mask,
            text_position_embedding=None, text_self_attention_masks=~text.self_attention_masks.squeeze(1),
            text_position_ids=text.position_ids, return_dict=True)
        return out.last_hidden_state_vision, out.last_hidden_state_text

    def _select_queries(self, vision: "_Vision", memory: torch.Tensor, memory_text: torch.Tensor,
                        token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Optional[tuple]]:
        """Language-guided query selection (two-stage): the top-k encoder proposals become the (detached)
        reference boxes; content queries are learned embeddings (embed_init_tgt) or the selected features."""
        model, config = self.detector.model, self.detector.config
        batch = memory.shape[0]
        if not config.two_stage:
            target = model.query_position_embeddings.weight.unsqueeze(0).repeat(batch, 1, 1)
            return target, model.reference_points.weight.unsqueeze(0).repeat(batch, 1, 1).sigmoid(), None
        queries, proposals = model.generate_encoder_output_proposals(memory, ~vision.mask, vision.shapes)
        enc_class = model.encoder_output_class_embed(queries, memory_text, token_mask)
        enc_coord = model.encoder_output_bbox_embed(queries) + proposals
        topk = torch.topk(enc_class.max(-1)[0], self.num_queries, dim=1)[1]
        reference = torch.gather(enc_coord, 1, topk.unsqueeze(-1).repeat(1, 1, 4)).detach().sigmoid()
        if config.embedding_init_target:
            target = model.query_position_embeddings.weight.unsqueeze(0).repeat(batch, 1, 1)
        else:
            target = torch.gather(queries, 1, topk.unsqueeze(-1).repeat(1, 1, config.d_model)).detach()
        return target, reference, (enc_class, enc_coord, topk)

    def _decode(self, target: torch.Tensor, reference: torch.Tensor, vision: "_Vision", memory: torch.Tensor,
                memory_text: torch.Tensor, token_mask: torch.Tensor,
                self_attn_mask: Optional[torch.Tensor]) -> tuple[list, list]:
        """HF's decoder layers with iterative box refinement, for any number of queries (HF's own decoder
        forward sizes its text mask by config.num_queries, so it cannot take DN queries).

        Returns the normed hidden state of every layer and the reference boxes each layer's prediction is built
        on: [initial (detached), refined after layer 0 (*un-detached*), ...]. The next layer itself runs on the
        detached refinement; the prediction of layer l+1 adds its delta to the un-detached one, so layer l's
        box head also learns from layer l+1's loss ("look forward twice", DINO §3.5; IDEA's
        GroundingDINO/TAO `transformer.py` decoder keeps `new_reference_points` un-detached for the heads).
        """
        from transformers.models.grounding_dino.modeling_grounding_dino import encode_sinusoidal_position_embedding

        decoder, config = self.detector.model.decoder, self.detector.config
        queries = target.shape[1]
        dtype = memory_text.dtype
        text_mask = (~token_mask)[:, None, None, :].repeat(1, config.decoder_attention_heads, queries, 1)
        text_mask = text_mask.to(dtype) * torch.finfo(dtype).min
        attn_mask = None
        if self_attn_mask is not None:
            attn_mask = torch.zeros(self_attn_mask.shape, dtype=target.dtype, device=target.device)
            attn_mask = attn_mask.masked_fill(self_attn_mask, torch.finfo(target.dtype).min)[None, None]
        hidden_states, references, normed = target, [reference], []
        for index, layer in enumerate(decoder.layers):
            if reference.shape[-1] == 4:
                sampling_reference = reference[:, :, None] * torch.cat([vision.valid_ratios] * 2, -1)[:, None]
            else:
                sampling_reference = reference[:, :, None] * vision.valid_ratios[:, None]
            query_pos = decoder.reference_points_head(encode_sinusoidal_position_embedding(
                sampling_reference[:, :, 0, :], num_pos_feats=config.d_model // 2))
            hidden_states = layer(
                hidden_states=hidden_states, position_embeddings=query_pos, reference_points=sampling_reference,
                spatial_shapes=vision.spatial_shapes, spatial_shapes_list=vision.shapes,
                level_start_index=vision.level_start, vision_encoder_hidden_states=memory,
                vision_encoder_attention_mask=vision.mask, text_encoder_hidden_states=memory_text,
                text_encoder_attention_mask=text_mask, self_attn_mask=attn_mask, output_attentions=False)[0]
            delta = decoder.bbox_embed[index](hidden_states)
            previous = torch.special.logit(reference, eps=1e-5)
            if reference.shape[-1] == 4:
                refined = (delta + previous).sigmoid()
            else:
                refined = torch.cat([delta[..., :2] + previous, delta[..., 2:]], -1).sigmoid()
            references.append(refined)  # un-detached: for the next layer's prediction
            reference = refined.detach()
            normed.append(decoder.layer_norm(hidden_states))
        return normed, references

    def _decoder_predictions(self, hidden: list, references: list, memory_text: torch.Tensor,
                             text_mask: torch.Tensor) -> tuple[list, list]:
        """Class logits and boxes of every decoder layer: layer l's box is its head's delta on the reference it
        started from, references[l] (un-detached from layer l-1's refinement: look forward twice)."""
        logits, boxes = [], []
        for level, state in enumerate(hidden):
            reference = torch.special.logit(references[level], eps=1e-5)
            logits.append(self.detector.class_embed[level](state, memory_text, text_mask))
            delta = self.detector.bbox_embed[level](state)
            if reference.shape[-1] == 4:
                coord = delta + reference
            else:
                coord = torch.cat([delta[..., :2] + reference, delta[..., 2:]], dim=-1)
            boxes.append(coord.sigmoid())
        return logits, boxes

    def _encoder_topk(self, selection: tuple) -> dict:
        """The model's own top-k proposals, but *un-detached* so the encoder head learns."""
        enc_class, enc_coord, topk = selection
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


@dataclass
class _Text:
    features: torch.Tensor              # [B, T, d_model]
    token_mask: torch.Tensor            # [B, T] bool, True = real token
    self_attention_masks: torch.Tensor  # [B, 1, T, T] bool, True = may attend (sub-sentence mask)
    position_ids: torch.Tensor          # [B, T]


@dataclass
class _Vision:
    features: torch.Tensor        # [B, S, d_model] all levels flattened
    mask: torch.Tensor            # [B, S] bool, True = real pixel
    position: torch.Tensor        # [B, S, d_model] position + level embedding
    spatial_shapes: torch.Tensor  # [L, 2]
    shapes: list                  # [(h, w)] per level
    level_start: torch.Tensor     # [L]
    valid_ratios: torch.Tensor    # [B, L, 2]


def build_network(model_cfg: ModelConfig, *, load_pretrained: bool = True,
                  load_text_encoder: Optional[bool] = None) -> GroundingDinoNet:
    """The network for `model.*`; `load_pretrained` loads text-encoder and backbone weights
    (`load_text_encoder` alone: the text encoder only, e.g. to check a checkpoint that left it out)."""
    from transformers import GroundingDinoForObjectDetection

    from gdino.model.text import load_text_encoder_weights

    config = hf_config(model_cfg)
    detector = GroundingDinoForObjectDetection(config)
    backbone = install_backbone(detector, model_cfg.backbone, list(model_cfg.return_interm_indices))
    _install_contrastive_heads(detector, model_cfg)
    allow_partial = model_cfg.allow_partial_load
    if load_pretrained if load_text_encoder is None else load_text_encoder:
        load_text_encoder_weights(detector.model.text_backbone, model_cfg.text_encoder_type)
    if load_pretrained and model_cfg.pretrained_backbone_path:
        load_backbone_weights(backbone, model_cfg.pretrained_backbone_path, allow_partial=allow_partial)
    net = GroundingDinoNet(detector, DnSettings.from_config(model_cfg))
    net.allow_partial_load = allow_partial  # read by gdino.model.weights.load_weights
    return net


def _install_contrastive_heads(detector: Any, model_cfg: ModelConfig) -> None:
    log_scale = parse_log_scale(model_cfg.log_scale)
    bias = model_cfg.class_embed_bias
    if log_scale is None and not bias:
        return  # HF's parameter-free dot product is exactly that
    max_len = int(detector.config.max_text_len)
    detector.class_embed = nn.ModuleList(ContrastiveHead(max_len, log_scale, bias)
                                         for _ in range(len(detector.class_embed)))
    if getattr(detector.model, "encoder_output_class_embed", None) is not None:
        detector.model.encoder_output_class_embed = ContrastiveHead(max_len, log_scale, bias)
