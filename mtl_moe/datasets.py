"""NYUD-v2 and PASCAL-Context in the folder layouts of their multi-task releases (NYUD_MT, PASCAL_MT).

M³ViT trains on the archives the ASTMT → MTI-Net multi-task code reads; these loaders read the same
files, with our own code, and return samples exactly like :class:`mtl_moe.data.SyntheticScenes`.

NYUD_MT/ (as read by M³ViT's and MTI-Net's ``data/nyud.py``; 795 train / 654 val images)::

    images/<id>.jpg          RGB
    segmentation/<id>.png    uint8 0..40; 0 = unlabelled -> 255, class k -> k-1 (40 classes)
    depth/<id>.npy           float (H, W), metres; 0 (or non-finite) = invalid
    normals/<id>.npy         float (H, W, 3), channel 0 horizontal; all-zero = invalid
    edge/<id>.npy            float (H, W) in {0, 1}
    gt_sets/{train,val}.txt  one image id per line

PASCAL_MT/ (as read by ASTMT's ``fblib/dataloaders/pascal_context.py``, which M³ViT's fork keeps)::

    JPEGImages/<id>.jpg                  RGB
    semseg/VOC12/<id>.png                uint8 0..20 (21 VOC classes), 255 = ignore; if absent:
    semseg/pascal-context/<id>.png         the same, for images outside VOC12
    human_parts/<id>.mat                 PASCAL-Part ``anno.objects``(class_ind, mask, parts(part_name, mask))
    sal_distill/<id>.png                 uint8 grey; salient where > 127.5
    normals_distill/<id>.png             uint8 RGB, n = 2 v / 255 - 1; valid only on NYUD-like classes of
    pascal-context/trainval/<id>.mat     ``LabelMap``: 459-class context labels (also the source of edges)
    ImageSets/Context/{train,val}.txt    one image id per line (4998 train / 5105 val)

The ``.mat`` files need scipy, which mtl-moe does not depend on: without it, the tasks that read them
(human_parts, normals, edges) are refused up front with a message saying so.

Training augmentation (``augment=True``) follows MTI-Net/M³ViT's ``get_transformations``: horizontal
flip with p = 0.5 (normals' x negated), a zoom by s (NYUD: s ∈ {1.0, 1.2, 1.5}; PASCAL: s ~ U[0.75, 1.25];
depth divided by s, as their ScaleNRotate does), then a resize to ``img_size``. Differences: the zoom
window is placed at random (a random crop, or a random pad when s < 1) where theirs is centred, padding
is ignore/invalid (theirs pads labels with 0), and PASCAL's ±20° rotation is not done. Image:
bilinear (antialiased); labels: nearest. Sample i with augmentation is a function of (seed, epoch, i).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mtl_moe.config import IGNORE_INDEX, PASCAL_TASKS, MoEViTConfig, TaskSpec
from mtl_moe.recipes import EDGE_TARGETS

# The base class and the image normalisation every dataset shares live here, below mtl_moe.data (which
# builds the synthetic scenes and the registry on top): the house reads data -> datasets, never back.
IMAGE_MEAN = (0.45, 0.45, 0.45)  # normalisation of the rendered images (measured on the scenes)
IMAGE_STD = (0.25, 0.25, 0.25)


class MultiTaskDataset(Dataset):
    """Base class: ``ds[i]`` is ``{"image": (3, H, W) float, <task name>: target, ...}``.

    Targets by task type: semseg int64 (H, W) with 255 = ignore; depth float (1, H, W), 0 = invalid;
    normals float (3, H, W) unit vectors (x right, y down, z towards the camera), 0 = invalid;
    edges and saliency float (1, H, W) in {0, 1}.
    """

    task_specs: tuple[TaskSpec, ...]
    img_size: tuple[int, int]

    def __repr__(self) -> str:
        tasks = ", ".join(f"{t.name}:{t.type}" for t in self.task_specs)
        return f"{type(self).__name__}({len(self)} images {self.img_size}, tasks [{tasks}])"


PERSON_CLASS = 15  # PASCAL VOC class_ind of "person" in the PASCAL-Part annotations

# PASCAL-Part person parts grouped into 6 (ASTMT's num_human_parts=6); background is 0.
_PART_GROUPS = {
    1: ("hair", "head", "lear", "rear", "lebrow", "rebrow", "leye", "reye", "mouth", "nose"),  # head
    2: ("neck", "torso"),
    3: ("luarm", "ruarm"),  # upper arms
    4: ("llarm", "rlarm", "lhand", "rhand"),  # lower arms and hands
    5: ("luleg", "ruleg"),  # upper legs
    6: ("llleg", "rlleg", "lfoot", "rfoot"),  # lower legs and feet
}
HUMAN_PART_IDS = {name: pid for pid, names in _PART_GROUPS.items() for name in names}

# PASCAL-Context LabelMap ids (of 459) where the distilled normals are kept: the classes whose names
# also occur among NYUD's 894 classes, "unknown" excluded, plus tvmonitor (427). Derived from
# MTI-Net's data/db_info/{context,nyu}_classes.json, as its PASCAL loader does.
NORMALS_VALID_CONTEXT_IDS = np.array([
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49, 50, 51,
    53, 55, 56, 59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107,
    111, 113, 115, 122, 124, 135, 141, 142, 143, 146, 150, 154, 157, 158, 159, 165, 172, 174, 181, 183,
    184, 191, 193, 195, 197, 199, 202, 213, 215, 216, 219, 220, 223, 225, 228, 230, 232, 233, 238, 239,
    242, 243, 246, 250, 251, 252, 255, 260, 261, 263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287,
    288, 290, 291, 292, 293, 295, 304, 307, 309, 310, 314, 315, 319, 323, 329, 330, 331, 336, 342, 345,
    349, 350, 351, 352, 355, 357, 368, 370, 371, 374, 379, 380, 383, 384, 397, 401, 403, 405, 407, 408,
    411, 412, 413, 414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441, 442, 443, 444, 446, 454, 457,
])

NYUD_TASKS = (TaskSpec("semseg", "semseg", num_classes=40), TaskSpec("depth", "depth"))  # M³ViT's NYUD-v2 set


@dataclass(frozen=True)
class Augmentation:
    """What one training sample went through: the source window, resized to img_size, then the flip."""

    flip: bool
    scale: float  # zoom factor s: the window is (H/s, W/s) source pixels
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1) in source pixels; may extend past the image (padding)


class FolderDataset(MultiTaskDataset):
    """A multi-task dataset stored as one file per (image, label kind) under ``root``.

    Subclasses name the folders (``files``: label kind → candidate paths per required file, ``{id}``
    filled in; the first existing candidate wins), the class counts and the scale distribution.
    """

    title: ClassVar[str]
    archive: ClassVar[str]  # the folder the release unpacks to (for messages)
    image_path: ClassVar[str]
    split_path: ClassVar[str]
    files: ClassVar[dict[str, tuple[tuple[str, ...], ...]]]
    num_classes: ClassVar[dict[str, int]]  # label kind → classes, for the semseg kinds
    default_tasks: ClassVar[tuple[TaskSpec, ...]]

    def __init__(self, root: str | Path, split: str, tasks: tuple[TaskSpec, ...], img_size: tuple[int, int],
                 augment: bool = False, seed: int = 0, n: int | None = None) -> None:
        problem = self.unsupported(tuple(tasks))
        if problem:
            raise ValueError(problem)
        self.task_specs, self.img_size = tuple(tasks), (int(img_size[0]), int(img_size[1]))
        self.kinds = {t.name: self._kind(t) for t in self.task_specs}
        self._check_scipy()
        self.root, self.split = self._check_root(root), split
        self.image_ids = self._read_split(split, n)
        self.paths = [self._resolve(image_id) for image_id in self.image_ids]
        self.augment, self.seed, self.epoch = augment, seed, 0

    @classmethod
    def build(cls, cfg: MoEViTConfig, split: str, n: int, seed: int, root: str | None,
              **options: str) -> FolderDataset:
        """The registry's factory (``mtl_moe.data.DATASETS``): augmented for the train split only;
        ``options`` are the class's own keyword arguments (PASCAL-Context's ``edge_target``)."""
        if root is None:
            raise ValueError(f"{cls.title} is read from disk: give the root folder of the unpacked "
                             f"{cls.archive}/ (--data-root)")
        return cls(root, split, cfg.tasks, cfg.img_size, augment=split == "train", seed=seed, n=n,
                   **options)

    @classmethod
    def unsupported(cls, tasks: tuple[TaskSpec, ...]) -> str | None:
        """Why this dataset cannot serve ``tasks``, or None when it can."""
        try:
            kinds = [cls._kind(t) for t in tasks]
        except ValueError as e:
            return str(e)
        if len(set(kinds)) != len(kinds):
            return f"two tasks read the same labels ({kinds}); {cls.title} has one set of each"
        return None

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of augmentations (a function of (seed, epoch, index))."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.image_ids)

    # ---- which files a task reads -----------------------------------------------------------------
    @classmethod
    def _kind(cls, t: TaskSpec) -> str:
        """The label kind (a key of ``files``) a task reads; by type, human_parts by name."""
        kind = "human_parts" if t.type == "semseg" and t.name == "human_parts" else t.type
        if kind not in cls.files:
            raise ValueError(f"task {t.name!r} (type {t.type!r}): {cls.title} has no such labels; "
                             f"it has {sorted(cls.files)}")
        want = cls.num_classes.get(kind)
        if want is not None and t.num_classes != want:
            hint = (" (the semseg task named 'human_parts' reads the part labels)"
                    if kind == "semseg" and "human_parts" in cls.files else "")
            raise ValueError(f"task {t.name!r}: {cls.title} {kind} has {want} classes, "
                             f"the task has num_classes={t.num_classes}{hint}")
        return kind

    def _check_scipy(self) -> None:
        mats = [(t.name, p) for t in self.task_specs for alts in self.files[self.kinds[t.name]]
                for p in alts if p.endswith(".mat")]
        if not mats:
            return
        try:
            import scipy.io  # noqa: F401
        except ImportError as e:
            name, path = mats[0]
            raise ModuleNotFoundError(
                f"{self.title} task {name!r} reads MATLAB files ({path}); reading them needs scipy, "
                f"which mtl-moe does not depend on: pip install scipy, or drop the task") from e

    def _check_root(self, root: str | Path) -> Path:
        p = Path(root).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(
                f"{self.title} root {p} is not a directory; expected the unpacked {self.archive}/ "
                f"holding {self.image_path.split('/')[0]}/ and {self.split_path.rsplit('/', 1)[0]}/")
        return p

    def _read_split(self, split: str, n: int | None) -> list[str]:
        path = self.root / self.split_path.format(split=split)
        if not path.is_file():
            have = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
            raise FileNotFoundError(f"{self.title}: split file {path} not found (split {split!r}); "
                                    f"split files there: {have or 'none'}. Is {self.root} the "
                                    f"unpacked {self.archive}/?")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"{self.title}: split file {path} lists no image")
        if n is not None and n < 1:
            raise ValueError(f"n must be >= 1 (or None for the whole split), got {n}")
        return ids[:n]

    def _resolve(self, image_id: str) -> dict[str, tuple[Path, ...]]:
        """The files of one image: the image itself and each needed label kind's files."""
        out = {"image": (self._existing(image_id, "image", (self.image_path,)),)}
        for kind in dict.fromkeys(self.kinds.values()):  # each kind once, in task order
            out[kind] = tuple(self._existing(image_id, kind, alts) for alts in self.files[kind])
        return out

    def _existing(self, image_id: str, kind: str, alts: tuple[str, ...]) -> Path:
        paths = [self.root / a.format(id=image_id) for a in alts]
        for p in paths:
            if p.is_file():
                return p
        split_file = self.root / self.split_path.format(split=self.split)
        raise FileNotFoundError(f"{self.title}: missing {kind} file {' or '.join(map(str, paths))} for "
                                f"image {image_id!r} (listed in {split_file})")

    # ---- one sample -------------------------------------------------------------------------------
    def augmentation(self, i: int, hw: tuple[int, int]) -> Augmentation:
        """The flip, zoom and window of sample i whose image is ``hw`` (H, W) source pixels."""
        H, W = hw
        if not self.augment:
            return Augmentation(False, 1.0, (0, 0, H, W))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        flip, s, (u, v) = bool(rng.random() < 0.5), self._sample_scale(rng), rng.random(2)
        h, w = max(1, round(H / s)), max(1, round(W / s))  # window size; > H or W when zooming out
        y0, x0 = round(u * (H - h)), round(v * (W - w))
        return Augmentation(flip, s, (y0, x0, y0 + h, x0 + w))

    def _sample_scale(self, rng: np.random.Generator) -> float:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        paths = self.paths[i]
        image = _load_image(paths["image"][0])  # (3, H, W) normalised
        hw = (image.shape[1], image.shape[2])
        labels = {kind: _fit(torch.from_numpy(_channels_first(self._load(kind, p, hw))), hw)
                  for kind, p in paths.items() if kind != "image"}
        aug = self.augmentation(i, hw)
        out = {"image": _warp(image, aug, self.img_size, "bilinear", 0.0)}
        for t in self.task_specs:
            fill = IGNORE_INDEX if t.type == "semseg" else 0.0  # padding is ignore / invalid
            y = _warp(labels[self.kinds[t.name]], aug, self.img_size, "nearest", fill)
            out[t.name] = _target(t, y, aug)
        return out

    def _load(self, kind: str, paths: tuple[Path, ...], hw: tuple[int, int]) -> np.ndarray:
        """Label map of one kind at source resolution, in our conventions: (H, W) or (H, W, 3)."""
        raise NotImplementedError


