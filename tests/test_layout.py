"""The tile-major weight layout (mtl_moe/layout.py): one definition for the exporter, the kernels'
address arithmetic and the readers of weights.bin — round trip, tile order, padding, and a planted
layout defect that the C-simulation must catch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_golden import _scaled_model

from mtl_moe.config import get_preset
from mtl_moe.csim import compare
from mtl_moe.hls_export import KernelParams, export
from mtl_moe.hw import get_hw
from mtl_moe.layout import TileLayout, pack_tiles, tile_major, unpack_tiles, untile
from mtl_moe.quant import QuantM3ViT


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 40), t_out=st.integers(1, 9), t_in=st.integers(1, 9),
       elem=st.sampled_from([1, 2, 4, 8]), axi=st.sampled_from([64, 128, 256]), seed=st.integers(0, 99))
def test_pack_then_unpack_is_the_identity(n, k, t_out, t_in, elem, axi, seed):
    lay = TileLayout(n, k, t_out, t_in, elem, axi)
    hi = 1 << (8 * elem - 1)
    w = np.random.default_rng(seed).integers(-hi, hi, (n, k), dtype=np.int64)
    data = pack_tiles(w, lay)
    assert len(data) == lay.nbytes and lay.tile_bytes % (axi // 8) == 0
    assert np.array_equal(unpack_tiles(data, lay), w)
    assert np.array_equal(untile(tile_major(w, t_out, t_in), n, k), w)


def test_tiles_are_stored_output_tile_outer_each_contiguous_row_major():
    n, k, t_out, t_in = 5, 7, 2, 3  # 3 x 3 tiles, the last row and column of tiles cut
    lay = TileLayout(n, k, t_out, t_in, 2, 64)
    w = np.arange(n * k, dtype=np.int64).reshape(n, k) + 1
    data = pack_tiles(w, lay)
    assert (lay.n_tiles, lay.k_tiles, lay.tile_beats, lay.tile_bytes) == (3, 3, 2, 16)
    for i in range(lay.n_tiles):
        for j in range(lay.k_tiles):
            off = lay.tile_offset(i, j)
            assert off == (i * lay.k_tiles + j) * lay.tile_bytes
            tile = np.frombuffer(data[off: off + t_out * t_in * 2], "<i2").reshape(t_out, t_in)
            want = np.zeros((t_out, t_in), np.int64)
            part = w[i * t_out:(i + 1) * t_out, j * t_in:(j + 1) * t_in]
            want[:part.shape[0], :part.shape[1]] = part
            assert np.array_equal(tile, want), (i, j)
    with pytest.raises(ValueError, match="outside the 3 x 3 tile grid"):
        lay.tile_offset(3, 0)


def _pack_one_plane_as_before(w: np.ndarray, lay: TileLayout) -> bytes:
    """The single-plane layout as it was before weight planes: tile after tile, each zero-padded."""
    t = tile_major(w, lay.t_out, lay.t_in).reshape(lay.tiles, -1).astype(f"<i{lay.elem_bytes}")
    return np.pad(t, ((0, 0), (0, lay.tile_bytes // lay.elem_bytes - t.shape[1]))).tobytes()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 40), t_out=st.integers(1, 9), t_in=st.integers(1, 9),
       elem=st.sampled_from([1, 2, 4, 8]), axi=st.sampled_from([64, 128, 256]), seed=st.integers(0, 99))
def test_one_port_is_byte_identical_and_ports_only_reorder_whole_words(n, k, t_out, t_in, elem, axi, seed):
    hi = 1 << (8 * elem - 1)
    w = np.random.default_rng(seed).integers(-hi, hi, (n, k), dtype=np.int64)
    one = TileLayout(n, k, t_out, t_in, elem, axi)
    assert one.ports == 1 and one.plane_beats == one.tile_beats and one.plane_bytes == one.nbytes
    data = pack_tiles(w, one)
    assert data == _pack_one_plane_as_before(w, one)  # ports = 1: the bytes of today
    wb = one.word_bytes
    for p in (2, 4):
        if one.tile_beats % p:
            with pytest.raises(ValueError, match=f"ports = {p} must divide tile_beats"):
                TileLayout(n, k, t_out, t_in, elem, axi, p)
            continue
        lay = TileLayout(n, k, t_out, t_in, elem, axi, p)
        got = pack_tiles(w, lay)
        assert len(got) == lay.nbytes == one.nbytes and np.array_equal(unpack_tiles(got, lay), w)
        for t in range(lay.tiles):  # every word of the single plane, moved to where beat_offset says
            for j in range(lay.tile_beats):
                src = t * one.tile_bytes + j * wb
                assert got[lay.beat_offset(t, j): lay.beat_offset(t, j) + wb] == data[src: src + wb]


def test_two_ports_store_the_first_halves_then_the_second_halves():
    n, k, t_out, t_in = 5, 7, 4, 4  # 2 x 2 tiles of 16 codes, 16-bit codes, 64-bit words: 4 beats a tile
    lay = TileLayout(n, k, t_out, t_in, 2, 64, ports=2)
    assert (lay.tiles, lay.tile_beats, lay.plane_beats, lay.word_bytes) == (4, 4, 2, 8)
    assert (lay.plane_bytes, lay.plane_offset(1)) == (4 * 2 * 8, 64)
    w = np.arange(n * k, dtype=np.int64).reshape(n, k) + 1
    words = np.frombuffer(pack_tiles(w, lay), "<i2").reshape(2 * lay.tiles * lay.plane_beats, 4)
    tiles = tile_major(w, t_out, t_in).reshape(lay.tiles, lay.tile_beats, 4)  # a beat = 4 codes
    half = lay.plane_beats
    # plane 0: beats 0, 1 of tile 0, beats 0, 1 of tile 1, ...; plane 1: beats 2, 3 of each, in order
    want = np.concatenate([tiles[:, :half].reshape(-1, 4), tiles[:, half:].reshape(-1, 4)])
    assert np.array_equal(words, want)
    for t in range(lay.tiles):
        for j in range(lay.tile_beats):  # beat j of tile t: plane j >= half, word t * half + j % half
            assert lay.beat_offset(t, j) == (j >= half) * lay.plane_bytes + (t * half + j % half) * 8
    i, j = 1, 1  # tile (1, 1) = tile 3: its part in each plane
    assert lay.tile_offset(i, j) == 3 * half * 8 and lay.tile_offset(i, j, plane=1) == 64 + 3 * half * 8
    with pytest.raises(ValueError, match="plane 2 outside the 2 plane"):
        lay.plane_offset(2)


def test_padding_is_zero_and_whole_axi_words():
    lay = TileLayout(3, 5, 4, 4, 1, 256)  # one 4 x 4 tile... of 16 bytes in a 32-byte word
    w = np.full((3, 5), 7, np.int64)
    data = np.frombuffer(pack_tiles(w, lay), np.int8)
    assert lay.tiles == 2 and lay.tile_beats == 1 and data.size == 2 * 32
    t0 = data[:16].reshape(4, 4)
    assert (t0[:3, :4] == 7).all() and (t0[3] == 0).all()  # the 4th output row is padding
    t1 = data[32:48].reshape(4, 4)
    assert (t1[:3, 0] == 7).all() and (t1[:, 1:] == 0).all() and (t1[3] == 0).all()
    assert (data[16:32] == 0).all() and (data[48:] == 0).all()  # the rest of each word


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    cfg = get_preset("demo").replace(n_layer=1, moe_blocks=())
    out = tmp_path_factory.mktemp("layout-export")
    export(QuantM3ViT(_scaled_model(cfg, 2, 1.0), get_hw("w16a32")), out, force=True, kp=KernelParams())
    return out


def test_a_transposed_tile_in_weights_bin_is_caught_by_the_csim(small_export, tmp_path):
    r = compare(small_export, n_images=1, tasks=["depth"])
    assert r["mismatches"] == 0, r
    ex = tmp_path / "defect"
    shutil.copytree(small_export, ex, ignore=shutil.ignore_patterns("build"))
    man = json.loads((ex / "weights.json").read_text())
    e = man["tensors"]["blocks.0.attn.c_attn.weight"]
    t_out, t_in, nb = e["t_out"], e["t_in"], e["bytes"]
    assert t_out == t_in  # a square tile: its transpose has the same bytes' extent
    blob = bytearray((ex / "weights.bin").read_bytes())
    off = e["offset"] + e["tile_bytes"]  # tile (0, 1)
    tile = np.frombuffer(bytes(blob[off: off + t_out * t_in * nb]), f"<i{nb}").reshape(t_out, t_in)
    blob[off: off + tile.nbytes] = np.ascontiguousarray(tile.T).tobytes()
    (ex / "weights.bin").write_bytes(bytes(blob))
    bad = compare(ex, n_images=1, tasks=["depth"])["mismatches"]
    assert bad > 0, "a transposed weight tile went unnoticed"
