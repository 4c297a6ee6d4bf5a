r"""Go (RE2) regular expressions, as gitleaks rules files write them, in Python's ``re`` dialect.

Python compiles most RE2 syntax unchanged. What it reads differently is rewritten here:

- a flag group such as ``(?i)`` after the start of the pattern (an error since Python 3.11)
  becomes a scoped group ``(?i:...)`` over the rest of its branch, and over each later branch of
  the enclosing group: RE2 keeps a flag until the group that set it closes, across ``|``;
- ``\z`` (end of text) becomes ``\Z``; ``\Q...\E`` (quoted text) becomes that text escaped;
- a POSIX class inside brackets (``[[:alnum:]]``) becomes its ASCII set: Python would read
  ``[[:alnum:]`` as the set of the characters ``[:alnum``;
- ``(?<name>...)`` becomes ``(?P<name>...)``.

``compile_go`` compiles with ``re.ASCII``, so that ``\b``, ``\w``, ``\d`` and ``\s`` mean what
they mean in RE2. Whatever Python still cannot compile raises ``re.error``, and a construct with
no Python equivalent (the ungreedy flag ``U``, a negated POSIX class beside other items) raises
``GoRegexError``: the rules loader reports either with the rule's id.
"""

import re
import warnings

POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": r"\x00-\x7f", "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": r"!-/:-@\[-`{-~", "space": r"\t\n\v\f\r ", "upper": "A-Z", "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z-]*)([:)])")


class GoRegexError(ValueError):
    """A Go regex construct that Python's ``re`` has no equivalent for."""


def compile_go(pattern: str) -> re.Pattern[str]:
    translated = translate(pattern)
    # Python warns (FutureWarning) about sets it may read differently one day ("--", "&&"):
    # the translation keeps today's reading, which is RE2's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(translated, re.ASCII)


def translate(pattern: str) -> str:
    parser = _Translator(pattern)
    out = parser.alternation()
    return out + pattern[parser.i:]  # an unbalanced ")" is left for re.compile to report


def _python_flags(flags: str) -> str:
    if "U" in flags:
        raise GoRegexError("the ungreedy flag (?U) has no Python equivalent")
    return flags


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p, self.i = pattern, 0

    def alternation(self) -> str:
        """Branches up to the closing ``)`` of the current group (not consumed) or the end."""
        branches, carried = [], []
        while True:
            branch, set_here = self.sequence()
            for flags in reversed(carried):  # flags set in an earlier branch still hold here
                branch = f"(?{flags}:{branch})"
            branches.append(branch)
            carried += set_here
            if self.i < len(self.p) and self.p[self.i] == "|":
                self.i += 1
                continue
            return "|".join(branches)

    def sequence(self) -> tuple[str, list[str]]:
        """One branch; returns it and the flags it set (they carry to the later branches)."""
        out: list[str] = []
        p = self.p
        while self.i < len(p) and p[self.i] not in "|)":
            c = p[self.i]
            if c == "\\":
                out.append(self.escape())
            elif c == "[":
                out.append(self.char_class())
            elif c == "(":
                flag_group = _FLAG_GROUP.match(p, self.i)
                if flag_group and flag_group[2] == ")":
                    flags = _python_flags(flag_group[1])
                    if self.i == 0 and "-" not in flags:  # Python accepts global flags at the very start
                        out.append(flag_group[0])
                        self.i = flag_group.end()
                        continue
                    self.i = flag_group.end()
                    rest, set_later = self.sequence()
                    out.append(f"(?{flags}:{rest})")
                    return "".join(out), [flags, *set_later]
                out.append(self.group(flag_group))
            else:
                out.append(c)
                self.i += 1
        return "".join(out), []

    def group(self, flag_group: re.Match[str] | None) -> str:
        p = self.p
        if flag_group:  # (?i:...)
            opening = f"(?{_python_flags(flag_group[1])}:"
            self.i = flag_group.end()
        elif p.startswith("(?<", self.i) and not p.startswith(("(?<=", "(?<!"), self.i):
            opening, self.i = "(?P<", self.i + 3
        else:
            opening, self.i = "(", self.i + 1
        inner = self.alternation()
        if self.i < len(p):  # the ")"
            self.i += 1
            return f"{opening}{inner})"
        return f"{opening}{inner}"

    def escape(self) -> str:
        p, i = self.p, self.i
        nxt = p[i + 1:i + 2]
        if nxt == "z":
            self.i += 2
            return r"\Z"
        if nxt == "Q":
            end = p.find(r"\E", i + 2)
            end = len(p) if end == -1 else end
            self.i = min(len(p), end + 2)
            return re.escape(p[i + 2:end])
        self.i += 2
        return p[i:i + 2]

    def char_class(self) -> str:
        p, i = self.p, self.i + 1
        out = ["["]
        if p.startswith("^", i):
            out.append("^")
            i += 1
        first = i
        while i < len(p) and (p[i] != "]" or i == first):
            if p.startswith("[:", i) and (end := p.find(":]", i + 2)) != -1:
                name = p[i + 2:end]
                if name.startswith("^"):
                    if out != ["["] or not p.startswith("]", end + 2):
                        raise GoRegexError(f"the negated POSIX class [:{name}:] beside other items has no Python equivalent")
                    out.append("^" + self._posix(name[1:]))
                else:
                    out.append(self._posix(name))
                i = end + 2
            elif p[i] == "\\":
                out.append(p[i:i + 2])
                i += 2
            else:
                # literal in RE2; Python reads "[" as a nested set and warns about "&&", "~~", "||"
                out.append("\\" + p[i] if p[i] in "[]&~|" else p[i])
                i += 1
        self.i = min(len(p), i + 1)
        return "".join(out) + ("]" if i < len(p) else "")

    @staticmethod
    def _posix(name: str) -> str:
        if name not in POSIX_CLASSES:
            raise GoRegexError(f"unknown POSIX class [:{name}:] (known: {', '.join(sorted(POSIX_CLASSES))})")
        return POSIX_CLASSES[name]
