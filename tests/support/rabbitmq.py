"""A private RabbitMQ node for the tests: never the machine's own (the system one on 5672 is
not used nor touched). Its own node name, ports (AMQP, Erlang distribution, and an epmd of
its own, so even the system's port mapper is left alone), Erlang cookie (HOME is its
directory), data, logs and configuration (scripts/rabbitmq.conf) in a temporary directory;
it listens on 127.0.0.1 only, with a user and password of its own.

Starting a node takes about 5 s (measured here: 4.7 s to the first AMQP connection), so the
tests start one per session and stop it and start it again on the same data when a test
needs the broker down.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kombu

from tests.support.fault_lab import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "scripts" / "rabbitmq.conf"
# The scripts themselves, not /usr/sbin's wrappers, which switch to the `rabbitmq` user.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
START_TIMEOUT = 60


class PrivateRabbitMQ:
    """One RabbitMQ node in `directory` (a fresh temporary one by default): `start()`,
    `stop()` (the node only; its data stays, so `start()` again finds its durable queues
    and their messages) and `cleanup()` (everything, the directory too)."""

    USER = "andromede"

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="andr-rmq-"))
        self.token = secrets.token_hex(4)
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.url = f"amqp://{self.USER}:{self.password}@127.0.0.1:{self.port}//"
        self.process: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def env(self) -> dict[str, str]:
        d = self.directory
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(d),  # its own .erlang.cookie
            "RABBITMQ_NODENAME": f"andromede-test-{self.token}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(CONFIG),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_DEFAULT_USER": self.USER,
            "RABBITMQ_DEFAULT_PASS": self.password,
        }

    def ping(self) -> bool:
        """A client can log in and open a channel."""
        try:
            with kombu.Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=0, timeout=1)
                connection.default_channel  # noqa: B018 - opens a channel
            return True
        except Exception:
            return False

    def start(self) -> None:
        assert self.process is None
        if self.epmd is None:
            # Our own port mapper, in the foreground so that it is ours to stop; the node
            # would otherwise start a daemon that outlives the test.
            self.epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                cwd=self.directory, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its process group: the script, beam and helpers
            )  # fmt: skip
        process = self.process

        def answers() -> bool:
            assert process.poll() is None, self.log.read_text()[-3000:]
            return self.ping()

        wait_for(answers, START_TIMEOUT, "the private RabbitMQ to answer", every=0.1)

    def stop(self) -> None:
        """The node stops (SIGTERM to its process group, SIGKILL after a grace period)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            self.process.wait(10)
        wait_for(lambda: not _group_alive(self.process), 10, "the RabbitMQ node to exit")
        self.process = None
        assert not self.ping()

    def queues(self) -> dict[str, dict[str, str]]:
        """What `rabbitmqctl list_queues` shows an operator: per queue, its type and whether
        it is durable. (Not its message count: quorum queues report theirs every 5 s.)"""
        fields = ["name", "type", "durable"]
        listed = self.ctl("list_queues", "--quiet", "--no-table-headers", *fields)
        rows = [line.split("\t") for line in listed.splitlines() if line.strip()]
        return {row[0]: dict(zip(fields[1:], row[1:], strict=True)) for row in rows}

    def ctl(self, *args: str) -> str:
        """The output of `rabbitmqctl ARGS` run against this node."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "--node", self.env()["RABBITMQ_NODENAME"], *args],
            env=self.env(), capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip

    def ready_messages(self, name: str) -> int:
        """How many messages queue `name` holds ready for a consumer, as the queue itself
        answers a client (a passive declaration)."""
        with kombu.Connection(self.url, connect_timeout=5) as connection:
            channel: Any = connection.default_channel  # amqp's Channel, typed as kombu's
            _, count, _ = channel.queue_declare(name, passive=True)
        return int(count)

    def delete_queues(self, names: list[str]) -> None:
        """Delete these queues (with their messages), if they exist."""
        with kombu.Connection(self.url, connect_timeout=5) as connection:
            for name in names:
                channel: Any = connection.channel()  # a failed delete closes its channel
                try:
                    channel.queue_delete(name)
                finally:
                    channel.close()

    def cleanup(self) -> None:
        self.stop()
        stop_process(self.epmd)
        self.epmd = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _group_alive(process: subprocess.Popen[bytes] | None) -> bool:
    if process is None:
        return False
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
