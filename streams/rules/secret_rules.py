"""Secret rules: the default pack and a user's rules file, both in gitleaks' TOML format.

A user's file (``DISTILL_SECRET_RULES``) is read as gitleaks reads it, so a team's existing
``.gitleaks.toml`` works:

- ``[extend] useDefault = true``: the default pack (``secret_rules.toml`` beside this module) and
  this file's rules. Without it, or ``false``: this file's rules only ("default rules do not
  apply"); a file that then defines no rule would find nothing, and is refused. ``disabledRules``
  drops rules by id. Chaining files (``[extend] path``/``url``) is not supported.
- A rule with the id of a default rule replaces it when it has a ``regex``. Without one it
  extends the default rule as gitleaks does: its allowlists, keywords and tags are added, and its
  description, entropy and secretGroup replace the default's when set.
- Records are not files: a rule with only a ``path`` cannot apply to text and is refused; a rule
  with a regex and a path applies to all text. An allowlist's ``paths`` and ``commits`` never
  match, so an allowlist made only of them, or an AND allowlist naming them, allows nothing.
- Global allowlists (``[allowlist]``, ``[[allowlists]]``) apply to every rule of the result, or
  with ``targetRules`` to those rules only.

Regexes are Go's, translated by ``go_regex``. Whatever cannot be used raises ``SecretRulesError``
naming the file, the rule and why: the worker must not start with a rule silently missing.
"""

import functools
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NoReturn

from streams.errors import SecretRulesError
from streams.rules.go_regex import GoRegexError, compile_go

DEFAULT_PACK = Path(__file__).with_name("secret_rules.toml")
# An id appears in the placeholder "<SECRET:{id}>", which must stay recognisable.
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

TOP_KEYS = ("title", "description", "minVersion", "extend", "rules", "allowlist", "allowlists")
EXTEND_KEYS = ("useDefault", "disabledRules")
RULE_KEYS = ("id", "description", "regex", "secretGroup", "entropy", "keywords", "tags", "path", "allowlist", "allowlists")
ALLOWLIST_KEYS = ("description", "condition", "regexTarget", "regexes", "stopwords", "paths", "commits")
NOT_SUPPORTED = {
    "path": "extending another file is not supported: copy its rules into this one",
    "url": "extending a remote file is not supported: copy its rules into this one",
    "required": "composite rules ([[rules.required]]) are not supported",
    "skipReport": "composite rules (skipReport) are not supported",
}


@dataclass(frozen=True)
class Allowlist:
    """When a candidate finding is not a secret (gitleaks' allowlist)."""

    regexes: tuple[re.Pattern[str], ...] = ()
    target: Literal["secret", "match", "line"] = "secret"
    stopwords: tuple[str, ...] = ()  # lower case, searched in the lower-cased secret
    require_all: bool = False  # condition AND
    file_criteria: bool = False  # it names paths or commits, which no text has

    def allows(self, text: str, match: tuple[int, int], secret: tuple[int, int]) -> bool:
        if self.require_all:
            return not self.file_criteria and (not self.regexes or self._regex_allows(text, match, secret)) and (
                not self.stopwords or self._stopword_allows(text, secret))
        return bool(self.regexes) and self._regex_allows(text, match, secret) or (
            bool(self.stopwords) and self._stopword_allows(text, secret))

    def _regex_allows(self, text: str, match: tuple[int, int], secret: tuple[int, int]) -> bool:
        target = text[secret[0]:secret[1]] if self.target == "secret" else self._target(text, match, secret)
        for regex in self.regexes:  # a loop, not any() over a generator: this runs for every candidate
            if regex.search(target):
                return True
        return False

    def _stopword_allows(self, text: str, secret: tuple[int, int]) -> bool:
        lowered = text[secret[0]:secret[1]].lower()
        return any(word in lowered for word in self.stopwords)

    def _target(self, text: str, match: tuple[int, int], secret: tuple[int, int]) -> str:
        if self.target == "secret":
            return text[secret[0]:secret[1]]
        if self.target == "match":
            return text[match[0]:match[1]]
        end = text.find("\n", match[1])
        return text[text.rfind("\n", 0, match[0]) + 1:len(text) if end == -1 else end]


