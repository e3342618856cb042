"""Multi-task datasets: the interface real datasets plug into, and procedurally generated scenes.

:class:`SyntheticScenes` renders scenes of shapes in front of a slanted wall, with every label a
multi-task vision model learns, all derived from one 3-D scene so the tasks are genuinely related:

- semantic class: each object's class fixes its shape kind (sphere, tilted rectangle, tilted
  triangle) and its hue, so the class is visible in the image;
- depth: farther objects are drawn smaller (size ∝ 1/depth) and fade into fog, so depth is visible;
- surface normals: spheres and tilted planes are Lambertian-shaded by a fixed light, so normals are
  visible in the shading;
- edges: the boundaries of the object-id map (objects occlude back to front);
- saliency: the nearest object (largest and least fogged) is the salient one.

A second semseg task (e.g. PASCAL's 7 "human_parts") gets a part labelling: upper or lower half of
each object, by shape kind. Nothing is downloaded; every sample is a function of (seed, split, index).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from mtl_moe.config import TASK_TYPES, MoEViTConfig, TaskSpec
from mtl_moe.datasets import IMAGE_MEAN, IMAGE_STD, MultiTaskDataset  # the house reads data -> datasets
from mtl_moe.recipes import EDGE_TARGETS

SPLITS = {"train": 0, "val": 1, "test": 2}
LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])  # from top-left, front
FOG = 0.12  # attenuation per depth unit beyond the nearest plane
WALL_DEPTH = (7.0, 9.0)
OBJECT_DEPTH = (2.0, 6.0)


class SyntheticScenes(MultiTaskDataset):
    """``n`` generated scenes; sample i depends only on (seed, split, i), not on n."""

    def __init__(self, tasks: tuple[TaskSpec, ...], img_size: tuple[int, int], n: int,
                 seed: int = 0, split: str = "train") -> None:
        for t in tasks:
            if t.type not in TASK_TYPES:
                raise ValueError(f"task {t.name!r}: unknown type {t.type!r}; expected {sorted(TASK_TYPES)}")
        if min(img_size) < 8:
            raise ValueError(f"img_size {img_size} too small: scenes need at least 8x8 pixels")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        self.task_specs, self.img_size, self.split = tuple(tasks), tuple(img_size), split
        semseg = [t for t in tasks if t.type == "semseg"]
        self.n_classes = semseg[0].num_classes if semseg else 4
        scenes = [render_scene(np.random.default_rng([seed, SPLITS[split], i]), self.img_size,
                               self.n_classes) for i in range(n)]
        mean, std = np.array(IMAGE_MEAN)[:, None, None], np.array(IMAGE_STD)[:, None, None]
        self.images = torch.from_numpy(np.stack([(s["rgb"] - mean) / std for s in scenes])).float()
        self.targets = {t.name: torch.from_numpy(np.stack([_target(t, s, semseg) for s in scenes]))
                        for t in tasks}

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out = {"image": self.images[i]}
        for t in self.task_specs:
            v = self.targets[t.name][i]
            out[t.name] = v.long() if t.type == "semseg" else v.float()
        return out


def _target(t: TaskSpec, s: dict[str, np.ndarray], semseg: list[TaskSpec]) -> np.ndarray:
    """One task's label map from a rendered scene (compact dtypes; __getitem__ converts)."""
    if t.type == "semseg":
        if t is semseg[0]:
            return s["cls"].astype(np.uint8)
        return _part_labels(s, t.num_classes).astype(np.uint8)
    if t.type == "depth":
        return s["depth"][None].astype(np.float32)
    if t.type == "normals":
        return s["normals"].astype(np.float32)
    if t.type == "edges":
        return _edges(s["ids"])[None].astype(np.uint8)
    return (s["ids"] == s["salient"])[None].astype(np.uint8)  # saliency


