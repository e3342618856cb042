"""NYUD-v2 and PASCAL-Context loaders, on tiny fixtures written in the releases' exact folder layouts.

Expected values are computed here from the raw fixture arrays (numpy indexing, not the loader's torch
resampling), so a test fails if the loader's crop, resize, flip or label mapping is off by a pixel.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtl_moe.config import MoEViTConfig, TaskSpec
from mtl_moe.data import IMAGE_MEAN, IMAGE_STD, SyntheticScenes, build_dataset
from mtl_moe.datasets import HUMAN_PART_IDS, NYUD_TASKS, NYUDv2, PascalContext
from mtl_moe.losses import task_loss
from mtl_moe.metrics import MultiTaskEvaluator

HW = (24, 32)  # fixture images (H, W)
NYUD_ALL = (*NYUD_TASKS, TaskSpec("normals", "normals"), TaskSpec("edges", "edges"))
PASCAL_PNG = (TaskSpec("semseg", "semseg", num_classes=21), TaskSpec("saliency", "saliency"))
PASCAL_MAT = (TaskSpec("human_parts", "semseg", num_classes=7), TaskSpec("normals", "normals"),
              TaskSpec("edges", "edges"))
SPLITS = {"train": ["0001", "0002", "0003"], "val": ["0004", "0005"]}


def _has_scipy() -> bool:
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        return False
    return True


def _unit_normals(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    n = rng.normal(size=(*hw, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.3
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def _save_png(path: Path, a: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(a)
    if palette:  # PASCAL's label PNGs are palette images: the array is the index
        im = im.convert("L").convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        im.putdata(a.flatten().tolist())
    im.save(path)


def _save_jpg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)


def _write_splits(root: Path, folder: str) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for split, ids in SPLITS.items():
        (root / folder / f"{split}.txt").write_text("\n".join(ids) + "\n")


def write_nyud(root: Path, hw: tuple[int, int] = HW) -> dict[str, dict[str, np.ndarray]]:
    """NYUD_MT/ as M³ViT's data/nyud.py reads it; returns the raw arrays per image id."""
    rng = np.random.default_rng(0)
    _write_splits(root, "gt_sets")
    raw = {}
    for image_id in (i for ids in SPLITS.values() for i in ids):
        r = {"image": rng.integers(0, 256, (*hw, 3), dtype=np.uint8),
             "segmentation": rng.integers(0, 41, hw, dtype=np.uint8),
             "depth": rng.uniform(0.5, 9.5, hw).astype(np.float32),
             "normals": _unit_normals(rng, hw), "edge": (rng.random(hw) < 0.2).astype(np.float32)}
        r["segmentation"][0, :3] = (0, 1, 40)  # unlabelled, first class, last class
        r["depth"][1, 0] = 0.0  # no depth reading
        r["normals"][1, 1] = 0.0  # no normal
        _save_jpg(root / "images" / f"{image_id}.jpg", r["image"])
        _save_png(root / "segmentation" / f"{image_id}.png", r["segmentation"])
        for kind in ("depth", "normals", "edge"):
            (root / kind).mkdir(exist_ok=True)
            np.save(root / kind / f"{image_id}.npy", r[kind])
        raw[image_id] = r
    return raw


