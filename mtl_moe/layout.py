"""The weight layout of ``weights.bin``: one definition for the exporter, the kernels' address
arithmetic, the RTL linear engine and its tests, the driver and the performance model.

A linear layer's weight W (N outputs x K inputs) is stored **tile-major**: the linear unit applies
T_OUT x T_IN tiles in (output tile outer, input tile inner) order, so the tiles are stored in that
order, each tile contiguous (its T_OUT rows of T_IN codes, row after row), zero-padded where the
layer's edge cuts a tile, and padded to whole AXI words. A tile is then one INCR burst of
``tile_beats`` beats at a word-aligned address — the read pattern an HP port serves best — and the
tile at (n-tile i, k-tile j) starts at ``(i * k_tiles + j) * tile_bytes``: no multiply by a runtime
row length in the kernel's address generator. Zero padding is harmless: a padded weight multiplies
an input column the unit never has (beyond K) or feeds an output row it never writes (beyond N).

Codes are little-endian at ``elem_bytes`` each (the smallest of 1, 2, 4, 8 bytes holding the type,
``mtl_moe.deploy.regmap.storage_bytes``); an AXI word of ``axi_bits`` holds ``axi_bits / (8 *
elem_bytes)`` codes, lowest address in the lowest bits (how an ``ap_uint<axi_bits>`` beat reads
memory on a little-endian AXI bus).

**Weight ports.** With ``ports`` = P > 1 the linear unit reads a weight through P m_axi bundles at
once, each with one flat pipelined loop over *contiguous* words (Vitis HLS infers a burst only from
consecutive addresses in a pipelined loop, UG1399). The ``tile_beats`` beats of every tile are cut
into P parts of ``plane_beats = tile_beats / P`` beats, and the tensor's bytes are P planes one after
another: plane p holds part p of every tile, tile after tile (the same tile order as above). Beat j
of tile t is then in plane ``j // plane_beats`` at word ``t * plane_beats + j % plane_beats`` of it,
and plane p starts ``p * plane_bytes`` into the tensor. Bundle p reads plane p from its first word
to its last, so a tile is P beats a cycle. The tensor keeps its size (``nbytes``); only the order of
its words changes, and P = 1 is the single-plane layout above, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class TileLayout:
    """How one (N x K) weight is cut into tiles and where each tile lies in memory."""

    n: int  # output features (rows of W)
    k: int  # input features (columns of W)
    t_out: int
    t_in: int
    elem_bytes: int
    axi_bits: int = 256
    ports: int = 1  # planes (m_axi bundles reading them), each 1 / ports of every tile's beats

    def __post_init__(self) -> None:
        for name in ("n", "k", "t_out", "t_in", "elem_bytes", "axi_bits", "ports"):
            if getattr(self, name) < 1:
                raise ValueError(f"TileLayout.{name} = {getattr(self, name)} must be >= 1")
        if self.axi_bits % 8 or self.axi_bits % (8 * self.elem_bytes):
            raise ValueError(f"axi_bits = {self.axi_bits} must hold whole {self.elem_bytes}-byte codes")
        if self.tile_beats % self.ports:
            raise ValueError(f"ports = {self.ports} must divide tile_beats = {self.tile_beats} (a "
                             f"{self.t_out} x {self.t_in} tile of {self.elem_bytes}-byte codes in "
                             f"{self.axi_bits}-bit words): every plane holds whole beats of every tile")

    @property
    def n_tiles(self) -> int:
        return _cdiv(self.n, self.t_out)

    @property
    def k_tiles(self) -> int:
        return _cdiv(self.k, self.t_in)

    @property
    def tiles(self) -> int:
        return self.n_tiles * self.k_tiles

    @property
    def word_bytes(self) -> int:
        return self.axi_bits // 8

    @property
    def codes_per_word(self) -> int:
        return self.word_bytes // self.elem_bytes

    @property
    def tile_beats(self) -> int:
        """AXI words (beats of one burst) per tile."""
        return _cdiv(self.t_out * self.t_in * self.elem_bytes, self.word_bytes)

    @property
    def tile_bytes(self) -> int:
        return self.tile_beats * self.word_bytes

    @property
    def nbytes(self) -> int:
        return self.tiles * self.tile_bytes

    @property
    def plane_beats(self) -> int:
        """Beats of one tile in each plane (``tile_beats`` when ports = 1)."""
        return self.tile_beats // self.ports

    @property
    def plane_bytes(self) -> int:
        """Bytes of one plane: part p of every tile (``nbytes`` when ports = 1)."""
        return self.tiles * self.plane_beats * self.word_bytes

    def plane_offset(self, p: int) -> int:
        """Byte offset (from the tensor's start) of plane p, the one bundle p reads front to back."""
        if not 0 <= p < self.ports:
            raise ValueError(f"plane {p} outside the {self.ports} plane(s)")
        return p * self.plane_bytes

    def tile_offset(self, i: int, j: int, plane: int = 0) -> int:
        """Byte offset (from the tensor's start) of the part in ``plane`` of the tile of output tile
        i, input tile j (with ports = 1: the whole tile, one burst of ``tile_beats`` beats)."""
        if not (0 <= i < self.n_tiles and 0 <= j < self.k_tiles):
            raise ValueError(f"tile ({i}, {j}) outside the {self.n_tiles} x {self.k_tiles} tile grid")
        return self.plane_offset(plane) + (i * self.k_tiles + j) * self.plane_beats * self.word_bytes

    def beat_offset(self, t: int, j: int) -> int:
        """Byte offset of beat j of tile t (tile index ``i * k_tiles + j`` in the tile order)."""
        if not (0 <= t < self.tiles and 0 <= j < self.tile_beats):
            raise ValueError(f"beat {j} of tile {t} outside {self.tiles} tiles of {self.tile_beats} beats")
        p, r = divmod(j, self.plane_beats)
        return self.plane_offset(p) + (t * self.plane_beats + r) * self.word_bytes


def tile_major(w: np.ndarray, t_out: int, t_in: int) -> np.ndarray:
    """(..., N, K) codes -> (..., tiles, t_out, t_in), zero-padded, tiles in (n-tile, k-tile) order."""
    *lead, n, k = w.shape
    nt, kt = _cdiv(n, t_out), _cdiv(k, t_in)
    p = np.zeros((*lead, nt * t_out, kt * t_in), dtype=w.dtype)
    p[..., :n, :k] = w
    p = p.reshape(*lead, nt, t_out, kt, t_in)
    p = np.moveaxis(p, -3, -2)  # (..., nt, kt, t_out, t_in)
    return np.ascontiguousarray(p.reshape(*lead, nt * kt, t_out, t_in))


def untile(tiles: np.ndarray, n: int, k: int) -> np.ndarray:
    """The inverse of :func:`tile_major`: (..., tiles, t_out, t_in) -> (..., n, k)."""
    *lead, _, t_out, t_in = tiles.shape
    nt, kt = _cdiv(n, t_out), _cdiv(k, t_in)
    p = tiles.reshape(*lead, nt, kt, t_out, t_in)
    p = np.moveaxis(p, -2, -3).reshape(*lead, nt * t_out, kt * t_in)
    return np.ascontiguousarray(p[..., :n, :k])


def pack_tiles(w: np.ndarray, lay: TileLayout) -> bytes:
    """The bytes of one (N x K) weight in ``lay`` (``lay.nbytes`` of them)."""
    if w.shape != (lay.n, lay.k):
        raise ValueError(f"weight of shape {w.shape} does not match the layout's ({lay.n}, {lay.k})")
    t = tile_major(w, lay.t_out, lay.t_in).reshape(lay.tiles, -1).astype(f"<i{lay.elem_bytes}")
    pad = lay.tile_bytes // lay.elem_bytes - t.shape[1]
    t = np.pad(t, ((0, 0), (0, pad)))
    # (tiles, ports, plane_beats x word) -> (ports, tiles, ...): plane p = part p of every tile
    words = lay.plane_beats * lay.word_bytes // lay.elem_bytes
    return np.ascontiguousarray(t.reshape(lay.tiles, lay.ports, words).swapaxes(0, 1)).tobytes()


def unpack_tiles(data: bytes, lay: TileLayout) -> np.ndarray:
    """The (N x K) codes of a weight stored in ``lay`` (what a reader of weights.bin recovers)."""
    t = np.frombuffer(data[:lay.nbytes], dtype=f"<i{lay.elem_bytes}").reshape(lay.ports, lay.tiles, -1)
    t = t.swapaxes(0, 1).reshape(lay.tiles, -1)  # the planes back into whole tiles
    t = t[:, :lay.t_out * lay.t_in].reshape(lay.tiles, lay.t_out, lay.t_in)
    return untile(t.astype(np.int64), lay.n, lay.k)