class NYUDv2(FolderDataset):
    """NYUD-v2 (NYUD_MT): semseg (40 classes), depth, normals, edges."""

    title, archive = "NYUD-v2", "NYUD_MT"
    image_path, split_path = "images/{id}.jpg", "gt_sets/{split}.txt"
    files = {"semseg": (("segmentation/{id}.png",),), "depth": (("depth/{id}.npy",),),
             "normals": (("normals/{id}.npy",),), "edges": (("edge/{id}.npy",),)}
    num_classes = {"semseg": 40}
    default_tasks = NYUD_TASKS
    SCALES = (1.0, 1.2, 1.5)  # MTI-Net/M³ViT get_transformations, NYUD: ScaleNRotate(rots=[0], scales=...)

    def _sample_scale(self, rng: np.random.Generator) -> float:
        return float(self.SCALES[int(rng.integers(len(self.SCALES)))])

    def _load(self, kind: str, paths: tuple[Path, ...], hw: tuple[int, int]) -> np.ndarray:
        p = paths[0]
        if kind == "semseg":  # 0 = unlabelled → ignore; class k → k-1 (the NYUD 40-class convention)
            raw = _read_png(p).astype(np.int64)
            return _checked_classes(np.where(raw == 0, IGNORE_INDEX, raw - 1), 40, p)
        a = np.load(p).astype(np.float32)
        if kind == "depth":
            _check_ndim(a, 2, p)
            return np.where(np.isfinite(a) & (a > 0), a, 0.0).astype(np.float32)
        if kind == "normals":
            _check_ndim(a, 3, p)
            return _unit_or_zero(a, p)
        _check_ndim(a, 2, p)
        return (a > 0.5).astype(np.float32)  # edges