def _pascal_anno(image_id: str, parts: list[tuple[str, np.ndarray]], hw: tuple[int, int]) -> dict:
    """A PASCAL-Part ``anno`` struct: one person with ``parts`` (none: a dog only)."""
    part_arr = np.zeros((1, len(parts)), dtype=[("part_name", "O"), ("mask", "O")])
    for k, (name, mask) in enumerate(parts):
        part_arr[0, k] = (name, mask.astype(np.uint8))
    objs = np.zeros((1, 1), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    person = np.zeros(hw, np.uint8)
    for _, m in parts:
        person |= m.astype(np.uint8)
    objs[0, 0] = ("person", 15, person, part_arr) if parts else ("dog", 12, np.ones(hw, np.uint8),
                                                                  np.zeros((0, 0)))
    return {"anno": {"imname": image_id, "objects": objs}}


def write_pascal(root: Path, hw: tuple[int, int] = HW) -> dict[str, dict[str, np.ndarray]]:
    """PASCAL_MT/ as ASTMT's pascal_context.py reads it (the .mat files only when scipy is there)."""
    rng = np.random.default_rng(1)
    _write_splits(root, "ImageSets/Context")
    raw = {}
    for k, image_id in enumerate(i for ids in SPLITS.values() for i in ids):
        r = {"image": rng.integers(0, 256, (*hw, 3), dtype=np.uint8),
             "semseg": rng.integers(0, 21, hw, dtype=np.uint8),
             "sal": rng.integers(0, 256, hw, dtype=np.uint8),
             "normals": np.round((_unit_normals(rng, hw) + 1) * 127.5).astype(np.uint8),
             "labelmap": rng.choice([4, 284, 360, 427], size=hw).astype(np.uint16)}  # antenna person sky tv
        r["semseg"][0, :2] = (255, 20)
        r["sal"][0, :2] = (127, 128)
        r["normals"][2, 0] = 128  # decodes to a near-zero vector: no normal
        _save_jpg(root / "JPEGImages" / f"{image_id}.jpg", r["image"])
        # the first image is in VOC12 (preferred) and, with other labels, in pascal-context
        folder = "VOC12" if k == 0 else "pascal-context"
        _save_png(root / "semseg" / folder / f"{image_id}.png", r["semseg"], palette=True)
        if k == 0:
            other = np.full(hw, 3, np.uint8)
            _save_png(root / "semseg" / "pascal-context" / f"{image_id}.png", other, palette=True)
        _save_png(root / "sal_distill" / f"{image_id}.png", r["sal"])
        _save_png(root / "normals_distill" / f"{image_id}.png", r["normals"])
        r["parts"] = [] if k == 1 else [("head", rng.random(hw) < 0.3), ("llarm", rng.random(hw) < 0.2)]
        if _has_scipy():
            import scipy.io

            for folder in ("human_parts", "pascal-context/trainval"):
                (root / folder).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "human_parts" / f"{image_id}.mat", _pascal_anno(image_id, r["parts"], hw))
            scipy.io.savemat(root / "pascal-context" / "trainval" / f"{image_id}.mat",
                             {"LabelMap": r["labelmap"]})
        raw[image_id] = r
    return raw


