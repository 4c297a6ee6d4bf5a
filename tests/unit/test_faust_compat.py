"""The Faust patches fail loudly: a Faust the registry does not describe stops the worker."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer

from streams.cli import main
from streams.errors import FaustIncompatible
from streams.faust_fixes import delivery, faust_compat
from streams.faust_fixes.faust_compat import REGISTRY, Internal, check

STREAMS = Path(__file__).resolve().parents[2] / "streams"
THIRD_PARTY = ("faust", "mode", "aiokafka")
# Public extension points, not internals: a web view's handlers.
PUBLIC_BASES = {"faust.web.views:View"}


def test_the_installed_faust_passes_in_a_fresh_process():
    # A fresh process, as the worker checks it: no patch installed yet.
    done = subprocess.run([sys.executable, "-c", "from streams.faust_fixes.faust_compat import check; check()"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_installed_faust_passes_with_the_patches_installed(monkeypatch):
    monkeypatch.setattr(Consumer, "wait_first", delivery.wait_first)
    check()


def test_another_faust_version_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(faust_compat, "installed_version", lambda: "0.16.0")
    with pytest.raises(FaustIncompatible) as refused:
        check()
    message = str(refused.value)
    assert "faust-streaming 0.16.0 is installed" in message
    assert "written for 0.15.3" in message
    assert "Operator action: install the supported Faust (faust-streaming==0.15.3" in message
    assert "\n" not in message


def test_a_missing_method_fails_and_names_its_patch(monkeypatch):
    monkeypatch.delattr(ProducerBuffer, "_send_pending")
    with pytest.raises(FaustIncompatible, match=r"ProducerBuffer\._send_pending \(streams\.faust_fixes\.transactions: .*the method is gone"):
        check()


def test_a_changed_signature_fails_and_names_its_patch(monkeypatch):
    async def on_recovery_completed(self, generation_id: int = 0, *, timeout: float = 1.0) -> None: ...

    monkeypatch.setattr(Recovery, "on_recovery_completed", on_recovery_completed)
    with pytest.raises(FaustIncompatible) as refused:
        check()
    message = str(refused.value)
    assert "Recovery.on_recovery_completed (streams.faust_fixes.resume_order: " in message
    assert "its parameters are (self, generation_id, *timeout), the patch expects (self, generation_id)" in message


def test_faust_is_checked_under_an_installed_patch(monkeypatch):
    # The patch in place, and Faust's own function (kept by the patch module) changed.
    async def wait_first(self, *coros): ...

    monkeypatch.setattr(Consumer, "wait_first", delivery.wait_first)
    monkeypatch.setattr(delivery, "_faust_wait_first", wait_first)
    changed = r"Consumer\.wait_first .*are \(self, \*coros\), the patch expects \(self, \*coros, timeout\)"
    with pytest.raises(FaustIncompatible, match=changed):
        check()


def test_a_call_the_patch_depends_on_must_stay_in_the_source(monkeypatch):
    async def drain_messages(self, fetcher) -> None:  # delivers without wait_first
        ...

    monkeypatch.setattr(Consumer, "_drain_messages", drain_messages)
    with pytest.raises(FaustIncompatible, match=r"Consumer\._drain_messages .*no longer contains 'self\.wait_first\('"):
        check()


def test_a_missing_attribute_or_owner_fails():
    gone = (Internal("faust.transport.consumer:Consumer", "_gone", None, "streams.faust_fixes.skip_guard", "why"),
            Internal("faust.transport.consumer:Vanished", "x", None, "streams.faust_fixes.skip_guard", "why"))
    with pytest.raises(FaustIncompatible) as refused:
        check(gone)
    assert "Consumer._gone (streams.faust_fixes.skip_guard: why): the attribute is gone" in str(refused.value)
    assert "faust.transport.consumer:Vanished no longer exists" in str(refused.value)


def test_the_worker_command_refuses_to_start_under_another_faust(monkeypatch):
    monkeypatch.setattr(faust_compat, "installed_version", lambda: "0.16.0")
    # No broker answers here: a worker that went on would end with a connection error instead.
    monkeypatch.setenv("DISTILL_BOOTSTRAP", "127.0.0.1:1")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: faust-streaming 0.16.0 is installed")


def test_the_worker_process_exits_non_zero_with_one_line():
    code = ("import streams.faust_fixes.faust_compat as f; f.installed_version = lambda: '0.16.0'; "
            "from streams.cli import main; main(['worker'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: faust-streaming 0.16.0 is installed")


def _third_party_imports(tree: ast.Module) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
            names.update({alias.asname or alias.name: f"{node.module}:{alias.name}" for alias in node.names})
    return names


def _owner_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _registered(owner_class: type, name: str) -> bool:
    owners = {_owner_name(c) for c in owner_class.__mro__}
    return any(i.name == name and (i.owner in owners or _resolves_to(i.owner, owner_class)) for i in REGISTRY)


def _resolves_to(owner: str, cls: type) -> bool:
    module, _, qualname = owner.partition(":")
    return getattr(importlib.import_module(module), qualname, None) is cls


def test_every_patch_and_override_of_a_faust_class_is_registered():
    unregistered = []
    for path in sorted(p for p in STREAMS.rglob("*.py") if p.name != "__main__.py"):
        tree = ast.parse(path.read_text())
        imported = _third_party_imports(tree)
        module = importlib.import_module(".".join(path.relative_to(STREAMS.parent).with_suffix("").parts))
        for node in ast.walk(tree):  # Faust.attr = ours
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in imported:
                        cls = getattr(module, target.value.id)
                        if isinstance(cls, type) and not _registered(cls, target.attr):
                            unregistered.append(f"{path.name}: {target.value.id}.{target.attr} =")
            if isinstance(node, ast.ClassDef):  # class Ours(FaustClass): def faust_method
                cls = getattr(module, node.name, None)
                faust_bases = [c for c in getattr(cls, "__mro__", ())[1:] if c.__module__.split(".")[0] in THIRD_PARTY]
                if not faust_bases or {_owner_name(c) for c in faust_bases} & PUBLIC_BASES:
                    continue
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name != "__init__":
                        if any(item.name in c.__dict__ for c in faust_bases) and not _registered(cls, item.name):
                            unregistered.append(f"{path.name}: {node.name}.{item.name} overrides Faust")
    assert not unregistered, "register these in streams/faust_fixes/faust_compat.py: " + "; ".join(unregistered)
