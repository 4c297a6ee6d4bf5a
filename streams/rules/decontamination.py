"""Decontamination (SPEC 12): does a text contain a word sequence of a registered evaluation set?

Words of a text: NFKC, lower case, every character outside the Unicode categories L and N
becomes a space, split. An item field of 13+ words contributes each run of 13 consecutive
words; a field of 8-12 words contributes itself whole; a shorter field nothing.

The index is exact and cheap per text. A run of words is hashed as its UTF-8 bytes, each word
followed by one space, with a polynomial hash mod 2^64 (an odd base, so invertible): prefix
sums over a text's bytes give the hash of every run of n words in a few numpy operations,
never one Python call per word or run. The hashes sit in a sorted uint64 array beside a payload
array naming the item field, and their top bits in a small presence bitmap: a text's run hashes
are checked against the bitmap in a few vectorised operations, and only the few whose bit is
set are looked up with ``searchsorted``. A hit is confirmed on the field's own words, so a hash
collision never flags a text.
"""

import codecs
import hashlib
import json
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

SEQUENCE = 13
WHOLE_FIELD = range(8, 13)
PREFIX = WHOLE_FIELD.start  # the fewest words an indexed sequence has

# Python's \W is "not str.isalnum()", and \w adds "_": so [\W_] is exactly "not in the categories L*
# and N*" (tests/unit/test_decontamination.py checks the words of every code point).
_NOT_LETTERS_OR_DIGITS = re.compile(r"[\W_]+")
# Bytes of ASCII letters lower-cased, ASCII digits kept, other ASCII a space; UTF-8 bytes of other
# characters (>= 0x80) kept: the encoding error handler below has dealt with them.
_ASCII_WORDS = bytes(c + 32 if 65 <= c <= 90 else c if c >= 0x80 or chr(c).isalnum() else 0x20 for c in range(256))
_CAPITAL_SIGMA = "\u03a3"
_SPACE = 0x20


def _non_ascii_words(error: UnicodeEncodeError) -> tuple[bytes, int]:
    """Encoding error handler: a run of non-ASCII characters lower-cased, those not letters or
    digits made spaces, as UTF-8. Only these runs pay for Unicode; the ASCII around them is
    done a byte at a time by ``bytes.translate``."""
    run = error.object[error.start:error.end].lower()
    return _NOT_LETTERS_OR_DIGITS.sub(" ", run).encode("utf-8"), error.end


codecs.register_error("distill-non-ascii-words", _non_ascii_words)

_BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2^64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)


def words_of(text: str) -> list[str]:
    """The words of ``text`` as SPEC 12 defines them."""
    return _canonical(text).decode("utf-8").split()


@dataclass(frozen=True)
class EvalItem:
    """One item of an evaluation set, with the fields that are indexed (name -> text)."""

    set_name: str
    item_id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Contamination:
    """Where a text overlaps an evaluation set: the item field and the words they share."""

    set_name: str
    item_id: str
    field: str
    words: str  # the matched words, joined by one space

    def error(self) -> str:
        return (f"overlaps evaluation set {self.set_name!r}, item {self.item_id!r}, "
                f"field {self.field!r}: {self.words!r}")


