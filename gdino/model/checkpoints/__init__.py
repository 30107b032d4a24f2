"""Checkpoints of every supported family, converted by name and loaded completely (or refused).

Families (detected by their tensor names; one module each):
- ours: Lightning `.ckpt` / TAO-style `.pth` written by our trainer, or GroundingDinoNet.state_dict();
- HF transformers GroundingDino: save_pretrained folder, model.safetensors, pytorch_model.bin (HF-Swin or
  HF-timm backbone);
- IDEA's GroundingDINO `.pth` and Open-GroundingDino's (`module.` prefix or not);
- NVIDIA TAO grounding_dino `.pth`/`.ckpt` (`model.model.` nesting, `state_dict` wrapping);
- backbones (`model.pretrained_backbone_path`): Swin in the official, timm or HF layout; ResNet from
  timm/torchvision.
Entry points: `load_checkpoint(net, path)`, `load_backbone_checkpoint(backbone, path)`; both return a
LoadReport and log the load table.
"""
from gdino.model.checkpoints.family import Converted, Family
from gdino.model.checkpoints.loader import detect_family, load_backbone_checkpoint, load_checkpoint
from gdino.model.checkpoints.reading import Checkpoint, read_checkpoint
from gdino.model.checkpoints.report import LoadReport

__all__ = ["Checkpoint", "Converted", "Family", "LoadReport", "detect_family", "load_backbone_checkpoint",
           "load_checkpoint", "read_checkpoint"]