class PascalContext(FolderDataset):
    """PASCAL-Context (PASCAL_MT): semseg (21), human_parts (7), saliency, normals, edges."""

    title, archive = "PASCAL-Context", "PASCAL_MT"
    image_path, split_path = "JPEGImages/{id}.jpg", "ImageSets/Context/{split}.txt"
    files = {
        "semseg": (("semseg/VOC12/{id}.png", "semseg/pascal-context/{id}.png"),),
        "human_parts": (("human_parts/{id}.mat",),),
        "saliency": (("sal_distill/{id}.png",),),
        "normals": (("normals_distill/{id}.png",), ("pascal-context/trainval/{id}.mat",)),
        "edges": (("pascal-context/trainval/{id}.mat",),),
    }
    num_classes = {"semseg": 21, "human_parts": 7}
    default_tasks = PASCAL_TASKS
    SCALE_RANGE = (0.75, 1.25)  # MTI-Net/M³ViT get_transformations, PASCALContext: ScaleNRotate(scales=...)
    EDGE_TARGETS = EDGE_TARGETS["pascal_context"]

    def __init__(self, *args: object, edge_target: str = "boundary", **kwargs: object) -> None:
        """``edge_target``: "boundary" (ours, one-sided label boundary) or "astmt" (ASTMT's / M³ViT's
        training target, thin(|Laplacian(LabelMap)| > 0), :func:`mtl_moe.boundary.laplacian_edges`)."""
        if edge_target not in self.EDGE_TARGETS:
            raise ValueError(f"edge_target must be one of {self.EDGE_TARGETS}, got {edge_target!r}")
        self.edge_target = edge_target
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _sample_scale(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(*self.SCALE_RANGE))

    def _load(self, kind: str, paths: tuple[Path, ...], hw: tuple[int, int]) -> np.ndarray:
        p = paths[0]
        if kind == "semseg":
            return _checked_classes(_read_png(p).astype(np.int64), 21, p)
        if kind == "saliency":
            return (_read_png(p, mode="L") > 127.5).astype(np.float32)
        if kind == "human_parts":
            return _human_parts(p, hw)
        if kind == "edges" and self.edge_target == "astmt":
            from mtl_moe.boundary import laplacian_edges  # scipy: only PASCAL_MT's .mat files need it

            return laplacian_edges(_label_map(p)).astype(np.float32)
        if kind == "edges":
            return _label_boundaries(_label_map(p)).astype(np.float32)
        n = 2.0 * _read_png(p, mode="RGB").astype(np.float32) / 255.0 - 1.0  # normals
        keep = np.isin(_label_map(paths[1]), NORMALS_VALID_CONTEXT_IDS)
        return _unit_or_zero(np.where(keep[..., None], n, 0.0), p)


