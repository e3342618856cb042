"""Per-task evaluation on a dataset: each task runs with its own gate, as at inference."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mtl_moe import boundary
from mtl_moe.metrics import MultiTaskEvaluator, PerImageSaliencyMeter, SegMeter, make_meter
from mtl_moe.model import M3ViT


@torch.no_grad()
def evaluate(model: M3ViT, dataset: Dataset, batch_size: int = 64, progress: bool = True,
             tasks: tuple[str, ...] | None = None) -> dict[str, dict[str, float]]:
    """Metrics per task (keys from mtl_moe.metrics), computed over the whole dataset."""
    cfg = model.config
    specs = tuple(s for s in cfg.tasks if tasks is None or s.name in tasks)
    evaluator = MultiTaskEvaluator(specs)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        preds, _ = model.forward_multitask(batch["image"])  # every task with its own gate
        for spec in specs:
            evaluator.update(spec.name, preds[spec.name], batch[spec.name])
    model.train(was_training)
    return evaluator.compute()


def _to_original(pred: torch.Tensor, hw: tuple[int, int], mode: str) -> torch.Tensor:
    """(1, C, h, w) → (1, C, H, W) as OpenCV's resize does it in M³ViT's save_model_predictions:
    INTER_NEAREST (src = floor(dst · scale), torch's "nearest") for class ids, INTER_LINEAR (half-
    pixel centres, no antialiasing: torch's bilinear with align_corners=False) for the rest."""
    if tuple(pred.shape[-2:]) == tuple(hw):
        return pred
    if mode == "nearest":
        return F.interpolate(pred, size=hw, mode="nearest")
    return F.interpolate(pred, size=hw, mode="bilinear", align_corners=False)


def _png(v: torch.Tensor) -> torch.Tensor:
    """A 0..255 float map as M³ViT stores it (``result.astype(np.uint8)``: truncated) and reads it back."""
    return v.clamp(0, 255).floor() / 255.0


@torch.no_grad()
def evaluate_m3vit_protocol(model: M3ViT, dataset: Dataset, progress: bool = True,
                            max_dist: float = boundary.MAX_DIST, thin_pred: bool = boundary.THIN_PREDICTIONS
                            ) -> dict[str, dict[str, float]]:
    """Metrics as M³ViT computes them, each image scored at its original size against its own labels.

    Follows VITA-Group/M3ViT evaluation/evaluate_utils.py save_model_predictions (the network runs
    on the resized image; each task's output — argmax ids, 255·sigmoid, (n̂ + 1)·255/2 — is resized
    back to the image's size, nearest for ids, linear otherwise, and stored as uint8) and then
    eval_all_results: semseg/human parts mIoU over all classes (eval_semseg.py, eval_human_parts.py;
    ``miou`` beside it is ours, absent classes left out), saliency per-image mIoU / maxF over 15
    thresholds (eval_sal.py), normals' pixel-pooled angle (eval_normals.py), edges' odsF/oisF with
    BSDS correspondence against SEISM's ground truth, ``seg2bmap`` of the context LabelMap
    (:mod:`mtl_moe.boundary`).
    Depth (NYUD) is scored unquantised, as M³ViT saves it to .mat. ``dataset``: a real dataset read
    from disk (mtl_moe.datasets, not augmented), whose original labels it reads again per image.
    Δm over M³ViT's task set: :func:`mtl_moe.metrics.delta_m_m3vit` of the result.
    """
    from mtl_moe.datasets import FolderDataset, PascalContext, _channels_first, _fit, _label_map

    if not isinstance(dataset, FolderDataset):
        raise ValueError(f"the M³ViT protocol scores every image at its original size and needs a dataset "
                         f"read from disk (--dataset pascal_context or nyudv2), got {type(dataset).__name__}")
    if dataset.augment:
        raise ValueError("the M³ViT protocol evaluates unaugmented images; build the dataset with "
                         "augment=False (the val split)")
    cfg = model.config
    specs = tuple(s for s in cfg.tasks if s.name in dataset.kinds)
    meters: dict[str, Any] = {}
    for s in specs:
        kind = dataset.kinds[s.name]
        meters[s.name] = (SegMeter(s.num_classes) if s.type == "semseg" else
                          PerImageSaliencyMeter() if s.type == "saliency" else
                          boundary.BoundaryMeter(max_dist=max_dist, thin_pred=thin_pred) if kind == "edges"
                          else make_meter(s))
    was_training = model.training
    model.eval()
    for i in tqdm(range(len(dataset)), desc="eval (M3ViT protocol)", disable=not progress, leave=False):
        sample, paths = dataset[i], dataset.paths[i]
        preds, _ = model.forward_multitask(sample["image"][None])
        hw = _image_hw(paths["image"][0])  # the labels' size (a label of another size is fitted to it)
        for s in specs:
            kind = dataset.kinds[s.name]
            if s.type == "edges" and isinstance(dataset, PascalContext):
                gt = torch.from_numpy(boundary.seg2bmap(_label_map(paths[kind][0])).astype(np.float32))
                target = gt[None]
            else:
                target = torch.from_numpy(_channels_first(dataset._load(kind, paths[kind], hw)))
            target = _fit(target, hw)
            p = preds[s.name]
            m = meters[s.name]
            if s.type == "semseg":
                ids = _to_original(p.argmax(dim=1, keepdim=True).float(), hw, "nearest")
                m.update_labels(ids[0, 0].long(), target[0].round().long())
            elif s.type in ("saliency", "edges"):
                prob = _png(_to_original(255 * torch.sigmoid(p), hw, "linear"))[0, 0]
                if isinstance(m, boundary.BoundaryMeter):
                    m.update_image(prob.numpy(), target[0].numpy() > 0.5)
                else:
                    m.update_image(prob, target[0])
            elif s.type == "normals":
                v = _png(_to_original((F.normalize(p, dim=1) + 1) * 255 / 2, hw, "linear"))
                m.update(2 * v - 1, target[None])
            else:  # depth
                m.update(_to_original(p, hw, "linear"), target[None])
    model.train(was_training)
    out: dict[str, dict[str, float]] = {}
    for s in specs:
        m = meters[s.name]
        out[s.name] = m.compute()
        if isinstance(m, SegMeter):
            out[s.name]["miou_all_classes"] = m.miou_all_classes()
    return out


def _image_hw(path: Any) -> tuple[int, int]:
    """(H, W) of an image file, from its header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width
