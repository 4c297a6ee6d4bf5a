"""The secret scanner of SPEC section 10: finds credentials in text and replaces them.

The engine is gitleaks' with TruffleHog's windows, so that a clean text costs one pass:

1. the text is lower-cased with every offset kept, and one Aho-Corasick pass (pyahocorasick)
   finds every rule keyword at once. When all keywords are ASCII (the default pack), only ASCII
   letters are lowered and every other character becomes "?" (three times faster than
   ``str.lower`` on text with any non-ASCII character); otherwise a character whose lower case is
   longer, such as 'İ', is kept as it is;
2. only the rules whose keyword occurs run their regex, on the original text, and only within a
   window around each keyword hit: ``reach + NEARBY`` characters on both sides, where reach is the
   longest match the regex can make (``re``'s own parser computes it: 40 for ``ghp_``, 262 for a
   URL password, ~17,700 for a PEM block with its 16 KB body) or ``MAX_REACH`` (4,096) for an
   unbounded regex, and NEARBY (256) lets a keyword stand beside its match rather than in it. A
   match that reaches the window's end is matched again from its start against the whole text, so
   an unbounded regex still gets its whole match. Rules without keywords run on the whole text;
3. the secret is the rule's ``secretGroup``; unset (or 0), gitleaks' rule: the first capture group
   that matched something, else the whole match;
4. a secret whose Shannon entropy does not exceed the rule's floor, or that an allowlist allows,
   is dropped, as is any match overlapping an existing ``<SECRET:...>`` placeholder (but one that
   lies within the id of a placeholder naming none of the rules: "<SECRET:ghp_...>" is a token
   written to pass for a placeholder, not one);
5. overlapping findings keep the earliest start, then the longest.

``find`` repeats the scan on its own redaction until nothing more is found, so that
``redact(redact(x)) == redact(x)`` whatever the rules: a match dropped by the overlap rule may
leave a remainder a rule still matches, and a replacement can create a word boundary (an AWS key
glued to an Anthropic key is found once the latter is replaced). Each round replaces at least one
character that is not a placeholder, so it ends.
"""

import itertools
import math
import re
import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from re import _parser as re_parser  # the only way to know how long a match can be
from typing import Any

import ahocorasick

from streams.rules.secret_rules import RULE_ID, Rule, load_rules

PLACEHOLDER = "<SECRET:{rule_id}>"
PLACEHOLDER_PATTERN = re.compile(f"<SECRET:{RULE_ID.pattern}>")
MAX_REACH = 4096  # the reach of a regex whose matches have no length bound
NEARBY = 256  # how far from a match its keyword may stand (when the keyword is not part of it)
_UNBOUNDED = re_parser.MAXREPEAT
_SEPARATOR = "\x00"  # between the strings of an object; no keyword holds it (secret_rules refuses one)
_SCALARS = frozenset((int, float, bool, type(None)))  # JSON values without a str, skipped by type
_CLEAN_SIZE = 1024  # how many short strings without a keyword a scanner remembers (and sees once, at a time)
_SHORT = 64  # what a short string is: its length at most


@dataclass(frozen=True, order=True)
class Finding:
    start: int  # [start, end) of the secret in the str scanned, in code points
    end: int
    rule_id: str


def load_scanner(rules_file: Path | None = None) -> "SecretScanner":
    """The scanner of the default pack, or of a user's gitleaks file (see ``secret_rules``)."""
    return SecretScanner(load_rules(rules_file))


def shannon_entropy(text: str) -> float:
    size = len(text)
    return -sum(count / size * math.log2(count / size) for count in Counter(text).values())