REAL_DATASETS: dict[str, type[FolderDataset]] = {"nyudv2": NYUDv2, "pascal_context": PascalContext}


# ---- file readers ---------------------------------------------------------------------------------
def _read_png(path: Path, mode: str | None = None) -> np.ndarray:
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(path) as im:
        return np.array(im if mode is None else im.convert(mode))


def _load_image(path: Path) -> torch.Tensor:
    """(3, H, W) float32, scaled to [0, 1] and normalised like the synthetic scenes."""
    rgb = _read_png(path, mode="RGB").astype(np.float32) / 255.0  # (H, W, 3)
    mean, std = np.array(IMAGE_MEAN, np.float32), np.array(IMAGE_STD, np.float32)
    return torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1).copy())


def _loadmat(path: Path) -> dict:
    import scipy.io

    return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)


def _label_map(path: Path) -> np.ndarray:
    m = _loadmat(path)
    if "LabelMap" not in m:
        raise ValueError(f"{path}: no 'LabelMap' (PASCAL-Context labels); it holds "
                         f"{sorted(k for k in m if not k.startswith('__'))}")
    return np.asarray(m["LabelMap"]).astype(np.int64)


def _human_parts(path: Path, hw: tuple[int, int]) -> np.ndarray:
    """Part ids 1..6 of every annotated person, 0 elsewhere; all 255 when no person has parts
    (the image then says nothing about parts, as ASTMT's AddIgnoreRegions treats it)."""
    anno = _loadmat(path)["anno"]
    target = None
    for obj in np.atleast_1d(anno.objects):
        parts = np.atleast_1d(obj.parts)
        if int(obj.class_ind) != PERSON_CLASS or parts.size == 0:
            continue
        if target is None:
            target = np.zeros(np.shape(obj.mask), dtype=np.int64)
        for part in parts:
            name = str(part.part_name)
            if name not in HUMAN_PART_IDS:
                raise ValueError(f"{path}: unknown person part {name!r}; known: {sorted(HUMAN_PART_IDS)}")
            target[np.asarray(part.mask).astype(bool)] = HUMAN_PART_IDS[name]
    if target is None or not target.any():
        return np.full(hw, IGNORE_INDEX, dtype=np.int64)
    return target


