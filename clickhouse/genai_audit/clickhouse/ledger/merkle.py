"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and their checks.

Pure functions over leaf hashes, no I/O. Definitions (RFC 9162 section 2.1):

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``;
* the root of an empty tree is ``SHA-256("")``;
* ``MTH(D[a:b])`` splits at the largest power of two smaller than ``b - a``.

Proof generation takes a ``SubtreeHash`` oracle (``mth(a, b)``), so the same code serves a
full list of leaves (``LeafList``) and a writer that only keeps the compact range of its last
checkpoint plus the leaves written since (``Extension``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, level by level (an unpaired last node moves up unchanged)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def range_nodes(size: int) -> list[tuple[int, int]]:
    """The compact range of ``[0, size)``: maximal perfect subtrees, left to right."""
    nodes, start = [], 0
    for bit in range(size.bit_length() - 1, -1, -1):
        width = 1 << bit
        if size & width:
            nodes.append((start, start + width))
            start += width
    return nodes


def root_from_range(hashes: Sequence[bytes]) -> bytes:
    """The tree root from the compact range's node hashes (folded right to left)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class LeafList:
    """``mth(a, b)`` over an in-memory list of leaf hashes.

    Every aligned perfect subtree (``b - a`` a power of two that divides ``a``) is read from
    levels built bottom-up once, in list comprehensions; MTH's recursion only walks the
    few unaligned ranges on the right edge (memoised)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self._levels: list[Sequence[bytes]] | None = None
        self._memo: dict[tuple[int, int], bytes] = {}

    def _perfect(self) -> list[Sequence[bytes]]:
        if self._levels is None:
            sha = hashlib.sha256
            levels: list[Sequence[bytes]] = [self.leaves]
            while len(levels[-1]) > 1:
                below = levels[-1]
                levels.append([sha(b"\x01" + below[i] + below[i + 1]).digest()
                               for i in range(0, len(below) - 1, 2)])
            self._levels = levels
        return self._levels

    def mth(self, a: int, b: int) -> bytes:
        n = b - a
        if n == 1:
            return self.leaves[a]
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and a % n == 0:
            return self._perfect()[n.bit_length() - 1][a // n]
        key = (a, b)
        found = self._memo.get(key)
        if found is None:
            k = split_point(n)
            found = node_hash(self.mth(a, a + k), self.mth(a + k, b))
            self._memo[key] = found
        return found


class Extension:
    """A tree of ``old_size + len(new_leaves)`` leaves known only by the compact range of its
    first ``old_size`` leaves and the leaves after them: enough to compute the new root and a
    consistency proof from the old size (every node such a proof needs lies in one or the
    other)."""

    def __init__(self, old_size: int, old_range: Sequence[bytes],
                 new_leaves: Sequence[bytes]) -> None:
        self._new = LeafList(new_leaves)
        self.old_size = old_size
        nodes = range_nodes(old_size)
        if len(nodes) != len(old_range):
            raise ValueError(f"compact range of size {old_size} needs {len(nodes)} hashes, "
                             f"got {len(old_range)}")
        self._known = dict(zip(nodes, old_range, strict=True))
        self.size = old_size + len(new_leaves)

    def mth(self, a: int, b: int) -> bytes:
        known = self._known.get((a, b))
        if known is not None:
            return known
        if a >= self.old_size:
            return self._new.mth(a - self.old_size, b - self.old_size)
        if b <= self.old_size or b - a == 1:
            raise ValueError(f"subtree [{a}, {b}) is not recoverable from the compact range")
        k = split_point(b - a)
        return node_hash(self.mth(a, a + k), self.mth(a + k, b))

    def compact_range(self) -> list[bytes]:
        return [self.mth(a, b) for a, b in range_nodes(self.size)]


# -- inclusion (RFC 9162 2.1.3) ---------------------------------------------------------

def inclusion_proof(mth: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside a tree of size {size}")
    return _path(mth, index, 0, size)


def _path(mth: SubtreeHash, m: int, a: int, b: int) -> list[bytes]:
    if b - a == 1:
        return []
    k = split_point(b - a)
    if m < k:
        return [*_path(mth, m, a, a + k), mth(a + k, b)]
    return [*_path(mth, m - k, a + k, b), mth(a, a + k)]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by a leaf and its audit path (RFC 9162 2.1.3.2); raises on a proof of
    the wrong length."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    try:
        return root_from_inclusion(leaf, index, size, proof) == root
    except ValueError:
        return False


# -- consistency (RFC 9162 2.1.4) -------------------------------------------------------

def consistency_proof(mth: SubtreeHash, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]); empty when the sizes are equal or old_size is 0."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove {old_size} -> {new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof(mth, old_size, 0, new_size, True)


def _subproof(mth: SubtreeHash, m: int, a: int, b: int, complete: bool) -> list[bytes]:
    n = b - a
    if m == n:
        return [] if complete else [mth(a, b)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(mth, m, a, a + k, complete), mth(a + k, b)]
    return [*_subproof(mth, m - k, a + k, b, False), mth(a, a + k)]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the old tree is a prefix of the new one?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
