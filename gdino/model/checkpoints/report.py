"""The load table: tensors loaded / expected per model part, and what a checkpoint left over.

Counting is per distinct tensor: HF ties `bbox_embed` of every decoder layer to one module (IDEA's
`dec_pred_bbox_embed_share`), so its names are aliases of one tensor and a checkpoint may carry any of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

PARTS = ("backbone", "text encoder", "encoder", "decoder", "heads", "other")

# (network-name prefix, part); the first match wins. Names are GroundingDinoNet.state_dict() names.
_PART_PREFIXES = (
    ("detector.model.backbone.", "backbone"),
    ("detector.model.text_backbone.", "text encoder"),
    ("detector.model.encoder.", "encoder"),
    ("detector.model.input_proj_vision.", "encoder"),
    ("detector.model.text_projection.", "encoder"),
    ("detector.model.level_embed", "encoder"),
    ("detector.model.decoder.bbox_embed.", "heads"),
    ("detector.model.decoder.class_embed.", "heads"),
    ("detector.model.decoder.", "decoder"),
    ("detector.model.query_position_embeddings.", "decoder"),
    ("detector.bbox_embed.", "heads"),
    ("detector.class_embed.", "heads"),
    ("detector.model.enc_output", "heads"),
    ("detector.model.encoder_output_", "heads"),
    ("label_enc.", "decoder"),  # GroundingDinoNet's DN label embedding (TAO's label_enc)
)


def part_of(name: str) -> str:
    """The model part a network tensor belongs to (GroundingDinoNet names)."""
    return next((part for prefix, part in _PART_PREFIXES if name.startswith(prefix)), "other")


@dataclass
class PartCount:
    loaded: int = 0
    expected: int = 0
    kept: int = 0    # left out of the checkpoint on purpose and verified equal (gdino_omitted)
    fresh: int = 0   # not in this family's checkpoints by design, initialised as the reference does


@dataclass
class LoadReport:
    """What one load did. `ok` means every network tensor was loaded (or verified kept) and nothing left over."""

    path: str
    family: str
    what: str
    parts: dict[str, PartCount] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)        # network tensors left at their initial values
    unused: list[str] = field(default_factory=list)         # checkpoint tensors that fit nowhere
    mismatched: list[str] = field(default_factory=list)     # shape differs / tied names disagree
    ignored: dict[str, str] = field(default_factory=dict)   # checkpoint tensors not needed by design -> why
    fresh_reasons: dict[str, str] = field(default_factory=dict)  # network prefix -> why it starts fresh

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unused or self.mismatched)

    def lines(self) -> list[str]:
        out = [f"{self.what} {self.path} ({self.family}):"]
        for part in PARTS:
            count = self.parts.get(part)
            if count is None or count.expected == 0:
                continue
            notes = []
            if count.kept:
                notes.append(f"{count.kept} kept from the same source")
            if count.fresh:
                notes.append(f"{count.fresh} initialised fresh")
            note = f" ({', '.join(notes)})" if notes else ""
            out.append(f"  {part:<13} {count.loaded + count.kept}/{count.expected} tensors{note}")
        for prefix, why in self.fresh_reasons.items():
            out.append(f"  initialised fresh: {prefix}* ({why})")
        if self.ignored:
            reasons = sorted(set(self.ignored.values()))
            out.append(f"  not needed: {len(self.ignored)} checkpoint tensors ({'; '.join(reasons)})")
        if self.missing:
            out.append(f"  NOT LOADED: {len(self.missing)} network tensors: {_first(self.missing)}")
        if self.unused:
            out.append(f"  LEFT OVER: {len(self.unused)} checkpoint tensors fit nowhere: {_first(self.unused)}")
        if self.mismatched:
            out.append(f"  MISMATCH: {len(self.mismatched)} tensors: {_first(self.mismatched)}")
        return out

    def summary(self) -> str:
        return "\n".join(self.lines())

    def problem(self) -> str:
        """One paragraph naming the groups and first tensors that make this load partial."""
        bits = []
        if self.missing:
            groups = sorted({part_of(n) for n in self.missing})
            bits.append(f"{len(self.missing)} network tensors not in the checkpoint ({', '.join(groups)}: "
                        f"{_first(self.missing)})")
        if self.unused:
            bits.append(f"{len(self.unused)} checkpoint tensors fit nowhere ({_first(self.unused)})")
        if self.mismatched:
            bits.append(f"{len(self.mismatched)} tensors differ in shape (or in value between tied names) "
                        f"({_first(self.mismatched)})")
        return "; ".join(bits)


def _first(names: Iterable[str], n: int = 4) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")