class _Powers:
    """BASE^k and BASE^-(k+1) mod 2^64 for k below a length; kept up to ``_KEPT`` (a text longer
    than that, a rare long item field, gets its own, not kept). One attribute holds both, so a
    build in another thread never shows a reader one without the other."""

    def __init__(self) -> None:
        self.kept = (np.ones(1, np.uint64), np.full(1, _BASE_INVERSE, np.uint64))

    def upto(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        kept = self.kept
        if len(kept[0]) >= length:
            return kept
        size = max(length, min(2 * len(kept[0]), _KEPT), 4096)
        up, down = np.full(size, _BASE, np.uint64), np.full(size + 1, _BASE_INVERSE, np.uint64)
        up[0] = down[0] = 1
        up, down = up.cumprod(), down.cumprod()[1:]
        if size <= _KEPT:
            self.kept = up, down
        return up, down


_KEPT = 1 << 18
_POWERS = _Powers()


def _separated(text: str) -> bytes:
    """The words of ``text``, UTF-8, between runs of spaces (b" " is the only byte that is not
    part of a word: every other ASCII byte that is no letter or digit became one).

    NFKC leaves ASCII alone, and lower case maps each character on its own but the capital
    sigma (final or not depends on its neighbours): such a text is lower-cased whole first."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if _CAPITAL_SIGMA in text:
            text = text.lower()
    return text.encode("ascii", "distill-non-ascii-words").translate(_ASCII_WORDS)


def _canonical(text: str) -> bytes:
    """The words of ``text``, UTF-8, each preceded and followed by one space: what is hashed."""
    words = b" ".join(_separated(text).split())
    return b" " + words + b" " if words else b" "


def _canonical_array(text: str) -> np.ndarray:
    """``_canonical(text)`` as a uint8 array, its runs of spaces made one by a mask rather than a
    split into a bytes object per word: the first space of each run is kept."""
    padded = np.frombuffer(b" " + _separated(text) + b" ", np.uint8)
    keep = np.empty(len(padded), bool)
    keep[0] = True
    # a byte and the one before it are both spaces iff their OR is b" ": no word byte is 0 or 0x20
    np.not_equal(padded[1:] | padded[:-1], _SPACE, out=keep[1:])
    return padded[keep]


def _boundaries(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of canonical bytes: the position of the space before each word (and after the last), and
    there the prefix sums of the polynomial hash and the factor that bases a run starting after
    that space at position 0. (Ufuncs and array methods are called directly: numpy's function
    wrappers cost as much as the work on a text's ~1,500 bytes.)"""
    up, down = _POWERS.upto(len(data))
    spaces = (data == _SPACE).nonzero()[0]
    sums = np.add.accumulate(np.multiply(data, up[:len(data)]))
    return spaces, sums.take(spaces), down.take(spaces)


def _runs(sums: np.ndarray, unscale: np.ndarray, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """The hash of every run of ``n`` words, by its first word (into ``out``, sized to fit)."""
    count = len(sums) - n
    if count <= 0:
        return _NO_HASHES
    if out is None:
        out = np.empty(count, np.uint64)
    np.subtract(sums[n:], sums[:count], out=out)
    return np.multiply(out, unscale[:count], out=out)


class _Hashed:
    """A text's canonical bytes with prefix sums of their polynomial hash: the hashes of every
    run of n words come from two slices, a subtraction and a multiplication, whatever n.

    The hash of words [i, i+n) is that of their bytes after the space before word i, up to and
    including the space after word i+n-1, based at position 0 (so the same words hash the same
    wherever they are)."""

    def __init__(self, canonical: bytes, boundaries: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.canonical = canonical
        self.spaces, self.sums, self.unscale = boundaries or _boundaries(np.frombuffer(canonical, np.uint8))

    def __len__(self) -> int:
        return len(self.spaces) - 1

    def runs(self, n: int) -> np.ndarray:
        """The hash of every run of ``n`` words, by its first word."""
        return _runs(self.sums, self.unscale, n)

    def span(self, first: int, n: int) -> bytes:
        """Words [first, first + n), each followed by a space; b"" past the text's end."""
        if first + n > len(self):
            return b""
        return self.canonical[self.spaces[first] + 1:self.spaces[first + n] + 1]


_NO_HASHES = np.zeros(0, np.uint64)
# The presence bitmap: about 64 bits per hash (1.5% set), from 2^19 bits (64 KB) to 2^24 (2 MiB),
# in cells of 8 to 64 bits: a hash's top bits pick its cell, the next ones its bit in the cell.
# Up to 2^22 bits there are 2^16 cells, picked by the top 16 bits, so both are read from views of
# the hashes (no shift). HumanEval's 12,425 hashes get 2^20 bits (uint16 cells, 128 KB), 1.2% of
# them set: of a 1.5 KB text's ~350 run hashes ~4 pass, to be looked up; a million hashes get
# 2^24 bits (2^18 cells of 64 bits), 5.8% set.
_BITS_PER_HASH, _FEWEST_BITS, _MOST_BITS = 64, 19, 24
_CELL_TYPES = {3: np.uint8, 4: np.uint16, 5: np.uint32, 6: np.uint64}  # by log2 of their bits
_FEW = 12  # keys that pass the bitmap, at most, to be looked up one by one (more: vectorised)
# a uint64's top 16 and next 16 bits, and its top 32: where they are in its memory
_QUARTER, _NEXT_QUARTER, _HALF = (3, 2, 1) if sys.byteorder == "little" else (0, 1, 0)


class _Table:
    """Sorted 64-bit hashes with a parallel payload (the rank of the item field it came from);
    a hash and field pair appears once, and a hash's entries are in field order. Beside them a
    bitmap of 2^b bits with the bit of each hash's top b bits set: a key whose bit is clear is
    not in the table (exact: it never hides a hash)."""

    def __init__(self, hashes: list[np.ndarray], ranks: list[np.ndarray]) -> None:
        hashes, ranks = np.concatenate([_NO_HASHES, *hashes]), np.concatenate([np.zeros(0, np.uint32), *ranks])
        order = np.lexsort((ranks, hashes))
        hashes, ranks = hashes[order], ranks[order]
        keep = np.ones(len(hashes), bool)
        keep[1:] = (hashes[1:] != hashes[:-1]) | (ranks[1:] != ranks[:-1])
        self.hashes, self.ranks = hashes[keep], ranks[keep]
        del hashes, ranks, order, keep  # a million hashes: 21 MB, not to be held while the bitmap is made
        bits = min(max((len(self.hashes) * _BITS_PER_HASH - 1).bit_length(), _FEWEST_BITS), _MOST_BITS)
        width = min(bits - 16, 6)  # log2 of a cell's bits
        self._cell_bits, cell_type = bits - width, _CELL_TYPES[width]  # a cell is picked by the top _cell_bits
        self._to_cell = np.uint32(32 - self._cell_bits)
        self._to_bit = (cell_type(16 - width) if self._cell_bits == 16  # from the next quarter
                        else np.uint32(32 - bits))  # from the top half
        self._bit_mask = np.uint32((1 << width) - 1)
        self._bitmap = np.zeros(1 << self._cell_bits if len(self.hashes) else 0, cell_type)  # none: never looked at
        if len(self.hashes):  # the hashes are sorted, so are their cells: each cell's bits are ORed at once
            slots = self.hashes >> np.uint64(64 - bits)
            cells = slots >> np.uint64(width)
            first = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
            cells = cells[first]
            np.bitwise_and(slots, np.uint64((1 << width) - 1), out=slots)
            in_cell = np.left_shift(cell_type(1), slots.astype(cell_type))
            del slots
            self._bitmap[cells] = np.bitwise_or.reduceat(in_cell, first)

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.ranks.nbytes + self._bitmap.nbytes

    def maybe(self, keys: np.ndarray) -> np.ndarray:
        """The indexes of the ``keys`` (a contiguous uint64 array) whose bit is set: all those in
        the table, and a few more."""
        if self._cell_bits == 16:
            quarters = keys.view(np.uint16)
            cells, in_cell = quarters[_QUARTER::4], quarters[_NEXT_QUARTER::4] >> self._to_bit
        else:
            halves = keys.view(np.uint32)[_HALF::2]
            cells, in_cell = halves >> self._to_cell, (halves >> self._to_bit) & self._bit_mask
        return (np.right_shift(self._bitmap.take(cells), in_cell) & 1).nonzero()[0]

    def find(self, keys: np.ndarray, among: np.ndarray) -> list[tuple[int, int]]:
        """Which of the ``keys`` indexed by ``among`` (ascending; those ``maybe`` lets through,
        a few) are in the table: (the key's index, where its entries begin), by key index."""
        keys = keys.take(among)
        hashes, size = self.hashes, len(self.hashes)
        starts = hashes.searchsorted(keys)
        if len(among) <= _FEW:
            return [(index, start) for index, start, key in zip(among.tolist(), starts.tolist(), keys.tolist())
                    if start < size and hashes.item(start) == key]
        np.minimum(starts, size - 1, out=starts)
        hits = (hashes.take(starts) == keys).nonzero()[0]
        return list(zip(among.take(hits).tolist(), starts.take(hits).tolist()))

    def ranks_at(self, index: int) -> list[int]:
        """The field ranks of the entries from ``index`` on that share its hash."""
        end = index + 1
        while end < len(self.hashes) and self.hashes[end] == self.hashes[index]:
            end += 1
        return self.ranks[index:end].tolist()


class EvalIndex:
    """Every word sequence of the registered sets: ``match(text)`` finds one in a text.

    One table holds the hash of every 13-word run of the long fields and, for each whole
    field of 8 to 12 words, the hash of its first 8 words: a text is hashed for two run
    lengths, not six, and looked up once. A hit is confirmed on the field's words."""

    def __init__(self, fields: list[tuple[str, str, str, str]], sets: dict[str, int], version: str,
                 table: _Table, whole_fields: bool) -> None:
        self._fields = fields  # (set name, item id, field, text), sorted: the table's ranks index it
        self.sets = sets
        self.version = version
        self._table, self._whole_fields = table, whole_fields

    @classmethod
    def build(cls, items: Iterable[EvalItem]) -> "EvalIndex":
        """The index of ``items``; the same items in any order give the same index and version."""
        items = sorted(items, key=_canonical_order)
        fields = sorted((i.set_name, i.item_id, name, text) for i in items for name, text in i.fields.items())
        sets: dict[str, int] = {}
        for item in items:
            sets[item.set_name] = sets.get(item.set_name, 0) + 1
        hashes, ranks, whole_fields = [], [], False
        for rank, (*_, text) in enumerate(fields):
            hashed = _Hashed(_canonical(text))
            if len(hashed) >= SEQUENCE:
                hashes.append(hashed.runs(SEQUENCE))
            elif len(hashed) in WHOLE_FIELD:
                hashes.append(hashed.runs(PREFIX)[:1])
                whole_fields = True
            else:
                continue
            ranks.append(np.full(len(hashes[-1]), rank, np.uint32))
        return cls(fields, sets, version_of(items), _Table(hashes, ranks), whole_fields)

    def __len__(self) -> int:
        return len(self._table)

    @property
    def nbytes(self) -> int:
        """Memory of the hash and payload arrays (the item texts, held by the caller, aside)."""
        return self._table.nbytes

    def match(self, text: str) -> Contamination | None:
        """The earliest (by word position) sequence of ``text`` that an indexed field contributes;
        at one position the least (set name, item id, field). None: the text is clean."""
        table = self._table
        if not len(table):
            return None
        data = _canonical_array(text)
        boundaries = spaces, sums, unscale = _boundaries(data)
        count = len(spaces) - 1  # words
        if count < PREFIX:
            return None
        # the hashes of the runs of SEQUENCE words, then of PREFIX words: as _runs, in one array
        runs, prefixes = max(count - SEQUENCE + 1, 0), count - PREFIX + 1 if self._whole_fields else 0
        keys = np.empty(runs + prefixes, np.uint64)
        for n, out in ((SEQUENCE, keys[:runs]), (PREFIX, keys[runs:])):
            if len(out):
                np.subtract(sums[n:], sums[:len(out)], out=out)
                np.multiply(out, unscale[:len(out)], out=out)
        maybe = table.maybe(keys)
        if not len(maybe):
            return None
        found = table.find(keys, maybe)
        if not found:
            return None
        at_first: dict[int, list[int]] = {}  # the text's word each hit starts at -> where its entries begin
        for index, at in found:
            at_first.setdefault(index if index < runs else index - runs, []).append(at)
        hashed = _Hashed(data.tobytes(), boundaries)
        for first in sorted(at_first):
            for rank in sorted(rank for at in at_first[first] for rank in table.ranks_at(at)):
                if words := self._confirmed(hashed, first, rank):
                    set_name, item_id, field, _ = self._fields[rank]
                    return Contamination(set_name, item_id, field, words)
        return None

    def _confirmed(self, hashed: _Hashed, first: int, rank: int) -> str | None:
        """The words of the text from ``first`` that field ``rank`` contributes, if it does
        (the table only says that their hashes agree)."""
        field = _canonical(self._fields[rank][3])
        length = field.count(b" ") - 1
        if length >= SEQUENCE:
            words = hashed.span(first, SEQUENCE)
            contributed = bool(words) and field.find(b" " + words) >= 0
        else:
            words = hashed.span(first, length)
            contributed = bool(words) and b" " + words == field
        return words[:-1].decode("utf-8") if contributed else None


def _canonical_order(item: EvalItem) -> tuple:
    return item.set_name, item.item_id, sorted(item.fields.items())


def version_of(items: Iterable[EvalItem]) -> str:
    """A digest of the sets' content, whatever the order of ``items``; "" for no sets."""
    items = sorted(items, key=_canonical_order)
    if not items:
        return ""
    content = [[i.set_name, i.item_id, sorted(i.fields.items())] for i in items]
    return hashlib.sha256(json.dumps(content).encode("ascii")).hexdigest()[:16]
