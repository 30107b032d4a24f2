"""The Lightning module: network + criterion + optimizer groups + COCO validation.

Logs `train_loss`, `lr`, and at each validation `val_loss`, `val_mAP`, `val_mAP50` (COCO stats[0] and
stats[1] from gdino.metrics, against the validation COCO ground truth; `dataset.eval_class_ids`
honoured).
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import pytorch_lightning as pl
import torch

from gdino.engine.validation import gather_per_image
from gdino.model.criterion import CriterionSettings, SetCriterion
from gdino.model.network import build_network
from gdino.model.postprocess import postprocess, to_coco_detections
from gdino.model.text import load_tokenizer, tokenize_batch

log = logging.getLogger(__name__)

# TAO module-name keywords (backbone_names, linear_proj_names, train.freeze) -> our parameter names.
TAO_NAME_ALIASES: dict[str, str] = {
    "backbone.0": "detector.model.backbone.",
    "backbone": "detector.model.backbone.",
    "bert": "detector.model.text_backbone.",
    "transformer.encoder": "detector.model.encoder.",
    "transformer.decoder": "detector.model.decoder.",
    "input_proj": "detector.model.input_proj_vision",
    "feat_map": "detector.model.text_projection",
    "transformer.enc_output": "detector.model.enc_output",
}


# HF module names whose TAO/IDEA counterpart is named differently, so that TAO's substring keywords catch what
# they catch in TAO: HF's decoder query-position MLP `reference_points_head` is TAO's `ref_point_head`, which
# TAO's linear_proj_names keyword "reference_points" does not match (IDEA GroundingDINO transformer.py;
# HF convert_grounding_dino_to_hf.py maps ref_point_head -> reference_points_head).
HF_TO_TAO_MODULE_NAMES: dict[str, str] = {
    ".decoder.reference_points_head.": ".decoder.ref_point_head.",
}


def tao_style_name(name: str) -> str:
    """Our parameter name with the HF module names that TAO spells differently replaced by TAO's."""
    for ours, tao in HF_TO_TAO_MODULE_NAMES.items():
        name = name.replace(ours, tao)
    return name


def matches(name: str, keywords: list[str]) -> bool:
    """TAO's rule (a keyword is a substring of the parameter name), on TAO's module names: keywords that name a
    TAO module (backbone.0, bert, ...) are translated to ours, parameter names spelled differently in HF to TAO's."""
    name = tao_style_name(name)
    return any(TAO_NAME_ALIASES.get(k, k) in name for k in keywords)