def lower_aligned(text: str) -> str:
    """``text`` lower-cased with its offsets kept: a character whose lower case is longer ('İ')
    stays as it is."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


def lower_ascii(text: str) -> str:
    """``text`` with its ASCII letters lower-cased and every other character replaced by "?": enough
    to find ASCII keywords, and three times faster than ``str.lower`` on text that is not ASCII."""
    if text.isascii():
        return text.lower()
    return text.encode("ascii", "replace").lower().decode("ascii")


_ONE_BYTE = sys.getsizeof("\xe9") - 1  # what a str of one byte a character, not all ASCII, takes besides them


def lower_for_presence(text: str) -> str:
    """``text`` with its ASCII letters lower-cased and every other character made one or more
    characters that are not ASCII: a keyword made of ASCII characters other than "?" occurs in it
    iff it occurs in ``lower_ascii(text)`` (an occurrence lies within a run of ASCII characters,
    which both keep as they are lowered), though not at the same offsets. The cheaper encoding by
    how the str is stored: Latin-1 (one to one) when it takes a byte a character, else UTF-8 (its
    non-ASCII characters become two to four bytes of 0x80 and up), about 25% faster than
    ``lower_ascii``'s ASCII with "?"."""
    if text.isascii():
        return text.lower()
    if sys.getsizeof(text) - len(text) == _ONE_BYTE:
        return text.encode("latin-1", "replace").lower().decode("latin-1")
    return text.encode("utf-8", "surrogatepass").lower().decode("latin-1")


