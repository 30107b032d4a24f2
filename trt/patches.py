"""Reversible patches that let HF Grounding DINO go through the TorchScript ONNX exporter at opset 17.

Why each one (notes/gdino.md §1.6, notes/stack.md "Where this disagrees"):
- the text self-attention mask and position ids are TAO graph *inputs*: the model's in-graph builder
  (`generate_masks_with_special_tokens_and_transfer_map`, which uses `isin`/`cummax`/`eye`, none
  exportable to opset 17 / runnable by ONNX Runtime CPU) is replaced by one returning the given tensors;
- `torch.linspace` in the reference-point and proposal grids is traced with float64 casts, which makes
  GridSample double and ONNX Runtime refuses it: inside the modeling module it is computed through arange;
- `torch_compilable_check` is switched off (TRANSFORMERS_DISABLE_TORCH_CHECK) so no assert op is traced.
Everything is undone on exit, so training and the PyTorch path see the unmodified library.
"""
from __future__ import annotations

import contextlib
import os
import types
from typing import Any, Iterator

import torch


def _modeling_module() -> Any:  # a module whose attributes are patched: typed as Any on purpose
    import transformers.models.grounding_dino.modeling_grounding_dino as modeling

    return modeling


def linspace_via_arange(start, end, steps, *, dtype=None, device=None, **_ignored) -> torch.Tensor:
    """torch.linspace(start, end, steps) built from arange so the traced graph stays float32."""
    dtype = dtype or torch.get_default_dtype()
    index = torch.arange(steps, dtype=dtype, device=device)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    return index * step + start


class _TorchWithArangeLinspace(types.ModuleType):
    """Stands in for `torch` inside the modeling module: everything is torch's except `linspace`."""

    def __init__(self) -> None:
        super().__init__("torch")
        self.linspace = linspace_via_arange

    def __getattr__(self, name: str):
        return getattr(torch, name)


@contextlib.contextmanager
def _set_env(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextlib.contextmanager
def onnx_export_patches() -> Iterator[None]:
    """The exporter-only patches (linspace through arange, no torch checks), undone on exit."""
    modeling = _modeling_module()
    original_torch = modeling.torch
    modeling.torch = _TorchWithArangeLinspace()
    try:
        with _set_env("TRANSFORMERS_DISABLE_TORCH_CHECK", "1"):
            yield
    finally:
        modeling.torch = original_torch


@contextlib.contextmanager
def provided_text_masks(text_token_mask: torch.Tensor, position_ids: torch.Tensor) -> Iterator[None]:
    """Make the model use the given sub-sentence mask and position ids instead of computing them."""
    modeling = _modeling_module()
    original = modeling.generate_masks_with_special_tokens_and_transfer_map

    def given(input_ids, special_tokens):  # noqa: ARG001 - same signature as the function it replaces
        return text_token_mask, position_ids

    modeling.generate_masks_with_special_tokens_and_transfer_map = given
    try:
        yield
    finally:
        modeling.generate_masks_with_special_tokens_and_transfer_map = original


def text_masks_from_ids(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TAO's `text_token_mask` [B,T,T] and `position_ids` [B,T], exactly as the model computes them."""
    modeling = _modeling_module()
    special = torch.tensor(modeling.SPECIAL_TOKENS, device=input_ids.device)
    return modeling.generate_masks_with_special_tokens_and_transfer_map(input_ids, special)