class GroundingDinoModule(pl.LightningModule):
    def __init__(self, spec: dict, *, coco_gt: Optional[dict] = None) -> None:
        super().__init__()
        from gdino.config import ExperimentConfig
        from gdino.redact import redact

        # hparams land in every checkpoint and in hparams.yaml: never the encryption_key or URI credentials
        self.save_hyperparameters({"spec": redact(spec)})
        self.cfg = ExperimentConfig.model_validate(spec)
        self.net = build_network(self.cfg.model)
        self.criterion = SetCriterion(CriterionSettings.from_config(self.cfg.model))
        self.tokenizer = load_tokenizer(self.cfg.model.text_encoder_type)
        self.coco_gt = coco_gt
        self._val_detections: dict[int, list[dict]] = {}
        self._val_losses: list[float] = []
        self._apply_freeze()

    # ------------------------------------------------------------------------------ steps
    def forward_batch(self, batch: dict, *, with_targets: bool = False) -> tuple[dict, Any]:
        """with_targets: the ground truth goes to the network too (denoising queries, training only)."""
        targets = batch["targets"]
        text = tokenize_batch(self.tokenizer, [t["caption"] for t in targets], [t["phrases"] for t in targets],
                              self.net.max_text_len).to(self.device)
        outputs = self.net(batch["images"], **text.model_inputs(), pixel_mask=batch["pixel_mask"],
                           targets=self._targets(batch) if with_targets else None)
        return outputs, text

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs, text = self.forward_batch(batch, with_targets=True)
        loss, parts = self.criterion(outputs, self._targets(batch), text.positive_maps)
        size = len(batch["targets"])
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=False, on_epoch=True, batch_size=size,
                 sync_dist=True)
        lr = self.optimizers().param_groups[0]["lr"]  # type: ignore[union-attr]  # one optimizer here
        self.log("lr", lr, on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        outputs, text = self.forward_batch(batch)
        loss, _ = self.criterion(outputs, self._targets(batch), text.positive_maps)
        self._val_losses.append(float(loss))
        self.log("val_loss", loss.detach(), on_epoch=True, batch_size=len(batch["targets"]), sync_dist=True)
        targets = batch["targets"]
        results = [postprocess(outputs["pred_logits"][i:i + 1].detach().cpu(),
                               outputs["pred_boxes"][i:i + 1].detach().cpu(), text.positive_maps[i].cpu(),
                               [t["orig_size"]], self.cfg.model.num_select)[0]
                   for i, t in enumerate(targets)]
        for target, result in zip(targets, results):
            category_ids = target.get("category_ids") or list(range(len(target["phrases"])))
            self._val_detections[int(target["image_id"])] = to_coco_detections([result], [target["image_id"]],
                                                                               [category_ids])

    def on_validation_epoch_start(self) -> None:
        self._val_detections, self._val_losses = {}, []

    def on_validation_epoch_end(self) -> None:
        detections = gather_per_image(self._val_detections)
        if self.coco_gt is None:
            return
        from gdino.metrics.coco import evaluate_detections

        metrics = evaluate_detections(self.coco_gt, detections, cat_ids=self.cfg.dataset.eval_class_ids)
        self.log("val_mAP", max(float(metrics["AP"]), 0.0), sync_dist=False, rank_zero_only=False)
        self.log("val_mAP50", max(float(metrics["AP50"]), 0.0), sync_dist=False, rank_zero_only=False)

    def _targets(self, batch: dict) -> list[dict]:
        return [{"boxes": t["boxes"].to(self.device), "labels": t["labels"].to(self.device)}
                for t in batch["targets"]]

    # ------------------------------------------------------------------------------ optimizer
    def parameter_groups(self) -> list[dict]:
        """TAO's three groups: base at lr, backbone_names at lr_backbone, linear_proj_names at lr * mult."""
        optim, model = self.cfg.train.optim, self.cfg.model
        base, backbone, linear = [], [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            if matches(name, list(model.backbone_names)):
                backbone.append(param)
            elif matches(name, list(model.linear_proj_names)):
                linear.append(param)
            else:
                base.append(param)
        groups = [{"params": base, "lr": optim.lr, "name": "base"},
                  {"params": backbone, "lr": optim.lr_backbone, "name": "backbone"},
                  {"params": linear, "lr": optim.lr * optim.lr_linear_proj_mult, "name": "linear_proj"}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        optim = self.cfg.train.optim
        groups = self.parameter_groups()
        if optim.optimizer == "SGD":
            optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        if optim.lr_scheduler == "StepLR":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, optim.lr_step_size),
                                                        gamma=optim.lr_decay)
        else:
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(optim.lr_steps),
                                                             gamma=optim.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def _apply_freeze(self) -> None:
        keywords = list(self.cfg.train.freeze)
        if not self.cfg.model.train_backbone:
            keywords.append("backbone.0")
        if not keywords:
            return
        frozen = 0
        for name, param in self.named_parameters():
            if matches(name, keywords):
                param.requires_grad_(False)
                frozen += param.numel()
        if frozen == 0:
            log.warning("train.freeze %s matched no parameter", keywords)

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        for part in getattr(dataset, "datasets", [dataset]):
            if hasattr(part, "set_epoch"):
                part.set_epoch(self.current_epoch)