@dataclass(frozen=True)
class Rule:
    id: str
    regex: re.Pattern[str]
    secret_group: int = 0  # 0: gitleaks' default, the first non-empty group, else the whole match
    keywords: tuple[str, ...] = ()  # lower case; none: the rule runs on every text
    entropy: float = 0.0  # the secret's Shannon entropy must exceed it (0: no floor)
    allowlists: tuple[Allowlist, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()


@functools.cache
def default_rules() -> tuple[Rule, ...]:
    return _Reader(str(DEFAULT_PACK)).rules(defaults=())


def load_rules(rules_file: Path | None = None) -> tuple[Rule, ...]:
    """The default pack, or the rules a user's file makes of it (module docstring)."""
    if rules_file is None:
        return default_rules()
    return _Reader(str(rules_file)).rules(defaults=default_rules())


class _Reader:
    """Reads one file; every problem is a SecretRulesError naming it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str, rule_id: str | None = None) -> NoReturn:
        raise SecretRulesError(self.source, problem, rule_id)

    def rules(self, defaults: tuple[Rule, ...]) -> tuple[Rule, ...]:
        doc = self.document()
        self.check_keys(doc, TOP_KEYS, "the top level")
        extend = self.table(doc, "extend")
        self.check_keys(extend, EXTEND_KEYS, "[extend]")
        use_default = extend.get("useDefault", False)
        if not isinstance(use_default, bool):
            self.fail(f"[extend] useDefault must be true or false, not {use_default!r}")
        pool = {rule.id: rule for rule in defaults} if use_default else {}
        raw_rules = doc.get("rules", [])
        if not isinstance(raw_rules, list) or not all(isinstance(raw, dict) for raw in raw_rules):
            self.fail("rules must be an array of tables ([[rules]])")
        if not raw_rules and not use_default:
            self.fail("the file defines no rule and does not extend the default pack ([extend] useDefault = true): "
                      "it would find no secret")
        seen: set[str] = set()
        for number, raw in enumerate(raw_rules, 1):
            rule = self.rule(raw, number, pool)
            if rule.id in seen:
                self.fail("the id appears in more than one [[rules]]", rule.id)
            seen.add(rule.id)
            pool[rule.id] = rule
        for rule_id in self.strings(extend, "disabledRules"):
            if pool.pop(rule_id, None) is None:
                known = "the default pack or this file" if use_default else "this file (useDefault is not set)"
                self.fail(f"disabledRules names a rule that is not in {known}", rule_id)
        self.add_global_allowlists(doc, pool)
        return tuple(pool.values())

    def document(self) -> dict[str, Any]:
        try:
            text = Path(self.source).read_bytes().decode("utf-8")
        except OSError as exc:
            self.fail(f"cannot be read ({exc.strerror or exc})")
        except UnicodeDecodeError as exc:
            self.fail(f"is not UTF-8 text ({exc.reason} at byte {exc.start})")
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            where = "" if " line " in str(exc) else f" (line {text.count(chr(10)) + 1})"  # "at end of document"
            self.fail(f"is not valid TOML: {exc}{where}")

    def rule(self, raw: dict[str, Any], number: int, pool: dict[str, Rule]) -> Rule:
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            self.fail(f"[[rules]] number {number} has no id")
        if not RULE_ID.fullmatch(rule_id):
            self.fail("an id is 1-100 of the characters A-Z a-z 0-9 _ . - (it appears in <SECRET:id>)", rule_id)
        self.check_keys(raw, RULE_KEYS, "[[rules]]", rule_id)
        base = pool.get(rule_id)
        regex_text = self.string(raw, "regex", rule_id)
        self.string(raw, "path", rule_id)
        if regex_text is None and base is None:
            if "path" in raw:
                self.fail("it has only a path: records are not files, so it cannot apply to text; give it a regex", rule_id)
            self.fail("it has no regex", rule_id)
        regex = self.compile(regex_text, rule_id, "regex") if regex_text is not None else base.regex
        secret_group = raw.get("secretGroup", None if regex_text is None else 0)
        if secret_group is not None and (type(secret_group) is not int or secret_group < 0):
            self.fail(f"secretGroup must be a whole number >= 0, not {secret_group!r}", rule_id)
        if secret_group is not None and secret_group > regex.groups:
            self.fail(f"secretGroup is {secret_group} but the regex has {regex.groups} group(s)", rule_id)
        entropy = raw.get("entropy")
        if entropy is not None and (type(entropy) not in (int, float) or entropy < 0):
            self.fail(f"entropy must be a number >= 0, not {entropy!r}", rule_id)
        keywords = tuple(word.lower() for word in self.strings(raw, "keywords", rule_id))
        if any(not word or "\x00" in word for word in keywords):
            self.fail("a keyword is empty or holds a NUL character", rule_id)
        allowlists = self.rule_allowlists(raw, rule_id)
        tags = self.strings(raw, "tags", rule_id)
        description = self.string(raw, "description", rule_id)
        if regex_text is None:  # extends the default rule of this id, as gitleaks does
            return replace(
                base, description=description or base.description,
                entropy=base.entropy if entropy is None else float(entropy),
                secret_group=base.secret_group if secret_group is None else secret_group,
                keywords=base.keywords + keywords, tags=base.tags + tags, allowlists=base.allowlists + allowlists,
            )
        return Rule(rule_id, regex, secret_group, keywords, float(entropy or 0), allowlists, description or "", tags)

    def rule_allowlists(self, raw: dict[str, Any], rule_id: str) -> tuple[Allowlist, ...]:
        if "allowlist" in raw and "allowlists" in raw:
            self.fail("[rules.allowlist] (the older form) cannot be used alongside [[rules.allowlists]]", rule_id)
        tables = [self.table(raw, "allowlist", rule_id)] if "allowlist" in raw else self.tables(raw, "allowlists", rule_id)
        return tuple(self.allowlist(table, "[[rules.allowlists]]", rule_id) for table in tables)

    def add_global_allowlists(self, doc: dict[str, Any], pool: dict[str, Rule]) -> None:
        if "allowlist" in doc and "allowlists" in doc:
            self.fail("[allowlist] (the older form) cannot be used alongside [[allowlists]]")
        tables = [self.table(doc, "allowlist")] if "allowlist" in doc else self.tables(doc, "allowlists")
        for table in tables:
            targets = self.strings(table, "targetRules")
            allowlist = self.allowlist({k: v for k, v in table.items() if k != "targetRules"}, "[[allowlists]]")
            for rule_id in targets:
                if rule_id not in pool:
                    self.fail("targetRules of a global allowlist names a rule that is not in the result", rule_id)
            for rule_id in targets or list(pool):
                pool[rule_id] = replace(pool[rule_id], allowlists=pool[rule_id].allowlists + (allowlist,))

    def allowlist(self, raw: dict[str, Any], where: str, rule_id: str | None = None) -> Allowlist:
        self.check_keys(raw, ALLOWLIST_KEYS, where, rule_id)
        condition = (self.string(raw, "condition", rule_id) or "OR").upper()
        if condition not in ("OR", "||", "AND", "&&"):
            self.fail(f"{where} condition must be OR or AND, not {condition!r}", rule_id)
        target = self.string(raw, "regexTarget", rule_id) or "secret"
        if target not in ("secret", "match", "line"):
            self.fail(f"{where} regexTarget must be secret, match or line, not {target!r}", rule_id)
        regexes = tuple(self.compile(text, rule_id, f"{where} regex") for text in self.strings(raw, "regexes", rule_id))
        stopwords = tuple(word.lower() for word in self.strings(raw, "stopwords", rule_id))
        file_criteria = bool(self.strings(raw, "paths", rule_id) or self.strings(raw, "commits", rule_id))
        if not (regexes or stopwords or file_criteria):
            self.fail(f"an allowlist ({where}) has no regexes, stopwords, paths or commits", rule_id)
        return Allowlist(regexes, target, stopwords, condition in ("AND", "&&"), file_criteria)

    def compile(self, text: str, rule_id: str | None, what: str) -> re.Pattern[str]:
        try:
            return compile_go(text)
        except (GoRegexError, re.error) as exc:
            self.fail(f"the {what} {text!r} cannot be used in Python: {exc}", rule_id)

    def check_keys(self, table: dict[str, Any], known: tuple[str, ...], where: str, rule_id: str | None = None) -> None:
        for key in table:
            if key in known:
                continue
            if key in NOT_SUPPORTED:
                self.fail(f"{where} has {key!r}: {NOT_SUPPORTED[key]}", rule_id)
            self.fail(f"unknown key {key!r} in {where} (known: {', '.join(known)})", rule_id)

    def table(self, parent: dict[str, Any], key: str, rule_id: str | None = None) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.fail(f"{key} must be a table", rule_id)
        return value

    def tables(self, parent: dict[str, Any], key: str, rule_id: str | None = None) -> list[dict[str, Any]]:
        value = parent.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(f"{key} must be an array of tables ([[{key}]])", rule_id)
        return value

    def string(self, table: dict[str, Any], key: str, rule_id: str | None = None) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(f"{key} must be a string, not {value!r}", rule_id)
        return value

    def strings(self, table: dict[str, Any], key: str, rule_id: str | None = None) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(f"{key} must be an array of strings, not {value!r}", rule_id)
        return tuple(value)
