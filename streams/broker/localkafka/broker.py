"""Run a real single-node Apache Kafka broker (KRaft mode) on 127.0.0.1.

The broker jars are gathered by Maven from ``pom.xml`` next to this file, so the machine
only needs a Java 17+ runtime and Maven; no tarball, container or ZooKeeper. Everything
lives under one home folder (``streams.broker.localkafka.home``).

Only the process named in ``broker.pid`` is ever stopped, and only after checking that
its command line is a Kafka broker for this very home, so other brokers are never touched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.broker.localkafka.errors import AssemblyError, BrokerStartError, FormatError, MissingToolError, PortInUseError
from streams.broker.localkafka.home import KAFKA_VERSION, BrokerHome

MIN_JAVA = 17
INSTALL_HINT = "install them with e.g. `apt-get install openjdk-17-jre-headless maven`"
POM = Path(__file__).with_name("pom.xml")


# Popen objects of brokers started by this process: polling them reaps the child (no
# zombie that looks alive in /proc) and keeps Python from warning about a lost child.
_children: dict[int, subprocess.Popen[bytes]] = {}


class LocalKafka(BrokerHome):
    """A broker started, stopped and inspected in its home."""

    # -- public API -------------------------------------------------------------------

    def up(self, timeout: float = 120.0, progress: Callable[[str], None] | None = None) -> str:
        """Start the broker unless it already runs; return once it answers Kafka requests."""
        say = progress or (lambda _message: None)
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        with self._lock():
            pid = self._running_pid()
            if pid is not None:
                if not self._answers(2.0):
                    # Started by someone else and still booting: wait, never start a second one.
                    say(f"waiting for the broker (pid {pid}) to answer")
                    self._wait_ready(pid, timeout)
                return f"Kafka {KAFKA_VERSION} already running at {self.bootstrap} (pid {pid})"
            need_jars = not self._lib_marker.exists()
            java = self._require_tools(need_mvn=need_jars)
            self._require_free_ports()
            if need_jars:
                say(f"assembling Kafka {KAFKA_VERSION} jars with Maven into {self.lib_dir}")
                self._assemble()
            self._write_private(self.server_properties, self.render_server_properties())
            self._write_private(self.log4j_properties, self.render_log4j_properties())
            if not (self.data_dir / "meta.properties").exists():
                say(f"formatting storage in {self.data_dir}")
                self._format(java)
            say(f"starting the broker on {self.bootstrap}")
            pid = self._start(java)
            say(f"waiting for the broker (pid {pid}) to answer")
            self._wait_ready(pid, timeout)
        return f"Kafka {KAFKA_VERSION} running at {self.bootstrap} (pid {pid}); log: {self.log_file}"

    def down(self) -> str:
        """Stop the broker this home started, if any."""
        if not self.pid_file.exists():
            return "Kafka is not running"
        with self._lock():
            pid = self._read_pid()
            if pid is None or not self._is_our_broker(pid):
                self.pid_file.unlink(missing_ok=True)
                return "Kafka is not running (removed a stale pid file)"
            with contextlib.suppress(ProcessLookupError):  # it may exit on its own meanwhile
                os.kill(pid, signal.SIGTERM)
            killed = not self._wait_exit(pid, 30.0)
            if killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 10.0)
            _children.pop(pid, None)
            self.pid_file.unlink(missing_ok=True)
        how = "killed after 30 s without a clean shutdown" if killed else "stopped"
        return f"Kafka (pid {pid}) {how}"

    def status(self) -> dict[str, object]:
        pid = self._running_pid()
        return {
            "running": pid is not None,
            "ready": pid is not None and self._answers(2.0),
            "pid": pid,
            "bootstrap": self.bootstrap,
            "sasl_bootstrap": self.sasl_bootstrap,
            "home": str(self.home),
            "log": str(self.log_file),
            "kafka_version": KAFKA_VERSION,
        }

    # -- steps of up() ----------------------------------------------------------------

    def _require_tools(self, need_mvn: bool) -> str:
        java = shutil.which("java")
        missing = [name for name, path in (("java", java), ("mvn", shutil.which("mvn"))) if not path]
        if not need_mvn and "mvn" in missing:
            missing.remove("mvn")
        if missing:
            raise MissingToolError(
                f"{' and '.join(missing)} not found on PATH; the local Kafka broker needs a "
                f"Java {MIN_JAVA}+ runtime and Maven: {INSTALL_HINT}"
            )
        assert java is not None
        version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
        match = re.search(r'version "(?:1\.)?(\d+)', version)
        if match and int(match.group(1)) < MIN_JAVA:
            raise MissingToolError(
                f"{java} is Java {match.group(1)}, but Kafka {KAFKA_VERSION} needs Java "
                f"{MIN_JAVA}+: {INSTALL_HINT}, then make it the first `java` on PATH"
            )
        return java

    def _require_free_ports(self) -> None:
        for port in (self.port, self.controller_port, self.sasl_port):
            if port is None:
                continue
            with socket.socket() as probe:
                # Same option the broker sets, so ports in TIME_WAIT count as free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise PortInUseError(
                        f"port {port} on 127.0.0.1 is already in use (another Kafka broker?); "
                        "stop that process or pick free ports with DISTILL_KAFKA_PORT and "
                        "DISTILL_KAFKA_CONTROLLER_PORT"
                    ) from None

    def _assemble(self) -> None:
        # Build next to the final folder and rename, so a half download never looks complete.
        partial = self.home / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        pom = self.home / "pom.xml"  # a copy: Maven must not write next to the installed package
        shutil.copyfile(POM, pom)
        log = self.home / "mvn.out"
        with log.open("wb") as out:
            result = subprocess.run(
                ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
                 "dependency:copy-dependencies", f"-DoutputDirectory={partial}",
                 "-DincludeScope=runtime"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        if result.returncode != 0 or not any(partial.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise AssemblyError(
                f"Maven could not fetch the Kafka {KAFKA_VERSION} jars (exit {result.returncode}); "
                f"check network access to the Maven repository. Last lines of {log}:\n"
                f"{_tail(log) or '(nothing)'}"
            )
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        partial.rename(self.lib_dir)
        self._lib_marker.touch()

    def _format(self, java: str) -> None:
        cluster_id = _new_cluster_id()
        command = [*self._java_command(java), "kafka.tools.StorageTool", "format",
                   "-t", cluster_id, "-c", str(self.server_properties)]  # fmt: skip
        # The SCRAM password goes through an @file (one argument per line), never on a
        # command line where `ps` would show it; the file is removed right after.
        args_file = self.home / "format.args"
        if self.scram_user and self.scram_password:
            scram = f"SCRAM-SHA-512=[name={self.scram_user},password={self.scram_password}]"
            self._write_private(args_file, f"--add-scram\n{scram}\n")
            command.append(f"@{args_file}")
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
            )
        finally:
            args_file.unlink(missing_ok=True)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            if self.scram_password:
                output = output.replace(self.scram_password, "***")
            raise FormatError(
                f"formatting the Kafka storage in {self.data_dir} failed (exit {result.returncode}):\n"
                f"{output[-2000:]}\nIf that folder holds an old or broken broker, remove it and retry."
            )

    def _start(self, java: str) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Kafka's own start script gives the broker 1 GiB. With 512 MiB the log cleaner's
        # 128 MiB dedupe buffer and the metadata of the tests' topics kept the old generation
        # near G1's marking threshold: a concurrent cycle every ~5 s and a young collection
        # every ~3 s while the benchmark ran (jstat).
        command = [*self._java_command(java, "-Xms1g", "-Xmx1g", "-XX:+ExitOnOutOfMemoryError"),
                   "kafka.Kafka", str(self.server_properties)]  # fmt: skip
        with self.out_file.open("wb") as out:
            # A new session, so Ctrl-C in the terminal that ran `up` does not reach the broker.
            proc = subprocess.Popen(
                command, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                proc = _children.pop(pid, None)
                code = f" (exit {proc.returncode})" if proc is not None else ""
                out = _tail(self.out_file)
                raise BrokerStartError(
                    f"the Kafka broker exited during startup{code}. Last lines of {self.log_file}:\n"
                    f"{_tail(self.log_file) or '(nothing)'}\n"
                    + (f"Last lines of {self.out_file}:\n{out}\n" if out else "")
                    + "Fix the cause above, then run `distill kafka up` again."
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"the Kafka broker (pid {pid}) did not answer on {self.bootstrap} within "
                    f"{timeout:g} s; it is left running. Look at {self.log_file}, then retry "
                    "`distill kafka up` with a longer --timeout or stop it with `distill kafka down`."
                )
            if self._answers(min(3.0, max(remaining, 0.5))):
                return
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))

    # -- helpers ----------------------------------------------------------------------

    def _answers(self, timeout: float) -> bool:
        """True if the broker serves a metadata request within ``timeout`` seconds."""
        return _run_sync(lambda: _probe(self.bootstrap, timeout))

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in args and os.fsencode(self.server_properties) in args and _alive(pid)

    def _running_pid(self) -> int | None:
        pid = self._read_pid()
        return pid if pid is not None and self._is_our_broker(pid) else None

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.2)
        return not _alive(pid)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Serialises up/down on one home, e.g. two terminals or parallel test sessions.
        with (self.home / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _java_command(self, java: str, *jvm_options: str) -> list[str]:
        return [java, *jvm_options, "-Djava.awt.headless=true", "-cp", f"{self.lib_dir}/*",
                f"-Dlog4j2.configurationFile={self.log4j_properties}"]  # fmt: skip

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode is ignored when the file already exists
        with os.fdopen(fd, "w") as handle:
            handle.write(text)


def _alive(pid: int) -> bool:
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited already


def _new_cluster_id() -> str:
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # would be read as an option by the storage tool
            return cluster_id


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _probe(bootstrap: str, timeout: float) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="distill-kafka-probe", request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (KafkaError, OSError, asyncio.TimeoutError):
        return False
    finally:
        await admin.close()


def _run_sync(make_coro: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
    # aiokafka logs every refused connection at ERROR; while polling a booting broker
    # those are expected, so keep them off the user's terminal.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(make_coro())
        # Called from async code: asyncio.run cannot nest, so use a private loop in a thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(make_coro())).result()
    finally:
        logger.setLevel(level)
