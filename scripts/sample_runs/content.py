"""The sample's content defects (SPEC 10-12): fake secrets planted in runs, texts copied from
other runs, and quotes of the bundled evaluation set (``evalset.jsonl``, written from ``EVAL_ITEMS``).

They are applied after every other defect, with a random generator of their own, to runs no
other defect touched: the rest of the sample keeps its bytes.

The fake secrets are assembled here from pieces, so no full key is written in this file; each is
in the format a default rule of ``streams/rules/secret_rules.toml`` finds, but spelled out of
words such as "Fake" and "Sample" so that nobody can take it for a real one. The generated
sample files do hold them whole: that is the point of the defect.
"""

from __future__ import annotations

import base64
import random
import textwrap

from sample_runs.runs import DAY, Line, Run, rfc3339, sha256_hex

MAX_TEXT = 1500  # the sample's texts are 200-1500 characters (tests/unit/test_sample_data.py)


def _pem_block() -> str:
    body = base64.b64encode(b"distill-streams sample data: a FAKE private key, not a real one. " * 4).decode()
    dashes = "-" * 5
    lines = [f"{dashes}BEGIN PRIVATE KEY{dashes}", *textwrap.wrap(body, 64), f"{dashes}END PRIVATE KEY{dashes}"]
    return "\n".join(lines)


# name -> (the secret as a rule reports it, the strings that must never leave the input topics).
# A PEM block spans lines, and its line breaks are escaped in JSON: its needles are its lines.
_PEM = _pem_block()
FAKES = {
    "github-pat": "gh" + "p_" + "FakeSampleToken" + "NotARealOne" + "0123456789",
    "aws-access-token": "AK" + "IA" + "FAKESAMPLE" + "000042",
    "aws-secret-access-key": "FakeSampleSecretKey" + "/NotReal/" + "0123456789ab",
    "private-key": _PEM,
    "url-password": "FakeSample" + "Passw0rd",
    "huggingface-access-token": "h" + "f_" + "FakeSampleTokenNotRealOnlyForDemos",
    "slack-webhook-url": "https://hooks.slack" + ".com/services/" + "FAKE-SAMPLE/not-a-real/webhook-0123",
    "slack-bot-token": "xo" + "xb-" + "0000000000-FAKE-SAMPLE-TOKEN-not-real",
    "gitlab-pat": "gl" + "pat-" + "FakeSample-NotReal01",
}


def needles(rule: str) -> list[str]:
    """What a test looks for in every output: the secret, or each line of a PEM block's body."""
    if rule == "private-key":
        return [line for line in _PEM.splitlines() if not line.startswith("-")]
    return [FAKES[rule]]


# secret_in_text: a secret in the evidence text (gated: SPEC 10 quarantines the run).
TEXT_SECRETS = [
    (["github-pat"], "It pasted the local .env file into its answer: GITHUB_TOKEN=\"{github-pat}\" (the reviewer "
                     "asked for the token to be rotated)."),
    (["aws-access-token", "aws-secret-access-key"],
     "The failing step printed its credentials: AWS_ACCESS_KEY_ID={aws-access-token} and "
     "aws_secret_access_key = {aws-secret-access-key}."),
    (["private-key"], "The agent quoted the deploy key it found among the fixtures:\n{private-key}\n"),
]
URL_SECRET = (["url-password"], "The fix reads the DSN from the environment instead of the hard-coded "
                                "postgres://app:{url-password}@db:5432/app.")
# secret_in_reason: a secret in the first score reason (not gated: redacted where it shows).
REASON_SECRETS = [("slack-webhook-url", "posted the result to {slack-webhook-url}"),
                  ("slack-bot-token", "ran with bot token {slack-bot-token}")]
# secret_in_path: a secret in a source_files entry that is not the first (not gated: redacted).
PATH_SECRET = ("huggingface-access-token", "notes/{huggingface-access-token}.txt")
# secret_in_invalid_line: an evidence line that is not JSON.
INVALID_LINE_RUN = "run-910010"
INVALID_LINE_SECRET = ("gitlab-pat", "{stamp} WARN ingest {run_id}: push to the mirror failed, retrying with "
                                     "GITLAB_TOKEN={gitlab-pat}")