def _part_labels(s: dict[str, np.ndarray], num_classes: int) -> np.ndarray:
    """Part labelling for a second semseg task: (shape kind, upper/lower half) → 1..num_classes-1."""
    part = 1 + (2 * s["kind"] + s["lower"]) % (num_classes - 1)
    return np.where(s["ids"] > 0, part, 0)


def _edges(ids: np.ndarray) -> np.ndarray:
    """Pixels whose object id differs from a 4-neighbour: boundaries 2 px thick (both sides)."""
    e = np.zeros(ids.shape, dtype=bool)
    dv, dh = ids[1:] != ids[:-1], ids[:, 1:] != ids[:, :-1]
    e[1:] |= dv
    e[:-1] |= dv
    e[:, 1:] |= dh
    e[:, :-1] |= dh
    return e


def _hue_rgb(h: float, s: float = 0.85) -> np.ndarray:
    """A saturated colour of hue h ∈ [0, 1) (HSV with value 1)."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return 1 - s * np.clip(np.minimum(k, 4 - k), 0, 1)


def _wall(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The far background: a slanted plane depth = d0 + a·x + b·y with its constant normal."""
    d0, a, b = rng.uniform(*WALL_DEPTH), rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8)
    n = np.array([a, b, 1.0]) / math.hypot(a, b, 1.0)
    albedo = 0.55 + 0.25 * _hue_rgb(rng.uniform(), s=0.3)
    return {"depth": d0 + a * x + b * y, "normal": np.broadcast_to(n[:, None, None], (3, *x.shape)),
            "albedo": albedo}


def _sphere(dx: np.ndarray, dy: np.ndarray, r: float, z: float, rng: np.random.Generator):
    """Disc of radius r rendered as a sphere: mask, depth (bulging towards the camera), normals."""
    rho2 = (dx**2 + dy**2) / r**2
    mask = rho2 < 1
    nz = np.sqrt(np.clip(1 - rho2, 0, 1))
    depth = z - nz * r * z * 0.5  # the visible cap is closer than the centre plane
    return mask, depth, np.stack([dx / r, dy / r, nz])


def _plane(dx: np.ndarray, dy: np.ndarray, r: float, z: float, rng: np.random.Generator,
           polygon: np.ndarray):
    """A flat polygon (vertices relative to its centre, in units of r), randomly tilted."""
    a, b = rng.uniform(-0.6, 0.6, size=2)
    mask = _inside(dx / r, dy / r, polygon)
    n = np.array([a, b, 1.0]) / math.hypot(a, b, 1.0)
    depth = z + (a * dx + b * dy) * z * 0.5
    return mask, depth, np.broadcast_to(n[:, None, None], (3, *dx.shape))


