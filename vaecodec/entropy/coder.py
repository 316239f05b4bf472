"""Entropy coding of integer symbols under frozen integer tables, with constriction's ANS coder.

Both streams of a .vae file are coded the same way: every symbol comes with the index of the
table it is coded under (the latent: its scale-table index; the hyper-latent: its channel). The
symbols are coded grouped by table, tables in increasing order, and within a table in the order
given (the symbols' raster order). A table is a row of integer counts summing to a power of two;
symbol k of a table with 2R+1 entries stands for the value k - R. Out-of-range values are clipped.

Because the tables are integers stored with the weights and the table indexes are integers, the
probabilities the coder sees cannot differ between machines.
"""

from __future__ import annotations

import numpy as np
import constriction

from vaecodec.errors import VaecodecError

AnsCoder = constriction.stream.stack.AnsCoder
Categorical = constriction.stream.model.Categorical


# A stream must carry at least half the information its symbols would have at their tables'
# modes, less the coder's start-up (two words); shorter ones are refused before decoding. ANS
# decodes any number of symbols from a few bytes, so without the check a damaged file would cost
# as much work as a real image of the size its header claims. Real streams measured 1.25 to 40
# times that information; the half leaves room for symbols coded while the encoder's state is small.
_START_BITS = 64


class StreamError(VaecodecError):
    """A stream is malformed or does not decode to the expected symbols."""


class CodingTables:
    """A set of integer tables (rows of counts) and the constriction models built from them."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.radius = (self.counts.shape[1] - 1) // 2
        probabilities = self.counts / self.counts.sum(axis=1, keepdims=True)  # exact: sums are powers of 2
        self._models = [Categorical(row, perfect=False) for row in probabilities]
        self._least_bits = np.log2(self.counts.sum(axis=1) / self.counts.max(axis=1))  # of each table's mode

    def __len__(self) -> int:
        return len(self._models)

    def encode(self, values: np.ndarray, table_indexes: np.ndarray) -> bytes:
        """Code integer values (any shape), each under the table of the same position."""
        symbols = (np.clip(np.asarray(values).ravel(), -self.radius, self.radius) + self.radius).astype(np.int32)
        order, bounds = _groups(table_indexes, len(self))
        coder = AnsCoder()
        # ANS is last in, first out: code the last group first so the decoder starts with table 0.
        for table in reversed(range(len(self))):
            group = symbols[order[bounds[table] : bounds[table + 1]]]
            if group.size:
                coder.encode_reverse(np.ascontiguousarray(group), self._models[table])
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, table_indexes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode`: values shaped like ``table_indexes``."""
        if len(data) % 4:
            raise StreamError("entropy-coded stream length is not a multiple of 4 bytes")
        order, bounds = _groups(table_indexes, len(self))
        if 8 * len(data) + _START_BITS < np.diff(bounds) @ self._least_bits / 2:
            raise StreamError("entropy-coded stream is too short for the image size in the header")
        symbols = np.empty(order.size, dtype=np.int64)
        try:
            coder = AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
            for table in range(len(self)):
                size = bounds[table + 1] - bounds[table]
                if size:
                    symbols[order[bounds[table] : bounds[table + 1]]] = coder.decode(self._models[table], size)
        except Exception as exc:  # constriction reports corrupt data as ValueError/AssertionError
            raise StreamError(f"corrupt entropy-coded stream ({exc})") from None
        if not coder.is_empty():
            raise StreamError("entropy-coded stream has data left over after decoding")
        return (symbols - self.radius).reshape(np.shape(table_indexes))


def _groups(table_indexes: np.ndarray, tables: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by table (stable) and where each table's run starts."""
    flat = np.asarray(table_indexes, dtype=np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= tables):
        raise StreamError("table index out of range")
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=tables))])
    return order, bounds