# The bundled evaluation set: a few exercise statements, written for this sample.
EVAL_SET_NAME = "demo-bench"
EVAL_ITEMS = [
    {"id": "item-1",
     "prompt": "Write a function that takes a list of integers and returns the length of the longest run of "
               "consecutive equal values, or zero when the list is empty.",
     "solution": "def longest_run(xs):\n    best = run = 0\n    prev = None\n    for x in xs:\n"
                 "        run = run + 1 if x == prev else 1\n        best = max(best, run)\n        prev = x\n"
                 "    return best\n"},
    {"id": "item-2",
     "prompt": "Given a string of parentheses, brackets and braces, return true when every opening symbol is "
               "closed by the matching symbol in the right order, and false otherwise.",
     "solution": "def balanced(s):\n    pairs, stack = {')': '(', ']': '[', '}': '{'}, []\n    for c in s:\n"
                 "        if c in '([{':\n            stack.append(c)\n"
                 "        elif c in pairs and (not stack or stack.pop() != pairs[c]):\n            return False\n"
                 "    return not stack\n"},
    {"id": "item-3",
     "prompt": "Return the number of distinct ways to climb a staircase of n steps when each move climbs either "
               "one step or two steps; n is a non-negative integer.",
     "solution": "def climb(n):\n    a, b = 1, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"},
    {"id": "item-4",
     "prompt": "Write a function that merges two lists of intervals, each sorted by start, into one sorted list "
               "in which no two intervals overlap or touch.",
     "solution": "def merge(a, b):\n    out = []\n    for lo, hi in sorted(a + b):\n"
                 "        if out and lo <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], hi)\n"
                 "        else:\n            out.append([lo, hi])\n    return out\n"},
    {"id": "item-5",
     "prompt": "Given a grid of zeros and ones, count the islands: groups of ones connected horizontally or "
               "vertically. Cells on the edge of the grid are not connected to anything outside it.",
     "solution": "def islands(grid):\n    seen, count = set(), 0\n    for r, row in enumerate(grid):\n"
                 "        for c, v in enumerate(row):\n            if v and (r, c) not in seen:\n"
                 "                count += 1\n                stack = [(r, c)]\n                while stack:\n"
                 "                    i, j = stack.pop()\n"
                 "                    if (i, j) in seen or not (0 <= i < len(grid) and 0 <= j < len(grid[i])):\n"
                 "                        continue\n                    if grid[i][j]:\n"
                 "                        seen.add((i, j))\n"
                 "                        stack += [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]\n"
                 "    return count\n"},
    {"id": "item-6",
     "prompt": "Rotate a square matrix by ninety degrees clockwise in place, without a second matrix, and "
               "return nothing.",
     "solution": "def rotate(m):\n    n = len(m)\n    for i in range(n):\n        for j in range(i + 1, n):\n"
                 "            m[i][j], m[j][i] = m[j][i], m[i][j]\n    for row in m:\n        row.reverse()\n"},
]
# benchmark_quote: 13 or more consecutive words of an item's prompt, as SPEC 12 counts words
# (the second quote differs in case, punctuation and line breaks only).
BENCHMARK_QUOTES = [
    ("item-2", "Before answering, the agent restated the exercise it was given: \"Given a string of parentheses, "
               "brackets and braces, return true when every opening symbol is closed by the matching symbol in "
               "the right order\"."),
    ("item-5", "Its notes open with the task as the harness phrased it - GIVEN A GRID OF ZEROS AND ONES... count "
               "the islands (groups of ones,\nconnected horizontally or vertically)."),
]


def fill(template: str, **extra: str) -> str:
    for name, value in {**FAKES, **extra}.items():
        template = template.replace("{" + name + "}", value)
    return template


