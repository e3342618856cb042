"""The config is the single source of truth: presets match the papers, bad values are refused."""

from __future__ import annotations

import pytest

from mtl_moe.config import PRESETS, ConfigError, MoEViTConfig, TaskSpec, get_preset, load_config


def test_m3vit_tiny_matches_edge_moe_published_shape() -> None:
    c = PRESETS["m3vit-tiny"]
    # Edge-MoE: 128x256 input, patch 16 → 8x16 = 128 patches + class token = 129 tokens.
    assert c.grid == (8, 16) and c.n_patches == 128 and c.n_tokens == 129
    assert (c.n_embd, c.n_layer, c.n_head, c.head_dim) == (192, 12, 3, 64)
    assert c.moe_blocks == (1, 3, 5, 7, 9, 11)
    assert (c.n_experts, c.top_k, c.expert_hidden, c.mlp_hidden) == (16, 2, 384, 768)
    assert [t.type for t in c.tasks] == ["semseg", "depth"]


def test_m3vit_s_matches_m3vits_vit_small_moe_config() -> None:
    # VITA-Group/M3ViT configs/pascal/vit_moe/pup_moe_vit_small_multi_task_baseline.yml (img_size 512²,
    # patch 16, embed 384, depth 12, num_heads 12, mlp_ratio 4, head channels 256) + its README launch
    # command (16 experts, top-4, moe_mlp_ratio 1); MoE in the odd blocks.
    c = PRESETS["m3vit-s"]
    assert (c.img_size, c.patch_size, c.n_embd, c.n_layer, c.mlp_hidden) == ((512, 512), 16, 384, 12, 1536)
    assert (c.n_head, c.head_dim) == (12, 32)
    assert (c.n_experts, c.top_k, c.expert_hidden, c.router) == (16, 4, 384, "per_task")
    assert c.moe_blocks == (1, 3, 5, 7, 9, 11) and c.decoder_channels == 256
    assert {t.name: t.loss_weight for t in c.tasks} == {
        "semseg": 1.0, "human_parts": 2.0, "saliency": 5.0, "normals": 10.0, "edges": 50.0}


def test_deit_shaped_variant_differs_from_m3vit_s_only_in_heads() -> None:
    s, d = PRESETS["m3vit-s"], PRESETS["m3vit-s-deit6"]
    assert (d.n_head, d.head_dim) == (6, 64)
    assert s.replace(name=d.name, n_head=6) == d


def test_dense_equivalent_hidden_is_k_experts() -> None:
    assert PRESETS["m3vit-tiny"].dense_equiv_hidden == 2 * 384


@pytest.mark.parametrize(("changes", "needle"), [
    ({"n_embd": 64, "n_head": 3}, "not divisible by n_head"),
    ({"top_k": 9, "n_experts": 8}, "top_k 9 exceeds n_experts 8"),
    ({"img_size": (30, 32)}, "not divisible by patch_size"),
    ({"moe_blocks": (1, 4)}, "moe_blocks [4] out of range"),
    ({"moe_blocks": (1, 1)}, "lists a block twice"),
    ({"router": "magic"}, "unknown router 'magic'"),
    ({"decoder": "fpn"}, "unknown decoder 'fpn'"),
    ({"patch_size": 6, "img_size": (36, 36)}, "power-of-two patch_size"),
    ({"n_experts": 0}, "n_experts must be a positive integer"),
    ({"tasks": []}, "tasks is empty"),
    ({"tasks": [{"name": "a", "type": "depth"}, {"name": "a", "type": "edges"}]}, "unique"),
    ({"tasks": [{"name": "x", "type": "optical_flow"}]}, "unknown task type 'optical_flow'"),
    ({"tasks": [{"name": "s", "type": "semseg", "num_classes": 1}]}, "num_classes >= 2"),
    ({"tasks": [{"name": "d", "type": "depth", "num_classes": 5}]}, "leave num_classes at 0"),
    ({"bogus_field": 1}, "unknown config field(s) ['bogus_field']"),
])
def test_bad_config_is_refused_with_a_message_naming_the_problem(changes: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        PRESETS["demo"].replace(**changes)
    assert needle in str(e.value)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_round_trips_through_file(tmp_path, suffix: str) -> None:
    c = PRESETS["m3vit-s"].replace(router="task_conditioned", renormalize=True)
    c.save(tmp_path / f"c{suffix}")
    back = load_config(tmp_path / f"c{suffix}")
    assert back == c and back.hash() == c.hash()
    assert isinstance(back.tasks[0], TaskSpec) and isinstance(back.img_size, tuple)


def test_hash_changes_with_any_field() -> None:
    c = PRESETS["demo"]
    assert c.hash() != c.replace(top_k=1).hash() != c.replace(seed=1).hash()


def test_unknown_task_and_preset_errors_list_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'flow'.*'semseg'"):
        PRESETS["demo"].task_index("flow")
    with pytest.raises(ConfigError, match="out of range 0..4"):
        PRESETS["demo"].task_index(5)
    with pytest.raises(ConfigError, match="available:.*m3vit-tiny"):
        get_preset("vit-h")


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        PRESETS["demo"].n_embd = 5  # type: ignore[misc]


def test_single_int_image_size_means_square() -> None:
    c = MoEViTConfig.from_dict({**PRESETS["demo"].to_dict(), "img_size": 16})
    assert c.img_size == (16, 16)


def test_retired_noisy_gating_false_loads_and_true_is_refused_in_one_line(tmp_path, capsys) -> None:
    import torch

    from mtl_moe.checkpoint import save_checkpoint
    from mtl_moe.cli import main
    from mtl_moe.model import M3ViT

    c = PRESETS["demo"]
    old = {**c.to_dict(), "noisy_gating": False}  # what every config saved before the change says
    assert MoEViTConfig.from_dict(old) == c and "noisy_gating" not in c.to_dict()
    with pytest.raises(ConfigError, match="noisy_gating=true .*no longer offered.*gate_noise_std"):
        MoEViTConfig.from_dict({**old, "noisy_gating": True})
    path = tmp_path / "checkpoint.pt"  # an old run trained with the learned noise
    save_checkpoint(path, M3ViT(c), c)
    ck = torch.load(path, weights_only=False)
    ck["config"]["noisy_gating"] = True
    torch.save(ck, path)
    rc = main(["eval", "--checkpoint", str(path), "--n-val", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "no longer offered" in err
