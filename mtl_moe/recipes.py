"""Named training recipes: starting values for :class:`mtl_moe.train.TrainArgs`.

Torch-free, so the CLI can list them without importing the trainer. Each entry cites the code it
follows; an argument given on the command line still overrides (:func:`mtl_moe.train.recipe_args`).
"""

from __future__ import annotations

from typing import Any

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "poly")
# The datasets whose edge label can be chosen, and the choices (the first is the default):
# "boundary" (ours, the one-sided boundary of the label map) or "astmt" (ASTMT's / M³ViT's training
# target thin(|Laplacian(LabelMap)| > 0), VITA-Group/M3ViT data/pascal_context.py _load_edge, from ASTMT).
# Synthetic scenes and NYUD-v2 (its edge/*.npy files) have one edge label each.
EDGE_TARGETS: dict[str, tuple[str, ...]] = {"pascal_context": ("boundary", "astmt")}

# Named starting points for TrainArgs; an explicitly given argument still wins (see recipe_args).
RECIPES: dict[str, dict[str, Any]] = {
    # AdamW, linear warmup + cosine, from scratch: the demo preset reaches useful metrics in 4 epochs
    # of 4096 scenes (~2 min). TrainArgs takes its defaults from here (one place for the numbers the
    # CLI's help shows).
    "default": {"epochs": 4, "batch_size": 32, "lr": 2e-3},
    # M³ViT's PASCAL-Context recipe. VITA-Group/M3ViT
    # configs/pascal/vit_moe/pup_moe_vit_small_multi_task_baseline.yml: optimizer sgd, lr 0.002,
    # momentum 0.9, weight_decay 0.0001, scheduler poly, epochs 100, trBatch 8 per process; its
    # README launches train_fastmoe.py on 2 processes (--nproc_per_node=2), so 16 images a step.
    # utils/common_config.py get_optimizer (one SGD group over model.parameters()) and
    # adjust_learning_rate (lr · (1 − epoch/epochs)^0.9, set once per epoch); no warmup and no
    # gradient clipping (train/train_utils.py train_vanilla_distributed).
    "m3vit": {"optimizer": "sgd", "lr": 0.002, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "poly",
              "poly_power": 0.9, "epochs": 100, "batch_size": 16, "warmup_steps": 0, "grad_clip": 0.0,
              # ASTMT's edge target where the dataset has the choice (EDGE_TARGETS), as M³ViT trains
              "edge_target": "astmt"},
}