# ---- label conventions ----------------------------------------------------------------------------
def _label_boundaries(labels: np.ndarray) -> np.ndarray:
    """1-pixel boundaries: a pixel whose label differs from its right or lower neighbour.

    ASTMT marks both sides (non-zero Laplacian) and thins the band to one pixel; this keeps one side.
    """
    e = np.zeros(labels.shape, dtype=bool)
    e[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    e[:-1] |= labels[:-1] != labels[1:]
    return e


def _unit_or_zero(n: np.ndarray, path: Path) -> np.ndarray:
    """Unit normals; vectors shorter than 0.5 (unlabelled, zero) become 0 = invalid."""
    if n.shape[-1] != 3:
        raise ValueError(f"{path}: normals must be (H, W, 3), got shape {n.shape}")
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(norm > 0.5, n / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def _checked_classes(seg: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    bad = np.unique(seg[(seg != IGNORE_INDEX) & ((seg < 0) | (seg >= num_classes))])
    if bad.size:
        raise ValueError(f"{path}: class ids {bad[:5].tolist()} outside 0..{num_classes - 1} "
                         f"(and not {IGNORE_INDEX}); is this the right dataset folder?")
    return seg


def _check_ndim(a: np.ndarray, ndim: int, path: Path) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{path}: expected a {ndim}-D array, got shape {a.shape}")


def _channels_first(a: np.ndarray) -> np.ndarray:
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).astype(np.float32)  # (C, H, W)


def _fit(label: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A label map stored at another size than its image is resized (nearest) to it, as ASTMT does."""
    return label if tuple(label.shape[1:]) == hw else _resize(label, hw, "nearest")


# ---- geometry ---------------------------------------------------------------------------------------
def _warp(x: torch.Tensor, aug: Augmentation, size: tuple[int, int], mode: str, fill: float) -> torch.Tensor:
    """Crop/pad ``x`` (C, H, W) to the window, resize it to ``size``, then mirror if flipped."""
    y = _resize(_crop_pad(x, aug.box, fill), size, mode)
    return y.flip(-1) if aug.flip else y


def _crop_pad(x: torch.Tensor, box: tuple[int, int, int, int], fill: float) -> torch.Tensor:
    """Source pixels [y0, y1) × [x0, x1); those outside the image are ``fill``."""
    y0, x0, y1, x1 = box
    H, W = x.shape[1:]
    if (y0, x0, y1, x1) == (0, 0, H, W):
        return x
    out = torch.full((x.shape[0], y1 - y0, x1 - x0), fill, dtype=x.dtype)
    sy, sx = slice(max(y0, 0), min(y1, H)), slice(max(x0, 0), min(x1, W))
    out[:, sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = x[:, sy, sx]
    return out


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) for images; nearest (pixel centres) for labels."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x[None], size=size, mode="nearest-exact")[0]
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _target(t: TaskSpec, y: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """A warped label map in the dtype and shape the losses and metrics expect."""
    if t.type == "semseg":
        return y[0].round().long()  # (H, W)
    if t.type == "depth":
        return y / aug.scale  # zooming in by s brings the scene s times closer (ASTMT's ScaleNRotate)
    if t.type == "normals" and aug.flip:
        y = y.clone()
        y[0] = -y[0]  # a mirrored surface faces the other way horizontally
    return y