class SecretScanner:
    """Rules compiled once (at the worker's start) with their keyword automaton. Calls keep no state
    but two bounded sets of short strings (``_found_clean``), which change no result."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self.rule_ids = tuple(rule.id for rule in self._rules)
        self._rule_id_set = frozenset(self.rule_ids)
        self._reach = tuple(_reach(rule.regex) for rule in self._rules)
        self._everywhere = tuple(i for i, rule in enumerate(self._rules) if not rule.keywords)
        by_keyword: dict[str, list[int]] = {}
        for i, rule in enumerate(self._rules):
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword, []).append(i)
        # A keyword of one character is looked for with ``str.find`` (memchr), not by the automaton:
        # each first character of a keyword costs the automaton's pass over every text.
        self._singles = tuple((keyword, (1, tuple(indexes))) for keyword, indexes in by_keyword.items()
                              if len(keyword) == 1)
        longer = {keyword: indexes for keyword, indexes in by_keyword.items() if len(keyword) > 1}
        self._automaton = ahocorasick.Automaton() if longer else None  # an empty one cannot search
        for keyword, indexes in longer.items():
            self._automaton.add_word(keyword, (len(keyword), tuple(indexes)))
        if self._automaton is not None:
            self._automaton.make_automaton()
        self._lower = lower_ascii if all(keyword.isascii() for keyword in by_keyword) else lower_aligned
        # Whether a keyword occurs at all, asked first (``_has_keyword``): for keywords of ASCII
        # characters but "?" (the default pack), on the text as it is for those of one character
        # (in either case), and through ``lower_for_presence`` for the automaton.
        self._plain = self._lower is lower_ascii and not any("?" in keyword for keyword in by_keyword)
        self._single_cases = tuple({char, char.upper()} for char, _ in self._singles)
        # ``redact_object``'s fast path (see there) needs a lowering that maps each character on its
        # own (so that a string's hits do not depend on its neighbours in the joined text), and no
        # rule that runs on every string.
        self._fast_objects = bool(by_keyword) and self._lower is lower_ascii and not self._everywhere
        # short strings seen twice and found to hold no keyword, and those seen once: the keys of
        # records and their recurring values; each set is emptied when full (no lock needed: a
        # string in ``_clean`` holds no keyword, whoever put it there)
        self._clean: set[str] = set()
        self._seen_once: set[str] = set()

    def find(self, text: str) -> list[Finding]:
        """The secrets of ``text``: sorted, non-overlapping, none inside a placeholder."""
        hits = self._keyword_hits(text)
        if not hits and not self._everywhere:  # the common case, kept short
            return []
        return self._settle(text, self._scan(text, hits))

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with each secret replaced by its placeholder; the same object when none."""
        findings = self.find(text)
        return (_replace(text, findings)[0] if findings else text), findings

    def redact_object(self, obj: Any) -> tuple[Any, list[tuple[str, Finding]]]:
        """A JSON value with every secret of its strings (dict keys too) replaced, and where each
        was ("text", "source_files[0]", "provenance.sig_hash", a key: its redacted path + "(key)").
        The same object when nothing is found.

        The common case, nothing found, costs one walk that gathers the strings and one keyword
        pass over them joined: no hit, nothing can be found (no rule runs everywhere). With hits,
        only the strings that have some are scanned, on the hits of that same pass; only when one
        of them has a finding is the object redacted by ``_redact_object`` (the walk in visit
        order that builds the paths and copies what changed, as before). The walk leaves out the
        short strings known to hold no keyword (``_found_clean``: keys and recurring values); a
        string without a keyword has no hit, so it is never scanned, whether it is in the pass or
        not. Exact because the lowering maps each character on its own and no keyword holds the
        separator: a string's hits are the same wherever it stands in the joined text, and the
        rest of the strings have none."""
        if not self._fast_objects:
            return self._redact_object(obj)
        strings: list[str] = []
        _gather_strings(obj, strings, self._clean, self._found_clean)
        joined = _SEPARATOR.join(strings)
        if not self._has_keyword(joined):
            return obj, []
        starts = list(itertools.accumulate((len(s) + 1 for s in strings[:-1]), initial=0))
        by_string: dict[int, dict[int, list[tuple[int, int]]]] = {}
        for end, (length, indexes) in self._keyword_matches(joined):
            n = bisect_right(starts, end) - 1
            start = end + 1 - length - starts[n]
            hits = by_string.setdefault(n, {})
            for i in indexes:
                hits.setdefault(i, []).append((start, start + length))
        for n, hits in by_string.items():
            if self._scan(strings[n], hits):  # _settle adds to findings, never makes them from none
                return self._redact_object(obj)
        return obj, []

    def _has_keyword(self, text: str) -> bool:
        """Whether a keyword occurs in ``text`` (lowered as ``_lower`` does; the pass stops at the
        first). For plain keywords (``_plain``) a keyword of one character, c, occurs iff c or its
        upper case is in the text (``lower_ascii`` makes no other character c), and the automaton
        runs on ``lower_for_presence``'s lowering, which is cheaper than ``lower_ascii``'s and has
        the same keywords, not at the same offsets."""
        if not self._plain:
            lowered = self._lower(text)
            if any(char in lowered for char, _ in self._singles):
                return True
            return self._automaton is not None and next(self._automaton.iter(lowered), None) is not None
        for cases in self._single_cases:
            for char in cases:
                if char in text:
                    return True
        return self._automaton is not None and next(self._automaton.iter(lower_for_presence(text)), None) is not None

    def _found_clean(self, text: str) -> bool:
        """Whether ``text``, a short str not in ``_clean``, is seen for the second time (lately)
        and holds no keyword: then it joins ``_clean`` while there is room. Strings that recur
        (keys, categories, paths) are remembered; one-off ids churn through ``_seen_once``."""
        if text not in self._seen_once:
            if len(self._seen_once) >= _CLEAN_SIZE:
                self._seen_once.clear()
            self._seen_once.add(text)
            return False
        if self._has_keyword(text):
            return False
        if len(self._clean) >= _CLEAN_SIZE:  # full of strings that recurred once: start again
            self._clean.clear()
        self._clean.add(text)
        return True

    def _redact_object(self, obj: Any) -> tuple[Any, list[tuple[str, Finding]]]:
        """``redact_object`` the long way: every string in visit order, one keyword pass whose
        hits serve the strings that have some, and a walk that copies what changed."""
        strings: list[str] = []
        _collect_strings(obj, strings)
        hits_by_string = self._keyword_hits_by_string(strings)
        if not hits_by_string and not self._everywhere:
            return obj, []
        found: list[tuple[str, Finding]] = []
        return _ObjectRedaction(self, hits_by_string, found).visit(obj, ""), found

    def _keyword_matches(self, text: str) -> Iterable[tuple[int, tuple[int, tuple[int, ...]]]]:
        """The one pass: (end index, (keyword length, its rules)) of every keyword."""
        return self._lowered_matches(self._lower(text))

    def _lowered_matches(self, lowered: str) -> Iterable[tuple[int, tuple[int, tuple[int, ...]]]]:
        """The Aho-Corasick pass over a lowered text, and the keywords of one character."""
        matches = self._automaton.iter(lowered) if self._automaton is not None else ()
        if not self._singles:
            return matches
        matches = list(matches)
        for char, value in self._singles:
            at = lowered.find(char)
            while at >= 0:
                matches.append((at, value))
                at = lowered.find(char, at + 1)
        return matches

    def _keyword_hits(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Rule index -> the [start, end) of its keywords in ``text``."""
        hits: dict[int, list[tuple[int, int]]] = {}
        for end, (length, indexes) in self._keyword_matches(text):
            for i in indexes:
                hits.setdefault(i, []).append((end + 1 - length, end + 1))
        return hits

    def _keyword_hits_by_string(self, strings: list[str]) -> dict[int, dict[int, list[tuple[int, int]]]]:
        """``_keyword_hits`` of each string that has some, by its index, from one pass over them all."""
        starts = list(itertools.accumulate((len(s) + 1 for s in strings[:-1]), initial=0))
        by_string: dict[int, dict[int, list[tuple[int, int]]]] = {}
        for end, (length, indexes) in self._keyword_matches(_SEPARATOR.join(strings)):
            n = bisect_right(starts, end) - 1
            start = end + 1 - length - starts[n]
            hits = by_string.setdefault(n, {})
            for i in indexes:
                hits.setdefault(i, []).append((start, start + length))
        return by_string

    def _settle(self, text: str, found: list[Finding]) -> list[Finding]:
        """``found`` and whatever the rules still find once it is replaced, until nothing more."""
        while found:
            redacted, origins = _replace(text, found)
            more = self._scan(redacted, self._keyword_hits(redacted))
            if not more:
                return found
            # ``more`` lies between placeholders: shift each back to the original's offsets
            starts = [start for start, _ in origins]
            for finding in more:
                red_start, original = origins[bisect_right(starts, finding.start) - 1]
                shift = original - red_start
                found.append(Finding(finding.start + shift, finding.end + shift, finding.rule_id))
            found.sort()
        return found

    def _scan(self, text: str, hits: dict[int, list[tuple[int, int]]]) -> list[Finding]:
        """One pass of steps 2-5 of the module docstring, given the keyword hits of step 1."""
        if not hits and not self._everywhere:
            return []
        # not a keyword: each keyword's first letter costs the pass over every text, this is rarely needed
        excluded = [self._placeholder(m) for m in PLACEHOLDER_PATTERN.finditer(text)] if "<SECRET:" in text else []
        candidates = []
        for i in (*hits, *self._everywhere):
            regex = self._rules[i].regex
            windows = _windows(hits[i], self._reach[i], len(text)) if i in hits else ((0, len(text)),)
            for window_start, window_end in windows:
                for match in regex.finditer(text, window_start, window_end):
                    if candidate := self._candidate(i, text, match, window_end, excluded):
                        candidates.append(candidate)
        return _without_overlaps(candidates, self._rules) if candidates else []

    def _placeholder(self, match: re.Match[str]) -> tuple[int, int, int, int]:
        """A placeholder's span, and the span within it where a secret may still be found: none
        when it names a rule of this scanner; else its id, which may be a token written to pass
        for a placeholder ("<SECRET:ghp_...>")."""
        start, end = match.span()
        if match.group()[len("<SECRET:"):-1] in self._rule_id_set:
            return start, end, end, end
        return start, end, start + len("<SECRET:"), end - 1

    def _candidate(
        self, i: int, text: str, match: re.Match[str], window_end: int, excluded: list[tuple[int, int, int, int]]
    ) -> tuple[int, int, int] | None:
        """The secret of a regex match, unless a later step of the module docstring drops it."""
        rule = self._rules[i]
        if match.end() == window_end < len(text):  # perhaps cut short by the window: match it whole
            match = rule.regex.match(text, match.start())
            if match is None:
                return None
        start, end = _secret_span(match, rule.secret_group)
        if start >= end or excluded and any(start < x_end and x_start < end and not open_start <= start < end <= open_end
                                            for x_start, x_end, open_start, open_end in excluded):
            return None
        if rule.entropy and shannon_entropy(text[start:end]) <= rule.entropy:
            return None
        for allowlist in rule.allowlists:
            if allowlist.allows(text, match.span(), (start, end)):
                return None
        return start, end, i


def _reach(regex: re.Pattern[str]) -> int:
    longest = re_parser.parse(regex.pattern, regex.flags).getwidth()[1]
    return MAX_REACH if longest >= _UNBOUNDED else longest


def _windows(hits: list[tuple[int, int]], reach: int, size: int) -> list[tuple[int, int]]:
    """The windows around keyword hits, merged where they overlap."""
    reach += NEARBY
    if len(hits) == 1:
        return [(max(0, hits[0][0] - reach), min(size, hits[0][1] + reach))]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(hits):
        start, end = max(0, start - reach), min(size, end + reach)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _secret_span(match: re.Match[str], secret_group: int) -> tuple[int, int]:
    if secret_group:
        return match.span(secret_group)
    for group in range(1, match.re.groups + 1):
        start, end = match.span(group)
        if end > start:
            return start, end
    return match.span()


def _without_overlaps(candidates: list[tuple[int, int, int]], rules: tuple[Rule, ...]) -> list[Finding]:
    kept: list[Finding] = []
    for start, end, i in sorted(candidates, key=lambda c: (c[0], -c[1], c[2])):
        if not kept or start >= kept[-1].end:
            kept.append(Finding(start, end, rules[i].id))
    return kept


def _replace(text: str, findings: list[Finding]) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with the findings replaced; and for each stretch left as it was, its start in the
    result and in ``text``."""
    parts, origins, position, length = [], [(0, 0)], 0, 0
    for finding in findings:
        kept = text[position:finding.start]
        placeholder = PLACEHOLDER.format(rule_id=finding.rule_id)
        parts += (kept, placeholder)
        length += len(kept) + len(placeholder)
        position = finding.end
        origins.append((length, position))
    parts.append(text[position:])
    return "".join(parts), origins


def _gather_strings(value: Any, out: list[str], clean: set[str], found_clean: Callable[[str], bool]) -> None:
    """The str of a JSON value, dict keys included, for the keyword pass of ``redact_object``, but
    the short ones known to hold no keyword (``clean``, or ``found_clean`` says so now). The types
    of JSON are told apart by ``type``, ``isinstance`` only for what is none of them; a dict whose
    keys are all in ``clean`` (a record's, once seen twice) is let through by one set operation (a
    str subclass is compared as a str is)."""
    kind = type(value)
    if kind is dict or (kind is not list and kind is not tuple and kind is not str and isinstance(value, dict)):
        if not clean.issuperset(value):
            for key in value:
                if type(key) is str:
                    if len(key) > _SHORT or (key not in clean and not found_clean(key)):
                        out.append(key)
                elif isinstance(key, str):
                    out.append(key)
        items = value.values()
    elif kind is list or kind is tuple or (kind is not str and isinstance(value, (list, tuple))):
        items = value
    else:
        if isinstance(value, str):
            out.append(value)
        return
    for item in items:
        kind = type(item)
        if kind is str:
            if len(item) > _SHORT or (item not in clean and not found_clean(item)):
                out.append(item)
        elif kind not in _SCALARS:
            _gather_strings(item, out, clean, found_clean)


def _collect_strings(value: Any, out: list[str]) -> None:
    """Every str of a JSON value, dict keys included, in the order ``_ObjectRedaction`` visits them."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                out.append(key)
            if isinstance(item, str):
                out.append(item)
            else:
                _collect_strings(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_strings(item, out)


class _ObjectRedaction:
    """One walk of a JSON value that scans only the strings with keyword hits (by visit order,
    the order of ``_collect_strings``) and copies a container only when something in it changed."""

    def __init__(self, scanner: SecretScanner, hits_by_string: dict[int, dict[int, list[tuple[int, int]]]],
                 found: list[tuple[str, Finding]]) -> None:
        self.scanner, self.hits_by_string, self.found = scanner, hits_by_string, found
        self.order = itertools.count()

    def string(self, value: str, path: str) -> str:
        hits = self.hits_by_string.get(next(self.order))
        if hits is None and not self.scanner._everywhere:
            return value
        findings = self.scanner._settle(value, self.scanner._scan(value, hits or {}))
        self.found += ((path, finding) for finding in findings)
        return _replace(value, findings)[0] if findings else value

    def visit(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, dict):
            items, changed = [], False
            for key, item in value.items():
                new_key = key
                if isinstance(key, str):
                    findings_before = len(self.found)
                    new_key = self.string(key, "")
                    child = f"{path}.{new_key}" if path else str(new_key)
                    self.found[findings_before:] = [(child + "(key)", f) for _, f in self.found[findings_before:]]
                else:
                    child = f"{path}.{key}" if path else str(key)
                new_item = self.visit(item, child)
                changed = changed or new_key is not key or new_item is not item
                items.append((new_key, new_item))
            return dict(items) if changed else value
        if isinstance(value, (list, tuple)):
            new_items = [self.visit(item, f"{path}[{n}]") for n, item in enumerate(value)]
            if all(new is old for new, old in zip(new_items, value)):
                return value
            return type(value)(new_items)
        return value