@pytest.fixture(scope="module")
def nyud(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("NYUD_MT")
    return root, write_nyud(root)


@pytest.fixture(scope="module")
def pascal(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("PASCAL_MT")
    return root, write_pascal(root)


def _jpeg_normalised(path: Path) -> np.ndarray:
    rgb = np.array(Image.open(path).convert("RGB")).astype(np.float32) / 255.0
    return ((rgb - np.array(IMAGE_MEAN)) / np.array(IMAGE_STD)).transpose(2, 0, 1)


def _nearest_window(a: np.ndarray, box: tuple[int, int, int, int], out: tuple[int, int], fill: float
                    ) -> np.ndarray:
    """Reference resampling of the last two axes: output pixel centre → window pixel (floor)."""
    y0, x0, y1, x1 = box
    ys = y0 + np.floor((np.arange(out[0]) + 0.5) * (y1 - y0) / out[0]).astype(int)
    xs = x0 + np.floor((np.arange(out[1]) + 0.5) * (x1 - x0) / out[1]).astype(int)
    inside = ((ys >= 0) & (ys < a.shape[-2]))[:, None] & ((xs >= 0) & (xs < a.shape[-1]))[None]
    picked = a[..., np.clip(ys, 0, a.shape[-2] - 1)[:, None], np.clip(xs, 0, a.shape[-1] - 1)[None]]
    return np.where(inside, picked, fill)


def _nyud_labels(r: dict) -> dict[str, np.ndarray]:
    """The NYUD conventions applied to raw arrays: (C, H, W) / (H, W) like the targets."""
    seg = r["segmentation"].astype(np.int64)
    return {"semseg": np.where(seg == 0, 255, seg - 1), "depth": r["depth"][None],
            "normals": r["normals"].transpose(2, 0, 1), "edges": r["edge"][None]}


def test_nyud_samples_have_the_shapes_dtypes_and_ranges_the_losses_expect(nyud) -> None:
    root, _ = nyud
    for augment in (False, True):
        ds = NYUDv2(root, "train", NYUD_ALL, (16, 16), augment=augment, seed=3)
        assert len(ds) == 3 and "NYUDv2(3 images (16, 16)" in repr(ds)
        batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
        assert batch["image"].shape == (3, 3, 16, 16) and batch["image"].dtype == torch.float32
        seg = batch["semseg"]
        assert seg.shape == (3, 16, 16) and seg.dtype == torch.int64
        assert set(seg.unique().tolist()) <= set(range(40)) | {255}
        assert batch["depth"].shape == (3, 1, 16, 16) and (batch["depth"] >= 0).all()
        norm = batch["normals"].norm(dim=1)
        assert batch["normals"].shape == (3, 3, 16, 16)
        assert torch.all(((norm - 1).abs() < 1e-5) | (norm == 0)), "unit normals or 0 = invalid"
        assert set(batch["edges"].unique().tolist()) <= {0.0, 1.0}
        evaluator = MultiTaskEvaluator(NYUD_ALL)
        for t in NYUD_ALL:  # the format the losses and meters accept
            pred = torch.randn(3, t.out_channels, 16, 16)
            assert torch.isfinite(task_loss(t, pred, batch[t.name]))
            evaluator.update(t.name, pred, batch[t.name])
        assert all(math.isfinite(m[k]) for m in evaluator.compute().values() for k in m)


def test_nyud_label_conventions_on_known_pixels(nyud) -> None:
    """0 = unlabelled → 255 and class k → k-1; depth in metres with 0 invalid; normals as stored."""
    root, raw = nyud
    ds = NYUDv2(root, "val", NYUD_ALL, HW)
    s, r = ds[1], raw["0005"]
    assert s["semseg"][0, :3].tolist() == [255, 0, 39]
    for name, want in _nyud_labels(r).items():
        np.testing.assert_allclose(s[name].numpy(), want, atol=1e-6, err_msg=name)
    assert s["depth"][0, 1, 0] == 0 and s["normals"][:, 1, 1].abs().sum() == 0
    np.testing.assert_allclose(s["image"].numpy(), _jpeg_normalised(root / "images" / "0005.jpg"), atol=1e-5)
    small = NYUDv2(root, "val", NYUD_ALL, (12, 20))[1]  # labels resized by nearest pixel centre
    for name, want in _nyud_labels(r).items():
        np.testing.assert_allclose(small[name].numpy(), _nearest_window(want, (0, 0, *HW), (12, 20), 0),
                                   atol=1e-6, err_msg=name)


def test_pascal_label_conventions_on_known_pixels(pascal) -> None:
    """Palette indices are the classes (255 kept as ignore), VOC12 wins over pascal-context, and
    saliency is > 127.5 of 255."""
    root, raw = pascal
    ds = PascalContext(root, "train", PASCAL_PNG, HW)
    for i, image_id in enumerate(SPLITS["train"]):
        s, r = ds[i], raw[image_id]
        np.testing.assert_array_equal(s["semseg"].numpy(), r["semseg"])
        np.testing.assert_array_equal(s["saliency"][0].numpy(), (r["sal"] >= 128).astype(np.float32))
    assert ds[0]["semseg"][0, :2].tolist() == [255, 20] and ds[0]["saliency"][0, 0, :2].tolist() == [0, 1]


@pytest.mark.skipif(not _has_scipy(), reason="scipy is not installed: PASCAL's .mat files cannot be read")
def test_pascal_parts_normals_and_edges_from_the_mat_files(pascal) -> None:
    root, raw = pascal
    ds = PascalContext(root, "train", PASCAL_MAT, HW)
    for i, image_id in enumerate(SPLITS["train"]):
        s, r = ds[i], raw[image_id]
        parts = np.zeros(HW, np.int64)
        for name, mask in r["parts"]:
            parts[mask] = HUMAN_PART_IDS[name]
        want = parts if r["parts"] else np.full(HW, 255)  # no person with parts: nothing is known
        np.testing.assert_array_equal(s["human_parts"].numpy(), want)
        lab = r["labelmap"].astype(np.int64)
        edges = np.zeros(HW, bool)
        edges[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        edges[:-1] |= lab[:-1] != lab[1:]
        np.testing.assert_array_equal(s["edges"][0].numpy(), edges)
        n = 2 * r["normals"].astype(np.float64) / 255 - 1
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n[lab == 360] = 0  # sky is no NYUD class: its distilled normals are not kept
        n[2, 0] = 0
        np.testing.assert_allclose(s["normals"].numpy(), n.transpose(2, 0, 1), atol=1e-5)
    assert HUMAN_PART_IDS["head"] == 1 and HUMAN_PART_IDS["llarm"] == 4


def test_pascal_mat_tasks_without_scipy_are_refused_up_front(pascal, monkeypatch) -> None:
    root, _ = pascal
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    for t in PASCAL_MAT:
        with pytest.raises(ModuleNotFoundError, match=r"needs scipy.*pip install scipy") as e:
            PascalContext(root, "train", (PASCAL_PNG[0], t), HW)
        assert ".mat" in str(e.value) and t.name in str(e.value)
    assert len(PascalContext(root, "train", PASCAL_PNG, HW)) == 3  # the PNG tasks need no scipy


def _draws(ds: NYUDv2, epochs: int = 8) -> list:
    """Every sample's augmentation in each of the first epochs."""
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        out += [ds.augmentation(i, HW) for i in range(len(ds))]
    return out


def _find(ds: NYUDv2, flip: bool) -> int:
    """An index whose augmentation (some epoch) has the wanted flip; leaves ds at that epoch."""
    for epoch in range(50):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            if ds.augmentation(i, HW).flip == flip:
                return i
    raise AssertionError("no such sample in 50 epochs")


def test_augmentation_is_a_function_of_seed_epoch_and_index(nyud) -> None:
    root, _ = nyud
    a, b = (NYUDv2(root, "train", NYUD_ALL, (16, 16), augment=True, seed=5) for _ in range(2))
    for i in range(3):
        for k in ("image", "semseg", "depth", "normals", "edges"):
            assert torch.equal(a[i][k], b[i][k]) and torch.equal(a[i][k], a[i][k])
    other = NYUDv2(root, "train", NYUD_ALL, (16, 16), augment=True, seed=6)
    assert _draws(a) == _draws(b) and _draws(a) != _draws(other)
    assert len({(x.flip, x.scale) for x in _draws(a)}) > 3, "epochs draw new flips and zooms"
    assert {x.scale for x in _draws(a)} <= set(NYUDv2.SCALES)
    assert NYUDv2(root, "train", NYUD_ALL, HW).augmentation(0, HW).box == (0, 0, *HW)  # off: identity


def test_flip_mirrors_every_map_and_negates_the_normals_x(nyud, monkeypatch) -> None:
    root, raw = nyud
    monkeypatch.setattr(NYUDv2, "SCALES", (1.0,))  # isolate the flip: the window is the whole image
    ds = NYUDv2(root, "train", NYUD_ALL, HW, augment=True, seed=0)
    for flip in (False, True):
        i = _find(ds, flip)
        s, image_id = ds[i], SPLITS["train"][i]
        want = {**_nyud_labels(raw[image_id]), "image": _jpeg_normalised(root / "images" / f"{image_id}.jpg")}
        if flip:
            want = {k: np.flip(v, -1) for k, v in want.items()}
            want["normals"] = want["normals"] * np.array([-1, 1, 1])[:, None, None]
        for k, v in want.items():
            np.testing.assert_allclose(s[k].numpy(), v, atol=1e-5, err_msg=f"{k}, flip={flip}")


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_zoom_crops_or_pads_a_window_and_rescales_depth(nyud, monkeypatch, scale: float) -> None:
    """s = 2: a half-size window at a random place, upsampled; s = 0.5: the image inside a padded
    window twice its size. Padding is ignore (semseg 255) or invalid (depth, normals 0)."""
    root, raw = nyud
    monkeypatch.setattr(NYUDv2, "SCALES", (scale,))
    ds = NYUDv2(root, "train", NYUD_ALL, HW, augment=True, seed=1)
    for i, image_id in enumerate(SPLITS["train"]):
        aug, s = ds.augmentation(i, HW), ds[i]
        y0, x0, y1, x1 = aug.box
        assert (y1 - y0, x1 - x0) == (round(HW[0] / scale), round(HW[1] / scale))
        assert (0 <= y0 <= y1 <= HW[0]) if scale > 1 else (y0 <= 0 and y1 >= HW[0])
        for k, v in _nyud_labels(raw[image_id]).items():
            w = _nearest_window(v, aug.box, HW, 255 if k == "semseg" else 0)
            if aug.flip:
                w = np.flip(w, -1) * (np.array([-1, 1, 1])[:, None, None] if k == "normals" else 1)
            np.testing.assert_allclose(s[k].numpy(), w / (scale if k == "depth" else 1), atol=1e-5, err_msg=k)
    if scale < 1:
        assert (s["semseg"] == 255).any() and (s["depth"] == 0).any()


def test_wrong_root_split_or_missing_files_are_errors_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"root .*nowhere is not a directory.*NYUD_MT/ holding"):
        NYUDv2(tmp_path / "nowhere", "train", NYUD_TASKS, HW)
    root = tmp_path / "NYUD_MT"
    write_nyud(root)
    with pytest.raises(FileNotFoundError, match=r"gt_sets/test\.txt not found .*\['train', 'val'\]"):
        NYUDv2(root, "test", NYUD_TASKS, HW)
    (root / "depth" / "0002.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing depth file .*depth/0002\.npy for image '0002'"):
        NYUDv2(root, "train", NYUD_TASKS, HW)
    assert len(NYUDv2(root, "train", NYUD_TASKS, HW, n=1)) == 1  # only the images used are checked
    with pytest.raises(ValueError, match=r"task 'saliency' .* has no such labels; it has \['depth'"):
        NYUDv2(root, "val", (TaskSpec("saliency", "saliency"),), HW)
    with pytest.raises(ValueError, match="semseg has 40 classes, the task has num_classes=13"):
        NYUDv2(root, "val", (TaskSpec("semseg", "semseg", num_classes=13),), HW)
    _save_png(root / "segmentation" / "0004.png", np.full(HW, 77, np.uint8))
    with pytest.raises(ValueError, match=r"segmentation/0004\.png: class ids \[76\] outside 0\.\.39"):
        NYUDv2(root, "val", NYUD_TASKS, HW)[0]
    with pytest.raises(FileNotFoundError, match=r"Context/train\.txt not found.*the unpacked PASCAL_MT/"):
        PascalContext(root, "train", PASCAL_PNG, HW)  # a NYUD folder given as PASCAL's
    write_pascal(tmp_path / "PASCAL_MT")
    (tmp_path / "PASCAL_MT" / "semseg" / "pascal-context" / "0002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing semseg file .*VOC12/0002\.png or .*xt/0002\.png"):
        PascalContext(tmp_path / "PASCAL_MT", "train", PASCAL_PNG, HW)
    cfg = MoEViTConfig(img_size=(16, 16), tasks=NYUD_TASKS)
    with pytest.raises(ValueError, match=r"give the root folder of the unpacked NYUD_MT/ \(--data-root\)"):
        build_dataset(cfg, "train", 2, name="nyudv2")


def test_build_dataset_selects_the_dataset_and_augments_only_train(nyud, pascal) -> None:
    cfg = MoEViTConfig(img_size=(16, 16), tasks=NYUD_TASKS)
    train = build_dataset(cfg, "train", 2, name="nyudv2", root=str(nyud[0]))
    val = build_dataset(cfg, "val", 100, name="nyudv2", root=str(nyud[0]))
    assert isinstance(train, NYUDv2) and train.augment and len(train) == 2
    assert not val.augment and len(val) == 2, "n is an upper bound: the split has 2 images"
    assert train.seed == cfg.seed and train[0]["image"].shape == (3, 16, 16)
    p = build_dataset(cfg.replace(tasks=PASCAL_PNG), "val", 2, name="pascal_context", root=str(pascal[0]))
    assert isinstance(p, PascalContext) and set(p[0]) == {"image", "semseg", "saliency"}
    assert isinstance(build_dataset(cfg, "val", 2), SyntheticScenes), "synthetic stays the default"
    assert NYUDv2.unsupported(NYUD_ALL) is None and "40 classes" in NYUDv2.unsupported(PASCAL_PNG)


TINY = MoEViTConfig(name="tiny", img_size=(16, 16), patch_size=4, n_embd=16, n_layer=2, n_head=2,
                    mlp_hidden=32, moe_blocks=(1,), n_experts=4, top_k=2, expert_hidden=16,
                    decoder_channels=8, tasks=NYUD_TASKS)


@pytest.mark.parametrize("name", ["nyudv2", "pascal_context"])
def test_one_training_step_of_the_model_on_each_dataset(name: str, nyud, pascal, tmp_path: Path) -> None:
    from mtl_moe.train import TrainArgs, train

    root, tasks = (nyud[0], NYUD_ALL) if name == "nyudv2" else (pascal[0], PASCAL_PNG + PASCAL_MAT)
    if not _has_scipy():
        tasks = tuple(t for t in tasks if t not in PASCAL_MAT)
    args = TrainArgs(epochs=1, batch_size=2, n_train=3, n_val=2, max_steps=1, warmup_steps=1,
                     dataset=name, data_root=str(root))
    out = train(TINY.replace(tasks=tasks), args, tmp_path, progress=False)
    assert out["step"] == 1
    first, last = out["history"][0], out["history"][-1]
    assert math.isfinite(first["loss"]) and all(f"loss/{t.name}" in first for t in tasks)
    assert all(f"val/{t.name}/" in " ".join(last) for t in tasks), "validation ran on the val split"


def test_pascal_astmt_edge_target_is_the_thinned_laplacian_of_the_label_map(tmp_path) -> None:
    import scipy.io

    from mtl_moe.datasets import PascalContext

    root = tmp_path / "PASCAL_MT"
    write_pascal(root)
    tasks = (TaskSpec("edges", "edges"),)
    ds = PascalContext(root, "val", tasks, HW, edge_target="astmt")
    labels = np.zeros(HW, np.uint16)
    labels[:, 5:] = 284  # one vertical label change between columns 4 and 5, nothing else
    scipy.io.savemat(ds.paths[0]["edges"][0], {"LabelMap": labels})
    e = ds[0]["edges"][0].numpy() > 0.5  # (H, W)
    # |Laplacian| > 0 marks columns 4 and 5 (ASTMT marks both sides); thinning keeps one per row,
    # the top row's end shortened by one as bwmorph thins a 2-wide strip
    assert set(np.nonzero(e)[1].tolist()) <= {4, 5} and (e[1:].sum(1) == 1).all() and e[0].sum() <= 1
    ours = PascalContext(root, "val", tasks, HW)[0]["edges"][0].numpy() > 0.5
    assert ours.sum() == HW[0] and not np.array_equal(e, ours)  # ours: the one-sided boundary, every row
    with pytest.raises(ValueError, match="edge_target must be one of"):
        PascalContext(root, "val", tasks, HW, edge_target="laplace")


@pytest.mark.skipif(not _has_scipy(), reason="PASCAL-Context's edges are read from .mat files (scipy)")
def test_the_m3vit_recipe_trains_and_scores_pascal_edges_on_the_astmt_target(tmp_path, monkeypatch) -> None:
    import mtl_moe.train as train_mod
    from mtl_moe.report import evaluate_run

    root = tmp_path / "PASCAL_MT"
    write_pascal(root)
    built: list[PascalContext] = []

    def spy(*a, **k):  # the real build_dataset; keeps what the trainer built
        built.append(build_dataset(*a, **k))
        return built[-1]

    monkeypatch.setattr(train_mod, "build_dataset", spy)
    tasks = (TaskSpec("edges", "edges"),)
    args = train_mod.recipe_args("m3vit", epochs=1, batch_size=2, n_train=3, n_val=2, max_steps=1,
                                 dataset="pascal_context", data_root=str(root))
    train_mod.train(TINY.replace(tasks=tasks), args, tmp_path / "run", progress=False)
    assert [d.edge_target for d in built] == ["astmt", "astmt"], "train and val sets"
    # the validation target is ASTMT's (the test above checks that loader against the LabelMap)
    got = built[1][0]["edges"][0].numpy()
    astmt = PascalContext(root, "val", tasks, TINY.img_size, edge_target="astmt")[0]["edges"][0].numpy()
    ours = PascalContext(root, "val", tasks, TINY.img_size)[0]["edges"][0].numpy()
    assert int((got != astmt).sum()) == 0 and int((got != ours).sum()) > 0  # mismatching pixels
    res = evaluate_run(tmp_path / "run" / "checkpoint.pt", n_val=2, dataset="pascal_context",
                       data_root=str(root), progress=False)
    assert res["edge_target"] == "astmt", "our metrics score the label the model was trained on"
