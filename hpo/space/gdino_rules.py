"""Grounding DINO's search-space rules (the counterpart of TAO's `network_utils/dino.py`).

What the schema cannot say and the network needs:
  * conditional parameters: a knob is searched only where the trainer reads it;
  * the DETR top-k rule: num_select <= min(num_queries, num_queries * num_classes - 1);
  * default-mode ranges for rate-like parameters of TAO's schema, which has no search metadata;
  * the epoch budget parameter (never searched when epochs are the algorithm's fidelity).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from hpo.space.space import Relation

NUM_QUERIES = "model.num_queries"
NUM_SELECT = "model.num_select"
EPOCH_PARAMS = ("train.num_epochs",)

# child -> (parent, values under which the child has an effect, why)
CONDITIONS: dict[str, tuple[str, tuple, str]] = {
    "train.optim.momentum": ("train.optim.optimizer", ("SGD",), "only SGD reads momentum"),
    "train.optim.lr_step_size": ("train.optim.lr_scheduler", ("StepLR",), "only StepLR reads lr_step_size"),
}

# Parameters that change the network's tensors (names or shapes). A checkpoint made with one value
# does not load into a network built with another, so: a sweep that starts from a pretrained
# checkpoint does not search them, and PBT never perturbs them (a population member keeps its
# architecture; an exploit copies the donor's architecture together with its weights).
ARCHITECTURE_PARAMS: dict[str, str] = {
    "model.backbone": "selects the backbone's modules",
    "model.hidden_dim": "the width of every transformer tensor",
    "model.num_queries": "the size of the query embeddings",
    "model.num_feature_levels": "the number of input projections and level embeddings",
    "model.return_interm_indices": "which backbone stages feed input projections",
    "model.enc_layers": "the number of encoder layers",
    "model.dec_layers": "the number of decoder layers and prediction heads",
    "model.dim_feedforward": "the width of every feed-forward layer",
    "model.nheads": "the shapes of the deformable attention offsets and weights",
    "model.enc_n_points": "the shapes of the encoder's sampling offsets",
    "model.dec_n_points": "the shapes of the decoder's sampling offsets",
    "model.text_encoder_type": "selects the text encoder's weights",
    "model.two_stage_type": "adds or removes the encoder's proposal heads",
    "model.embed_init_tgt": "adds or removes the target query embedding",
    "model.log_scale": "adds or removes the contrastive head's scale",
    "model.class_embed_bias": "adds or removes the contrastive head's bias",
    "model.dn_number": "adds or removes the denoising label embedding (dn_number > 0)",
}


def is_architecture_param(name: str) -> bool:
    """True when changing `name` changes the network's tensors (see ARCHITECTURE_PARAMS)."""
    return name in ARCHITECTURE_PARAMS


# Default-mode ranges for TAO's schema (ours carries x_search_min/x_search_max/x_log_scale instead).
# name -> (low, high, log). Rates span at least a decade on each side of TAO's default.
DEFAULT_MODE_RANGES: dict[str, tuple[float, float, bool]] = {
    "train.optim.lr": (2e-5, 2e-3, True),
    "train.optim.lr_backbone": (2e-6, 2e-4, True),
    "train.optim.lr_linear_proj_mult": (0.01, 1.0, True),
    "train.optim.weight_decay": (1e-6, 1e-2, True),
    "train.optim.lr_decay": (0.01, 0.5, True),
    "train.optim.momentum": (0.8, 0.99, False),
}

# TAO's fallbacks when the class count is unknown: dino.py uses 91 (COCO). Ours assumes a single
# class, the smallest cap, so the rule holds whatever the dataset turns out to be.
TAO_DEFAULT_NUM_CLASSES = 91
SAFE_DEFAULT_NUM_CLASSES = 1
TAO_DEFAULT_NUM_QUERIES = 300


def is_rate_like(name: str) -> bool:
    """Learning rates and decay-like coefficients (searched on a log scale in default mode)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf.startswith("lr") or "learning_rate" in leaf or leaf in {"weight_decay", "lr_decay"}


def num_select_relations(num_classes: int) -> tuple[Relation, ...]:
    """num_select <= num_queries and num_select <= num_queries * num_classes - 1."""
    source = "DETR top-k: num_select <= min(num_queries, num_queries*num_classes - 1)"
    relations = [Relation(NUM_QUERIES, "<=", 1.0, 0.0, source)]
    if num_classes <= 1:  # for 2+ classes num_queries * num_classes - 1 >= num_queries already
        relations.append(Relation(NUM_QUERIES, "<=", float(num_classes), -1.0, source))
    return tuple(relations)


def num_select_cap(num_queries: int, num_classes: int) -> int:
    return int(min(num_queries, num_queries * num_classes - 1))


def read_num_classes(spec: Mapping[str, Any]) -> int | None:
    """Class count from the train sources' label maps (ODVG `{"0": "person", ...}`), if readable.

    Several sources with label maps: the union of their names. Anything unreadable -> None.
    """
    sources = (spec.get("dataset") or {}).get("train_data_sources") if isinstance(spec, Mapping) else None
    if not isinstance(sources, list):
        return None
    names: set[str] = set()
    for source in sources:
        path = source.get("label_map") if isinstance(source, Mapping) else None
        if not path or not isinstance(path, str) or "://" in path:
            continue
        try:
            mapping = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(mapping, dict) or not mapping:
            return None
        names.update(str(v) for v in mapping.values())
    return len(names) or None


def num_classes_for(spec: Mapping[str, Any], mode: str) -> tuple[int, str]:
    """(class count, where it came from) for the num_select rule."""
    found = read_num_classes(spec)
    if found is not None:
        return found, "the train label map"
    if mode == "tao":
        return TAO_DEFAULT_NUM_CLASSES, "TAO's fallback (COCO, 91)"
    return SAFE_DEFAULT_NUM_CLASSES, "label map not readable: assuming 1 class (the safest cap)"