def insert_sentence(text: str, sentence: str) -> str:
    """The sentence at the end of the body, before the verdict paragraph (or at the end)."""
    cut = text.rstrip().rfind("\n\n")
    if cut < 0:
        return text + " " + sentence
    return text[:cut] + " " + sentence + text[cut:]


def set_text(run: Run, text: str) -> None:
    run.evidence["text"] = text
    run.evidence["provenance"]["sig_hash"] = sha256_hex(f"{run.run_id}|{run.task_id}|{text}")


def runs_by_task(runs: list[Run]) -> dict[str, list[Run]]:
    by_task: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.scored_at, r.run_id)):
        by_task.setdefault(run.task_id, []).append(run)
    return by_task


class Picker:
    """Accepted runs no defect touched yet, handed out once each."""

    def __init__(self, rng: random.Random, runs: list[Run], taken: set[str]) -> None:
        self.rng = rng
        self.free = {r.run_id: r for r in runs if r.category == "accepted" and r.run_id not in taken}
        self.by_task = runs_by_task(runs)

    def take(self, run: Run) -> Run:
        del self.free[run.run_id]
        return run

    def pick(self, room: int = 0, ok=lambda run: True) -> Run:
        """A free run whose text has ``room`` characters to spare, and that ``ok`` accepts."""
        fits = [r for _, r in sorted(self.free.items())
                if len(r.evidence["text"].strip()) + room <= MAX_TEXT and ok(r)]
        return self.take(self.rng.choice(fits))

    def untouched_task(self, run: Run) -> bool:
        """Every accepted run of the run's task is still free (no other defect changes its pairs)."""
        return all(r.run_id in self.free for r in self.by_task[run.task_id] if r.category == "accepted")


def plant_secrets(picker: Picker) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """secret_in_text, secret_in_url, secret_in_reason, secret_in_path: the defects and, per run,
    the rules whose fakes it holds."""
    defects: dict[str, list[str]] = {}
    planted: dict[str, list[str]] = {}
    for kind, specs in (("secret_in_text", TEXT_SECRETS), ("secret_in_url", [URL_SECRET])):
        chosen = []
        for rules, template in specs:
            sentence = fill(template)
            run = picker.pick(room=len(sentence) + 1)
            set_text(run, insert_sentence(run.evidence["text"], sentence))
            planted[run.run_id] = rules
            chosen.append(run.run_id)
        defects[kind] = sorted(chosen)

    # In the first reason of an accepted run that is the first accepted run of a task with a
    # rejected run: its first pair is in the plan, whatever the cap, and quotes the reason.
    def leads_a_pair(run: Run) -> bool:
        task = picker.by_task[run.task_id]
        first_accepted = next(r for r in task if r.category == "accepted")
        return first_accepted is run and any(r.category == "rejected" for r in task) and picker.untouched_task(run)

    chosen = []
    for rule, template in REASON_SECRETS:
        run = picker.pick(ok=leads_a_pair)
        run.score["reasons"] = [fill(template), *run.score["reasons"][:2]]
        planted[run.run_id] = [rule]
        chosen.append(run.run_id)
    defects["secret_in_reason"] = sorted(chosen)

    rule, template = PATH_SECRET
    run = picker.pick(ok=lambda r: len(r.evidence["source_files"]) >= 1)
    files = run.evidence["source_files"]
    files.insert(1, fill(template))  # never the first: the prompt's file is a gated place
    planted[run.run_id] = [rule]
    defects["secret_in_path"] = [run.run_id]
    return defects, planted


def secret_invalid_line(rng: random.Random) -> Line:
    """secret_in_invalid_line: a log line on the evidence topic, with a token in it."""
    t = rng.randint(3600, 3 * DAY - 3600)
    rule, template = INVALID_LINE_SECRET
    text = fill(template, stamp=rfc3339(t), run_id=INVALID_LINE_RUN)
    return Line((t, 2, INVALID_LINE_RUN), text, invalid_kind="secret_in_invalid_line")