def _inside(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points inside a convex polygon: on the same side of every edge (either winding)."""
    left = np.ones(px.shape, dtype=bool)
    right = np.ones(px.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        left &= cross >= 0
        right &= cross <= 0
    return left | right


def _polygon(kind: int, rng: np.random.Generator) -> np.ndarray:
    theta = rng.uniform(0, 2 * math.pi)
    if kind == 1:  # rectangle with aspect in [0.5, 1]
        w, h = 1.0, rng.uniform(0.5, 1.0)
        pts = np.array([[-w, -h], [-w, h], [w, h], [w, -h]]) * 0.85
    else:  # triangle
        ang = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3])
        pts = np.stack([np.cos(ang), -np.sin(ang)], axis=1) * 1.2
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return pts @ rot.T


def render_scene(rng: np.random.Generator, img_size: tuple[int, int], n_classes: int
                 ) -> dict[str, np.ndarray]:
    """Paint a wall and 1-4 objects back to front; return the image and every label map."""
    H, W = img_size
    y, x = np.meshgrid(np.linspace(-H / W, H / W, H), np.linspace(-1, 1, W), indexing="ij")
    wall = _wall(rng, x, y)
    depth, normals = wall["depth"].copy(), np.array(wall["normal"])
    albedo = np.broadcast_to(wall["albedo"][:, None, None], (3, H, W)).copy()
    ids, cls, kind, lower = (np.zeros((H, W), dtype=np.int64) for _ in range(4))
    objects = sorted(((rng.uniform(*OBJECT_DEPTH), int(rng.integers(1, n_classes)))
                      for _ in range(int(rng.integers(1, 5)))), reverse=True)  # far → near
    for oid, (z, c) in enumerate(objects, start=1):
        k = (c - 1) % 3
        r = rng.uniform(1.1, 1.6) / z  # apparent size shrinks with depth
        cx, cy = rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7) * H / W
        dx, dy = x - cx, y - cy
        m, d, n = (_sphere(dx, dy, r, z, rng) if k == 0
                   else _plane(dx, dy, r, z, rng, _polygon(k, rng)))
        depth[m], normals[:, m], ids[m], cls[m], kind[m] = d[m], n[:, m], oid, c, k
        lower[m] = dy[m] > 0
        albedo[:, m] = _hue_rgb((c - 1) / (n_classes - 1))[:, None]
    shade = 0.25 + 0.75 * np.clip(np.einsum("chw,c->hw", normals, LIGHT), 0, 1)
    fog = np.exp(-FOG * (depth - OBJECT_DEPTH[0]))
    rgb = albedo * shade * fog + 0.6 * (1 - fog) + rng.normal(0, 0.02, size=(3, H, W))
    return {"rgb": np.clip(rgb, 0, 1), "depth": depth, "normals": normals, "ids": ids, "cls": cls,
            "kind": kind, "lower": lower, "salient": np.int64(len(objects))}


# ---- registry: real datasets (NYUD-v2, PASCAL-Context) register here ----------------------------
DatasetFactory = Callable[..., MultiTaskDataset]  # (cfg, split, n, seed, root, **options)


def _folder_dataset(name: str) -> DatasetFactory:
    """A dataset of mtl_moe.datasets (imported on first use: that module imports this one)."""
    def build(cfg: MoEViTConfig, split: str, n: int, seed: int, root: str | None,
              **options: str) -> MultiTaskDataset:
        from mtl_moe.datasets import REAL_DATASETS

        return REAL_DATASETS[name].build(cfg, split, n, seed, root, **options)
    return build


DATASETS: dict[str, DatasetFactory] = {
    "synthetic": lambda cfg, split, n, seed, root: SyntheticScenes(cfg.tasks, cfg.img_size, n, seed, split),
    "nyudv2": _folder_dataset("nyudv2"),  # NYUD_MT folder; n = at most n images of the split
    "pascal_context": _folder_dataset("pascal_context"),  # PASCAL_MT folder
}


def build_dataset(cfg: MoEViTConfig, split: str, n: int, seed: int | None = None,
                  name: str = "synthetic", root: str | None = None,
                  edge_target: str | None = None) -> MultiTaskDataset:
    """The dataset ``name`` for the config's tasks and image size (seed defaults to the config's).

    ``edge_target``: the edge label, for a dataset that has a choice (:data:`mtl_moe.recipes.EDGE_TARGETS`;
    None: its default)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    check_edge_target(name, edge_target)
    options = {} if edge_target is None else {"edge_target": edge_target}
    return DATASETS[name](cfg, split, n, cfg.seed if seed is None else seed, root, **options)


def check_edge_target(dataset: str, edge_target: str | None) -> None:
    """Refuse an edge target the dataset does not have, naming the ones it has."""
    if edge_target is None:
        return
    choices = EDGE_TARGETS.get(dataset)
    if choices is None:
        offered = ", ".join(f"{d} ({'/'.join(c)})" for d, c in EDGE_TARGETS.items())
        raise ValueError(f"edge target {edge_target!r}: {dataset} has one edge label; the edge target is "
                         f"chosen for {offered}")
    if edge_target not in choices:
        raise ValueError(f"edge target {edge_target!r}: {dataset} offers {' or '.join(choices)}")
