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
        self.models = [Categorical(row, perfect=False) for row in probabilities]  # constriction's, one per table
        self._least_bits = np.log2(self.counts.sum(axis=1) / self.counts.max(axis=1))  # of each table's mode

    def __len__(self) -> int:
        return len(self.models)

    def encode(self, values: np.ndarray, table_indexes: np.ndarray) -> bytes:
        """Code integer values (any shape), each under the table of the same position."""
        return self.encode_segments([(values, table_indexes)])

    def encode_segments(self, segments: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
        """Code several (values, table indexes) segments into one stream, to be read back in order
        with :meth:`reader` (each segment's tables may depend on the segments before it)."""
        coder = AnsCoder()
        # ANS is last in, first out: code the last segment's last table first, so that the decoder
        # starts with the first segment's table 0.
        for values, table_indexes in reversed(segments):
            symbols = np.clip(np.asarray(values).ravel(), -self.radius, self.radius).astype(np.int32)
            symbols += self.radius
            order, bounds = _groups(table_indexes, len(self))
            for table in reversed(range(len(self))):
                group = symbols[order[bounds[table] : bounds[table + 1]]]
                if group.size:
                    coder.encode_reverse(np.ascontiguousarray(group), self.models[table])
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, table_indexes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode`: values shaped like ``table_indexes``."""
        reader = self.reader(data)
        values = reader(self, table_indexes)
        reader.finish()
        return values

    def reader(self, data: bytes) -> SegmentReader:
        """Reads the segments of a stream from :meth:`encode_segments`, one call each."""
        return SegmentReader(data)

    def least_bits(self, bounds: np.ndarray) -> float:
        """The information of a segment (counts per table, ``bounds``) at its tables' modes."""
        return float(np.diff(bounds) @ self._least_bits)

    def information(self, values: np.ndarray, table_indexes: np.ndarray) -> np.ndarray:
        """Bits each value costs under its table, -log2(count / total), shaped like ``values``: what
        :meth:`encode` spends on it, up to the ANS coder's few bytes of overhead per stream."""
        rows = np.asarray(table_indexes, dtype=np.int64)
        columns = np.clip(np.asarray(values, dtype=np.int64), -self.radius, self.radius) + self.radius
        return np.log2(self.counts.sum(axis=1))[rows] - np.log2(self.counts[rows, columns])

    def sample(self, table_indexes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values drawn from the tables (each under the table of its position), by inverse CDF of
        the integer counts: the same ``rng`` state draws the same values on every machine.

        Entries holding only the floor count of 1, there to keep every value codable, are never
        drawn: spread over a latent table's 2047 values they hold up to 1e-4 of its mass, so an
        image's worth of draws would pick a few values hundreds of steps out, each a blot of colour.
        """
        rows = np.asarray(table_indexes, dtype=np.int64)
        cumulative = np.cumsum(np.where(self.counts > 1, self.counts, 0), axis=1)
        draws = rng.integers(0, cumulative[rows, -1])  # uniform on [0, the row's total)
        values = np.empty(rows.shape, dtype=np.int64)
        for table in np.unique(rows):
            chosen = rows == table
            values[chosen] = np.searchsorted(cumulative[table], draws[chosen], side="right")
        return values - self.radius


class SegmentReader:
    """The decoder of one stream, called once per segment with the tables and their indexes, in
    the order they were coded; :meth:`finish` checks that the stream was consumed exactly.

    Before each segment the stream must hold at least half the information its segments so far
    would have at their tables' modes (see _START_BITS): a short, damaged stream is refused before
    the work of decoding an image the size its header claims.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise StreamError("entropy-coded stream length is not a multiple of 4 bytes")
        self._bits = 8 * len(data)
        self._least = 0.0
        try:
            self._coder = AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        except Exception as exc:  # constriction reports corrupt data as ValueError/AssertionError
            raise StreamError(f"corrupt entropy-coded stream ({exc})") from None

    def __call__(self, tables: CodingTables, table_indexes: np.ndarray) -> np.ndarray:
        order, bounds = _groups(table_indexes, len(tables))
        self._least += tables.least_bits(bounds)
        if self._bits + _START_BITS < self._least / 2:
            raise StreamError("entropy-coded stream is too short for the image size in the header")
        symbols = np.empty(order.size, dtype=np.int64)
        try:
            for table in range(len(tables)):
                size = bounds[table + 1] - bounds[table]
                if size:
                    symbols[order[bounds[table] : bounds[table + 1]]] = self._coder.decode(tables.models[table], size)
        except Exception as exc:  # constriction reports corrupt data as ValueError/AssertionError
            raise StreamError(f"corrupt entropy-coded stream ({exc})") from None
        return (symbols - tables.radius).reshape(np.shape(table_indexes))

    def finish(self) -> None:
        if not self._coder.is_empty():
            raise StreamError("entropy-coded stream has data left over after decoding")


def _groups(table_indexes: np.ndarray, tables: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by table (stable) and where each table's run starts."""
    flat = np.asarray(table_indexes).ravel()  # as given (the latent's are uint8): no copy of a latent's size
    if flat.size and (flat.min() < 0 or flat.max() >= tables):
        raise StreamError("table index out of range")
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=tables))])
    return order, bounds
