"""Decontamination (SPEC 12): does a text contain a word sequence of a registered evaluation set?

Words of a text: NFKC, lower case, every character outside the Unicode categories L and N
becomes a space, split. An item field of 13+ words contributes each run of 13 consecutive
words; a field of 8-12 words contributes itself whole; a shorter field nothing.

The index is exact and cheap per text. A run of words is hashed as its UTF-8 bytes, each word
followed by one space, with a polynomial hash mod 2^64 (an odd base, so invertible): prefix
sums over a text's bytes give the hash of every run of n words in a few numpy operations,
never one Python call per word or run. The hashes sit in a sorted uint64 array beside a payload
array naming the item field; a text's runs are looked up with one ``searchsorted``, and a hit
is confirmed on the field's own words, so a hash collision never flags a text.
"""

import codecs
import hashlib
import json
import re
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
    """BASE^k and BASE^-k mod 2^64 for k below a length; kept up to ``_KEPT`` (a text longer
    than that, a rare long item field, gets its own, not kept)."""

    def __init__(self) -> None:
        self.up = self.down = np.ones(1, np.uint64)

    def upto(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) >= length:
            return self.up, self.down
        size = max(length, min(2 * len(self.up), _KEPT), 4096)
        up, down = np.full(size, _BASE, np.uint64), np.full(size, _BASE_INVERSE, np.uint64)
        up[0] = down[0] = 1
        up, down = up.cumprod(), down.cumprod()
        if size <= _KEPT:
            self.up, self.down = up, down
        return up, down


_KEPT = 1 << 18
_POWERS = _Powers()


def _canonical(text: str) -> bytes:
    """The words of ``text``, UTF-8, each preceded and followed by one space: what is hashed.

    NFKC leaves ASCII alone, and lower case maps each character on its own but the capital
    sigma (final or not depends on its neighbours): such a text is lower-cased whole first."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if _CAPITAL_SIGMA in text:
            text = text.lower()
    words = b" ".join(text.encode("ascii", "distill-non-ascii-words").translate(_ASCII_WORDS).split())
    return b" " + words + b" " if words else b" "


class _Hashed:
    """A text's canonical bytes with prefix sums of their polynomial hash: the hashes of every
    run of n words come from two slices, a subtraction and a multiplication, whatever n.

    The hash of words [i, i+n) is that of their bytes after the space before word i, up to and
    including the space after word i+n-1, based at position 0 (so the same words hash the same
    wherever they are)."""

    def __init__(self, canonical: bytes) -> None:
        self.canonical = canonical
        data = np.frombuffer(canonical, np.uint8)
        up, down = _POWERS.upto(len(data) + 1)
        self.spaces = (data == 0x20).nonzero()[0]  # the space before word i is spaces[i]
        sums = (data * up[: len(data)]).cumsum()
        self.sums, self.unscale = sums[self.spaces], down[1:][self.spaces]

    def __len__(self) -> int:
        return len(self.spaces) - 1

    def runs(self, n: int) -> np.ndarray:
        """The hash of every run of ``n`` words, by its first word."""
        count = len(self) - n + 1
        return (self.sums[n:] - self.sums[:count]) * self.unscale[:count] if count > 0 else _NO_HASHES

    def span(self, first: int, n: int) -> bytes:
        """Words [first, first + n), each followed by a space; b"" past the text's end."""
        if first + n > len(self):
            return b""
        return self.canonical[self.spaces[first] + 1:self.spaces[first + n] + 1]


_NO_HASHES = np.zeros(0, np.uint64)


class _Table:
    """Sorted 64-bit hashes with a parallel payload (the rank of the item field it came from);
    a hash and field pair appears once, and a hash's entries are in field order."""

    def __init__(self, hashes: list[np.ndarray], ranks: list[np.ndarray]) -> None:
        hashes, ranks = np.concatenate([_NO_HASHES, *hashes]), np.concatenate([np.zeros(0, np.uint32), *ranks])
        order = np.lexsort((ranks, hashes))
        hashes, ranks = hashes[order], ranks[order]
        keep = np.ones(len(hashes), bool)
        keep[1:] = (hashes[1:] != hashes[:-1]) | (ranks[1:] != ranks[:-1])
        self.hashes, self.ranks = hashes[keep], ranks[keep]

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.ranks.nbytes

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which ``keys`` are in the table (their indexes), and where each one's entries begin."""
        at = self.hashes.searchsorted(keys)
        np.minimum(at, len(self.hashes) - 1, out=at)
        found = (self.hashes[at] == keys).nonzero()[0]
        return found, at[found]

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
        if not len(self._table):
            return None
        hashed = _Hashed(_canonical(text))
        if len(hashed) < PREFIX:
            return None
        keys = hashed.runs(SEQUENCE)
        runs = len(keys)
        if self._whole_fields:
            keys = np.concatenate((keys, hashed.runs(PREFIX)))
        found, at = self._table.find(keys)
        if not len(found):
            return None
        firsts = np.where(found < runs, found, found - runs)  # the text's word each hit starts at
        for first in np.unique(firsts).tolist():
            hits = (firsts == first).nonzero()[0].tolist()
            for rank in sorted(rank for hit in hits for rank in self._table.ranks_at(int(at[hit]))):
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
