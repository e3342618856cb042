"""Synthetic scenes: deterministic, well-formed, and with labels that agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_moe.config import PASCAL_TASKS, PRESETS, TaskSpec
from mtl_moe.data import IMAGE_MEAN, IMAGE_STD, SyntheticScenes, _edges, _inside, build_dataset

DEMO = PRESETS["demo"]


@pytest.fixture(scope="module")
def ds() -> SyntheticScenes:
    return build_dataset(DEMO, "val", 200)


def test_same_seed_same_scenes_and_a_sample_does_not_depend_on_set_size(ds) -> None:
    small = build_dataset(DEMO, "val", 100)
    for k in ("image", "semseg", "depth", "normals"):
        assert torch.equal(small[57][k], ds[57][k])
    assert not torch.equal(build_dataset(DEMO, "val", 1, seed=1)[0]["image"], ds[0]["image"])
    assert not torch.equal(build_dataset(DEMO, "train", 1)[0]["image"], ds[0]["image"])


def test_shapes_dtypes_and_ranges_per_task_type(ds) -> None:
    s = ds[3]
    H, W = DEMO.img_size
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    assert s["semseg"].shape == (H, W) and s["semseg"].dtype == torch.int64
    assert s["semseg"].min() >= 0 and s["semseg"].max() < 4
    assert s["depth"].shape == (1, H, W) and (s["depth"] > 0).all()
    assert s["normals"].shape == (3, H, W)
    torch.testing.assert_close(s["normals"].norm(dim=0), torch.ones(H, W))
    assert (s["normals"][2] > 0).all(), "every visible surface faces the camera"
    for t in ("edges", "saliency"):
        assert s[t].shape == (1, H, W) and set(s[t].unique().tolist()) <= {0.0, 1.0}


def test_pascal_tasks_get_two_semseg_labellings() -> None:
    ds = SyntheticScenes(PASCAL_TASKS, (48, 48), 20, seed=3)
    seg = torch.stack([ds[i]["semseg"] for i in range(20)])
    parts = torch.stack([ds[i]["human_parts"] for i in range(20)])
    assert seg.max() < 21 and parts.max() < 7 and parts.max() > 1
    assert torch.equal(seg > 0, parts > 0), "parts label exactly the object pixels"


def test_objects_occlude_the_wall_behind_them(ds) -> None:
    for i in range(50):
        s = ds[i]
        obj = s["semseg"] > 0
        if obj.any() and (~obj).any():
            assert s["depth"][0][obj].max() < s["depth"][0][~obj].min()


def test_edges_lie_exactly_on_object_boundaries() -> None:
    ids = np.zeros((6, 6), dtype=np.int64)
    ids[2:4, 2:4] = 1
    e = _edges(ids)
    # the 2x2 block and its 4-neighbours outside (the corners of the ring are not neighbours)
    expected = np.zeros((6, 6), dtype=bool)
    expected[1:5, 2:4] = True
    expected[2:4, 1:5] = True
    assert np.array_equal(e, expected)


def test_polygon_test_accepts_both_windings() -> None:
    sq = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]], dtype=float)
    px, py = np.array([0.0, 2.0]), np.array([0.0, 0.0])
    assert _inside(px, py, sq).tolist() == [True, False]
    assert _inside(px, py, sq[::-1]).tolist() == [True, False]


def test_salient_object_is_the_nearest_one(ds) -> None:
    for i in range(50):
        s = ds[i]
        sal = s["saliency"][0] > 0
        if sal.any():
            others = (s["semseg"] > 0) & ~sal
            if others.any():
                assert s["depth"][0][sal].mean() < s["depth"][0][others].mean() + 0.5


def test_image_carries_depth_and_class_cues(ds) -> None:
    """Fog makes far pixels greyer; each class has its own hue: the tasks are learnable."""
    img = torch.stack([ds[i]["image"] for i in range(200)]) * torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    img = img + torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    seg = torch.stack([ds[i]["semseg"] for i in range(200)])
    depth = torch.stack([ds[i]["depth"][0] for i in range(200)])
    obj = seg > 0
    sat = (img.max(1).values - img.min(1).values)[obj]
    corr = np.corrcoef(sat.numpy(), depth[obj].numpy())[0, 1]
    assert corr < -0.2, f"saturation should fall with depth (fog), corr={corr:.2f}"
    means = [img.permute(1, 0, 2, 3)[:, seg == c].mean(1) for c in (1, 2, 3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert (means[a] - means[b]).abs().max() > 0.1, f"classes {a + 1},{b + 1} look alike"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"img_size": (4, 4)}, "at least 8x8"),
    ({"n": 0}, "n must be >= 1"),
    ({"split": "holdout"}, "unknown split 'holdout'"),
])
def test_bad_dataset_arguments_are_clear_errors(kwargs: dict, needle: str) -> None:
    args = {"tasks": (TaskSpec("depth", "depth"),), "img_size": (16, 16), "n": 2, **kwargs}
    with pytest.raises(ValueError, match=needle):
        SyntheticScenes(**args)
    with pytest.raises(ValueError, match="unknown dataset 'nyud'; available"):
        build_dataset(DEMO, "val", 2, name="nyud")
