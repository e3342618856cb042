"""Per-task evaluation on a dataset: each task runs with its own gate, as at inference."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mtl_moe.metrics import MultiTaskEvaluator
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
