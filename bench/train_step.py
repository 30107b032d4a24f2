"""Our criterion vs HF's built-in loss on the same network and batch: loss values, steps/s, ratio.

    python bench/train_step.py [--steps 5] [--size 160] [--batch 4]

Both sides run forward + loss + backward + AdamW step on the CPU preset's network
(examples/tiny_cpu.yaml's model section), alternating so machine load hits both alike. Also reports
whether the query-selection head (enc_output, enc_output_norm, encoder_output_bbox_embed) receives
a gradient: HF's loss gives it none (notes/gdino.md §1.2).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERY_SELECTION = ("model.enc_output.", "model.enc_output_norm.", "model.encoder_output_bbox_embed.")


def main() -> None:
    import torch

    from gdino.model.criterion import CriterionSettings, SetCriterion
    from gdino.model.network import build_network
    from gdino.model.text import load_tokenizer, tokenize_batch
    from gdino.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "examples" / "tiny_cpu.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()

    cfg = load_spec(args.spec)
    torch.manual_seed(0)
    ours_net = build_network(cfg.model)
    hf_net = copy.deepcopy(ours_net)
    tokenizer = load_tokenizer(cfg.model.text_encoder_type)
    phrases = [["red circle", "blue square", "green triangle"]] * args.batch
    text = tokenize_batch(tokenizer, [" . ".join(p) + " ." for p in phrases], phrases, cfg.model.max_text_len)
    images = torch.randn(args.batch, 3, args.size, args.size)
    targets = [{"boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]]), "labels": torch.tensor([0, 2])}
               for _ in range(args.batch)]
    criterion = SetCriterion(CriterionSettings.from_config(cfg.model))
    # HF's labels: class_labels = phrase index (notes/gdino.md §1.3)
    hf_labels = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]

    def ours_step(opt):
        loss, _ = criterion(ours_net(images, **text.model_inputs()), targets, text.positive_maps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def hf_step(opt):
        out = hf_net.detector(pixel_values=images, input_ids=text.input_ids, attention_mask=text.attention_mask,
                              token_type_ids=text.token_type_ids, labels=hf_labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        return float(out.loss.detach())

    ours_opt = torch.optim.AdamW(ours_net.parameters(), lr=1e-4)
    hf_opt = torch.optim.AdamW(hf_net.parameters(), lr=1e-4)
    times = {"ours": [], "hf": []}
    losses = {"ours": [], "hf": []}
    for step in range(args.steps + 1):  # step 0 is warm-up
        for name, fn, opt in (("ours", ours_step, ours_opt), ("hf", hf_step, hf_opt)):
            started = time.perf_counter()
            losses[name].append(fn(opt))
            if step:
                times[name].append(time.perf_counter() - started)
    for name, net in (("ours", ours_net), ("hf", hf_net)):
        grads = [p.grad for n, p in net.named_parameters() if any(k in n for k in QUERY_SELECTION)]
        trained = sum(g is not None and bool(g.abs().sum() > 0) for g in grads)
        mean = sum(times[name]) / len(times[name])
        print(f"{name:4s}: {1 / mean:.3f} steps/s ({mean:.2f} s/step), loss {losses[name][0]:.1f} -> "
              f"{losses[name][-1]:.1f}, query-selection tensors with a gradient: {trained}/{len(grads)}")
    ratio = (sum(times["hf"]) / len(times["hf"])) / (sum(times["ours"]) / len(times["ours"]))
    print(f"steps/s ratio ours/HF: {ratio:.2f} (batch {args.batch}, {args.size}px, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
