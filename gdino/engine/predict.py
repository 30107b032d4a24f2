"""Batched prediction with a trained network: the common part of evaluate and inference."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import torch

from gdino.model.postprocess import postprocess
from gdino.model.text import tokenize_batch

if TYPE_CHECKING:
    from gdino.config import ExperimentConfig
    from gdino.model.network import GroundingDinoNet


def checkpoint_of(cfg: ExperimentConfig, action: str) -> str:
    from gdino.errors import CheckpointError

    path = getattr(getattr(cfg, action), "checkpoint", "") or ""
    if not path or path == "???":
        raise CheckpointError(f"{action}.checkpoint is not set",
                              hint=f"pass {action}.checkpoint=<results_dir>/model_epoch_XXX_step_XXXXX.pth")
    return path


def loader_for(cfg: ExperimentConfig, dataset: Any, action: str) -> torch.utils.data.DataLoader:
    from gdino.data import collate_fn

    size = int(getattr(getattr(cfg, action), "batch_size", -1) or -1)
    size = size if size > 0 else int(cfg.dataset.batch_size)
    return torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=False, collate_fn=collate_fn,
                                       num_workers=0)


@torch.no_grad()
def predict(net: GroundingDinoNet, tokenizer: Any, loader: Any, num_select: int) -> Iterator[tuple[dict, dict]]:
    """Yields (target, result) per image; result = scores, labels (phrase index), boxes (xyxy pixels)."""
    net.eval()
    for batch in loader:
        targets = batch["targets"]
        text = tokenize_batch(tokenizer, [t["caption"] for t in targets], [t["phrases"] for t in targets],
                              net.max_text_len)
        outputs = net(batch["images"], **text.model_inputs(), pixel_mask=batch["pixel_mask"])
        for i, target in enumerate(targets):
            result = postprocess(outputs["pred_logits"][i:i + 1], outputs["pred_boxes"][i:i + 1],
                                 text.positive_maps[i], [target["orig_size"]], num_select)[0]
            yield target, result
