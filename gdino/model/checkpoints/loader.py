"""Load a checkpoint of any known family into the network, completely or not at all.

Every load logs its table (one line per model part, tensors loaded / expected) and returns a LoadReport.
A load that leaves a network tensor at its initial value, or a checkpoint tensor unused, is a
CheckpointError naming them, unless `model.allow_partial_load` is true (then: the table plus a warning).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import torch
from torch import nn

from gdino.errors import CheckpointError
from gdino.model.checkpoints.backbones import BACKBONE_FAMILIES, strip_backbone_prefixes
from gdino.model.checkpoints.detectors import BACKBONE, DETECTOR_FAMILIES
from gdino.model.checkpoints.family import Converted, Family
from gdino.model.checkpoints.reading import Checkpoint, read_checkpoint
from gdino.model.checkpoints.report import LoadReport, PartCount, part_of

log = logging.getLogger("gdino.checkpoints")

OMITTED_KEY = "gdino_omitted"  # gdino/model/frozen.py OMITTED_KEY
PARTIAL_HINT = ("set model.allow_partial_load=true to load what fits anyway (e.g. a deliberately changed head); "
                "otherwise check that model.* (backbone, hidden_dim, layers, num_queries, text_encoder_type) "
                "matches the checkpoint's")


def detect_family(keys: Iterable[str], families: Iterable[Family], path: str) -> Family:
    keys = list(keys)
    for family in families:
        if family.detect(keys):
            return family
    names = ", ".join(f.name for f in families)
    raise CheckpointError(f"{path}: unknown checkpoint layout (first tensors: {', '.join(keys[:4])})",
                          hint=f"supported: {names}")


def _alias_groups(module: nn.Module) -> dict[str, list[str]]:
    """canonical name -> every name of the same tensor (tied modules appear under several names)."""
    groups: dict[int, list[str]] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    # canonical: a head name when the tensor is also a head (decoder.bbox_embed aliases bbox_embed)
    return {min(names, key=lambda n: (part_of(n) != "heads", n)): names for names in groups.values()}


def _fit_shape(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """`value` shaped like `target`: equal shapes, or the same numbers under a different singleton layout
    (TAO's learnable log_scale/bias are [1], ours are scalars)."""
    if value.shape == target.shape:
        return value
    if value.numel() == target.numel() and [d for d in value.shape if d != 1] == [d for d in target.shape if d != 1]:
        return value.reshape(target.shape)
    return None


def _omitted_kept(checkpoint: Checkpoint, net: nn.Module, prefix: str) -> set[str]:
    """Names (in `net`) of parts the checkpoint left out on purpose whose source matches ours (gdino_omitted)."""
    record = checkpoint.meta.get(OMITTED_KEY) or {}
    if not record:
        return set()
    from gdino.model.frozen import module_fingerprint

    kept: set[str] = set()
    for part, info in record.items():
        for part_prefix in info.get("prefixes", []):
            part_prefix = part_prefix.removeprefix("net.")
            if not part_prefix.startswith(prefix):
                continue
            module_name = part_prefix[len(prefix):].rstrip(".")
            try:
                module = net.get_submodule(module_name)
            except AttributeError as exc:
                raise CheckpointError(f"{checkpoint.path}: left-out part {part} ({part_prefix}) does not exist "
                                      "in the configured network") from exc
            if module_fingerprint(module) != info.get("fingerprint"):
                raise CheckpointError(
                    f"{checkpoint.path} left out its {part} (source {info.get('source')!r}); the configured "
                    "network's differs from that source (fingerprints differ)",
                    hint="set model.text_encoder_type to the checkpoint's source, with the same weights")
            kept.update(f"{module_name}.{k}" for k in module.state_dict())
    return kept


def load_converted(module: nn.Module, converted: Converted, checkpoint: Checkpoint, *, family: str, what: str,
                   allow_partial: bool, prefix: str = "") -> LoadReport:
    """Put `converted` (names of `module`) into `module`; count, report, refuse partial loads.

    `prefix`: where `module` sits in GroundingDinoNet (names in the report are network names)."""
    report = LoadReport(path=checkpoint.path, family=family, what=what, ignored=dict(converted.ignored))
    own = module.state_dict()
    groups = _alias_groups(module)
    alias_of = {name: canonical for canonical, names in groups.items() for name in names}
    kept = _omitted_kept(checkpoint, module, prefix) if checkpoint.meta.get(OMITTED_KEY) else set()
    usable: dict[str, torch.Tensor] = {}
    loaded: set[str] = set()
    seen: dict[str, str] = {}  # canonical -> first checkpoint name placed on it
    for name, value in converted.state.items():
        if name not in own:
            report.unused.append(prefix + name)
            continue
        fitted = _fit_shape(value, own[name])
        if fitted is None:
            report.mismatched.append(f"{prefix}{name} {tuple(value.shape)} vs {tuple(own[name].shape)}")
            continue
        canonical = alias_of[name]
        first = seen.get(canonical)
        if first is not None and not torch.equal(usable[first], fitted.to(own[name].dtype)):
            # e.g. per-layer box heads in the checkpoint, one shared head in the network
            report.mismatched.append(f"{prefix}{name}: tied to {prefix}{first} in the network, "
                                     "but the checkpoint holds different values")
            continue
        seen.setdefault(canonical, name)
        usable[name] = fitted.to(own[name].dtype)
        loaded.add(canonical)
    report.unused.extend(converted.unplaced)
    fresh_prefixes = {prefix + p: why for p, why in converted.fresh.items()}
    for canonical, names in groups.items():
        part = part_of(prefix + canonical)
        count = report.parts.setdefault(part, PartCount())
        count.expected += 1
        if canonical in loaded:
            count.loaded += 1
        elif any(n in kept for n in names):
            count.kept += 1
        elif any((prefix + canonical).startswith(p) for p in fresh_prefixes):
            count.fresh += 1
        else:
            report.missing.append(prefix + canonical)
    report.fresh_reasons = {p: why for p, why in fresh_prefixes.items()
                            if any(c.fresh for c in report.parts.values())}
    for line in report.lines():
        log.info("%s", line)
    if not report.ok:
        if not allow_partial:
            raise CheckpointError(f"{what} {checkpoint.path} ({family}) does not fit the configured network: "
                                  f"{report.problem()}", hint=PARTIAL_HINT)
        log.warning("%s %s: PARTIAL LOAD (model.allow_partial_load=true): %s", what, checkpoint.path,
                    report.problem())
    # the fitted tensors only; all aliases of a loaded tensor share storage, so one name suffices
    module.load_state_dict(usable, strict=False)
    return report


def load_checkpoint(net: nn.Module, path: Any, *, what: str = "checkpoint", allow_partial: bool = False,
                    checkpoint: Checkpoint | None = None) -> LoadReport:
    """Load a whole-detector checkpoint of any family into GroundingDinoNet `net`."""
    checkpoint = checkpoint or read_checkpoint(path)
    family = detect_family(checkpoint.state, DETECTOR_FAMILIES + BACKBONE_FAMILIES, str(path))
    if family in BACKBONE_FAMILIES:
        raise CheckpointError(f"{what} {path} holds only backbone weights ({family.name})",
                              hint="give it as model.pretrained_backbone_path instead")
    converted = family.to_network(checkpoint.state, net)
    return load_converted(net, converted, checkpoint, family=family.name, what=what, allow_partial=allow_partial)


def load_backbone_checkpoint(backbone: nn.Module, path: Any, *, allow_partial: bool = False) -> LoadReport:
    """`model.pretrained_backbone_path` into our backbone module (names relative to it)."""
    checkpoint = read_checkpoint(path)
    state = strip_backbone_prefixes(checkpoint.state)
    family = detect_family(state, BACKBONE_FAMILIES, str(path))
    converted = family.to_network(state, backbone)
    return load_converted(backbone, converted, checkpoint, family=family.name,
                          what="model.pretrained_backbone_path", allow_partial=allow_partial,
                          prefix=BACKBONE)