# Copies that differ from the original only in what SPEC 11 normalises away.
def nbsp_and_spaces(text: str) -> str:
    """Some spaces made non-breaking, the paragraph break widened."""
    out = text.replace(" the ", "\u00a0the\u00a0", 2).replace("\n\n", "\n \n\t", 1)
    return "  " + out + "\n"


def compatibility_forms(text: str) -> str:
    """Digits as full-width forms and "fi" as its ligature (NFKC maps them back)."""
    out = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)
    return out.replace("fi", "\ufb01")


def copy_texts(picker: Picker) -> tuple[dict[str, list[str]], dict[str, str]]:
    """duplicate_text_same_prompt and duplicate_text_other_prompt: later runs whose text copies an
    earlier accepted run's; and, per copy, the run it copies (the sample kept, SPEC 11)."""
    copies: dict[str, str] = {}

    # Same prompt: the two accepted runs of a task with one or two runs to pair them with, the
    # copy scored last of all. Both pairs with each partner are in the plan (2 x 2 < the cap
    # of 5), and the copy's pair is the later one: it is the duplicate.
    def pairable_twins(run: Run) -> bool:
        task = picker.by_task[run.task_id]
        accepted = [r for r in task if r.category == "accepted"]
        rejected = [r for r in task if r.category == "rejected"]
        partial = [r for r in task if r.category == "partially_accepted"]
        partners = rejected or partial
        return (len(accepted) == 2 and accepted[1] is run is task[-1] and 1 <= len(partners) <= 2
                and accepted[0].run_id in picker.free and accepted[0].evidence["source_files"]
                and len(accepted[0].evidence["text"].strip()) <= MAX_TEXT - 10)

    same = []
    for variant in (lambda text: text, nbsp_and_spaces):
        copy = picker.pick(ok=pairable_twins)
        original = picker.take(next(r for r in picker.by_task[copy.task_id] if r.category == "accepted"))
        set_text(copy, variant(original.evidence["text"]))
        copy.evidence["source_files"] = list(original.evidence["source_files"])
        copies[copy.run_id] = original.run_id
        same.append(copy.run_id)

    # Another prompt: a run of another task copies the text of a run scored before it.
    other = []
    for variant in (lambda text: text, compatibility_forms):
        copy = picker.pick(ok=lambda r: r.scored_at > DAY)  # runs of the first day to copy from
        original = picker.pick(ok=lambda r: r.task_id != copy.task_id and r.scored_at < copy.scored_at
                               and "fi" in r.evidence["text"] and any(c.isdigit() for c in r.evidence["text"]))
        set_text(copy, variant(original.evidence["text"]))
        copies[copy.run_id] = original.run_id
        other.append(copy.run_id)
    return {"duplicate_text_same_prompt": sorted(same), "duplicate_text_other_prompt": sorted(other)}, copies


def quote_benchmark(picker: Picker) -> dict[str, list[str]]:
    """benchmark_quote: runs quoting 13 or more consecutive words of an evaluation item."""
    chosen = []
    for _item, sentence in BENCHMARK_QUOTES:
        run = picker.pick(room=len(sentence) + 1)
        set_text(run, insert_sentence(run.evidence["text"], sentence))
        chosen.append(run.run_id)
    return {"benchmark_quote": sorted(chosen)}


def inject_content_defects(seed: int, runs: list[Run], taken: set[str]) -> tuple[dict, dict, dict, Line]:
    """Every content defect: (defects, planted secret rules per run, copies, the invalid line)."""
    rng = random.Random(seed)
    picker = Picker(rng, runs, taken)
    copies_defects, copies = copy_texts(picker)  # the most particular runs first
    secret_defects, planted = plant_secrets(picker)
    quotes = quote_benchmark(picker)
    line = secret_invalid_line(rng)
    planted[INVALID_LINE_RUN] = [INVALID_LINE_SECRET[0]]
    defects = {**secret_defects, "secret_in_invalid_line": [INVALID_LINE_RUN], **copies_defects, **quotes}
    return defects, planted, copies, line
