"""Connections to libvirt: one long-lived connection per URI, bounded calls, error mapping.

- The default libvirt event loop is registered once per process (before the first connection
  is opened, as libvirt requires) and run in one daemon thread: keepalive, close callbacks
  and domain events all need it.
- `SharedConnection` holds the process's single ``virConnect`` for a URI, opened lazily with
  keepalive, reopened transparently when it is found dead (closed by the peer, keepalive
  timeout, closed under our feet). A daemon that was reachable and is not any more (libvirtd
  restarted, killed, upgraded) is waited for, up to `RECONNECT_WINDOW_SECONDS` after it was
  first found unreachable, before calls fail with `TransientError`; past that window (a host
  that is really gone) and for a URI that never answered, calls fail at once, so heartbeats
  of dead hosts stay quick. Drivers share
  it through `acquire` / `release`.
- A dead connection is closed on a thread of its own, never under the connection's lock nor
  on the event loop's thread: libvirt runs the close callback on the event loop holding its
  own lock, and closing from there or while that callback waits for our lock deadlocks (seen:
  a worker hung for ever when libvirtd was killed).
- `Caller` runs each libvirt call on a small thread pool and waits at most `timeout` seconds
  for it. Caveat: a call that overruns is *abandoned*, not killed (libvirt offers no way to
  interrupt a call in flight): its thread keeps waiting for the host and its effect may still
  happen later. That is why every driver operation is idempotent and a timeout is reported
  as `TransientError` (retry later), never as success or as a permanent failure. A host that
  stopped answering is eventually cut off by keepalive, which fails the abandoned calls.
- `translate` maps ``libvirtError`` to the driver's errors.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt

from hypervisor.base import DriverError, NotFound, TransientError, Unsupported

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Keepalive: a probe every 5 s; the connection is declared dead after 3 unanswered ones.
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3
#: How long a call waits for a daemon it was connected to to answer again (a libvirtd restart
#: takes a second or two), retrying to connect every RECONNECT_DELAY_SECONDS, doubling to 2 s.
RECONNECT_WINDOW_SECONDS = 10.0
RECONNECT_DELAY_SECONDS = 0.2

_NOT_FOUND_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_NETWORK,
    }
)
#: The connection itself is gone: reopen it and try once more.
_DEAD_CONNECTION_CODES = frozenset(
    {libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC}
)
_TRANSIENT_CODES = _DEAD_CONNECTION_CODES | {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
}
_OPEN_TRANSIENT_CODES = frozenset(
    {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_OPERATION_TIMEOUT}
)
_UNSUPPORTED_CODES = frozenset({libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED})
_CLOSED_WORDS = (
    "client socket is closed", "connection closed", "end of file", "broken pipe",
    # libvirtd killed in the middle of a call (seen in tests/e2e/test_faults_libvirtd.py:
    # "Cannot recv data: Connection reset by peer", VIR_ERR_SYSTEM_ERROR)
    "connection reset by peer",
)  # fmt: skip


def is_dead_connection(exc: libvirt.libvirtError) -> bool:
    """True when `exc` says the connection is unusable (not that the call failed)."""
    code = exc.get_error_code()
    if code in _DEAD_CONNECTION_CODES:
        return True
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR):
        message = (exc.get_error_message() or str(exc)).lower()
        return any(word in message for word in _CLOSED_WORDS)
    return False


def translate(exc: libvirt.libvirtError, what: str = "") -> DriverError:
    """The driver error for a libvirt error: NotFound, TransientError, Unsupported or
    DriverError. The libvirt code is kept in the message (and the original as __cause__)."""
    code = exc.get_error_code()
    message = f"{what}: {exc}" if what else str(exc)
    message = f"{message} (libvirt error {code})"
    if code in _NOT_FOUND_CODES:
        return NotFound(message)
    if code in _TRANSIENT_CODES or is_dead_connection(exc):
        return TransientError(message)
    if code in _UNSUPPORTED_CODES:
        return Unsupported(message)
    return DriverError(message)


def error_code(exc: BaseException) -> int | None:
    """The libvirt error code of `exc`, or None when it is not a libvirt error."""
    return exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else None


# --- The event loop -------------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None


def _ignore_error(_ctx: object, _err: object) -> None:
    """libvirt prints every error on stderr by default, even the ones we handle; errors reach
    us as exceptions anyway."""


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # the loop must outlive any one callback's failure
            log.exception("libvirt event loop iteration failed")


_loop_inherited = False  # forked from a process that ran the loop: none can run here


def ensure_event_loop() -> bool:
    """Register libvirt's default event loop implementation and run it in a daemon thread
    (once per process); whether a loop runs in this process. Must happen before connections
    are opened for keepalive and events to work on them."""
    global _loop_thread
    with _loop_lock:
        if _loop_thread is not None:
            return True
        if _loop_inherited:
            return False
        libvirt.registerErrorHandler(_ignore_error, None)
        libvirt.virEventRegisterDefaultImpl()
        _loop_thread = threading.Thread(
            target=_run_event_loop, name="libvirt-event-loop", daemon=True
        )
        _loop_thread.start()
        return True


def require_event_loop(what: str) -> None:
    """DriverError unless an event loop runs in this process (see `_forget_after_fork`)."""
    if not ensure_event_loop():
        raise DriverError(
            f"{what}: no libvirt event loop in this process (libvirt was used before the "
            "process forked); create the driver after forking"
        )


# --- Bounded calls --------------------------------------------------------------------------


class Caller:
    """Runs callables on a small pool of threads (one pool per URI, shared by its drivers),
    waiting at most `timeout` seconds for each (see the module docstring for what happens to
    a call that overruns). Calls stuck on a host that stopped answering occupy the pool's
    threads until keepalive fails them; meanwhile further calls to that host time out too."""

    def __init__(self, *, workers: int = 8, name: str = "libvirt-call") -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name
        )

    def call(self, what: str, limit: float, fn: Callable[..., T], *args: Any) -> T:
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError as exc:  # shut down
            raise DriverError(f"{what}: the driver is closed") from exc
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            future.cancel()  # only helps if it has not started yet
            raise TransientError(
                f"{what}: no answer from the hypervisor within {limit:g} s "
                "(the call was abandoned; it may still complete on the host)"
            ) from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- One connection per URI ------------------------------------------------------------------


class SharedConnection:
    """The process's connection to one libvirt URI, reopened when found dead."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.refs = 0
        self.caller = Caller()
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None
        self._unreachable_since: float | None = None  # monotonic; None while reachable
        self.opened = 0  # how many times a connection was opened (tests watch reconnects)

    def get(self) -> libvirt.virConnect:
        """The live connection, (re)opened if needed; once connected before, a daemon that
        does not answer is waited for until RECONNECT_WINDOW_SECONDS after it was first
        found unreachable (the lock is not held while waiting). Blocking: call it through a
        Caller."""
        delay = RECONNECT_DELAY_SECONDS
        while True:
            with self._lock:
                conn = self._conn
                if conn is not None and self._alive(conn):
                    return conn
                if conn is not None:
                    log.warning("libvirt connection to %s is dead; reconnecting", self.uri)
                    self._conn = None
                    self._retire(conn)
                try:
                    self._conn = self._open()
                except TransientError:
                    if self.opened == 0:  # never reached: say so at once
                        raise
                    now = time.monotonic()
                    if self._unreachable_since is None:
                        self._unreachable_since = now
                    pause = min(delay, self._unreachable_since + RECONNECT_WINDOW_SECONDS - now)
                    if pause <= 0:
                        raise
                else:
                    self._unreachable_since = None
                    return self._conn
            log.info("libvirt at %s does not answer; retrying in %.1f s", self.uri, pause)
            time.sleep(pause)
            delay = min(delay * 2, 2.0)

    def invalidate(self, conn: libvirt.virConnect) -> None:
        """Forget `conn` if it is still the current one (it was found dead)."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
                self._retire(conn)

    def close(self) -> None:
        self.caller.shutdown()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            self._close_quietly(conn)

    def current(self) -> libvirt.virConnect | None:
        """The connection as it is now, without opening one (tests use it)."""
        return self._conn

    def _open(self) -> libvirt.virConnect:
        if not ensure_event_loop():
            raise DriverError(
                f"cannot connect to {self.uri}: libvirt was used in this process before it "
                "forked, and libvirt is not fork-safe (its locks may be held by threads that "
                "do not exist here); open hypervisor connections after forking"
            )
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            message = f"cannot connect to {self.uri}: {exc} (libvirt error {exc.get_error_code()})"
            if exc.get_error_code() in _OPEN_TRANSIENT_CODES:  # refused, reset, no daemon yet
                raise TransientError(message) from exc
            raise DriverError(message) from exc  # a bad URI, no such driver: retrying won't help
        self.opened += 1
        try:
            conn.setKeepAlive(KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in _UNSUPPORTED_CODES:  # local drivers (test://)
                raise translate(exc, f"keepalive on {self.uri}") from exc
        try:
            conn.registerCloseCallback(self._on_close, None)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in _UNSUPPORTED_CODES:
                raise translate(exc, f"close callback on {self.uri}") from exc
        return conn

    def _on_close(self, conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        # From the event loop thread: the peer closed it, keepalive expired, or an I/O error.
        log.warning("libvirt connection to %s closed (reason %s)", self.uri, reason)
        with self._lock:
            if self._conn is conn:
                self._conn = None
                # Not here: this thread must not drop the last reference either (the
                # binding's __del__ would close the connection inside its own callback).
                self._retire(conn)

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _retire(self, conn: libvirt.virConnect) -> None:
        """Close a dead connection on a thread of its own (see the module docstring); the
        thread holds the last reference, so nothing else closes it on the wrong thread."""
        threading.Thread(
            target=self._close_quietly, args=(conn,), name="libvirt-close", daemon=True
        ).start()

    @staticmethod
    def _close_quietly(conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


_registry_lock = threading.Lock()
_registry: dict[str, SharedConnection] = {}


_inherited: list[SharedConnection] = []


def _forget_after_fork() -> None:
    """In a forked child (Celery's prefork pool) the parent's connections share their sockets
    with the parent: the child opens its own. The parent's are kept referenced, never closed
    (closing one would close the parent's session with the daemon). If the parent had used
    libvirt (its event loop runs from the first connection), the child refuses every
    connection with a DriverError: libvirt's internal locks may have been held by one of the
    parent's threads at the fork, and a child using them can hang for ever (seen in CI: a
    call in the child never returned). Hence: create drivers in the worker processes, not
    before they fork (connections open lazily, so importing this module is fine)."""
    global _loop_thread, _loop_lock, _registry_lock, _loop_inherited
    if _loop_thread is not None:
        _loop_inherited = True
    _loop_thread = None
    _loop_lock = threading.Lock()
    _registry_lock = threading.Lock()
    _inherited.extend(_registry.values())
    _registry.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def acquire(uri: str) -> SharedConnection:
    """The shared connection for `uri`, counting one more user (opened on first use)."""
    with _registry_lock:
        shared = _registry.get(uri)
        if shared is None:
            shared = _registry[uri] = SharedConnection(uri)
        shared.refs += 1
        return shared


def release(shared: SharedConnection) -> None:
    """One user fewer; the last one closes the connection. (libvirt's test:///default driver
    resets its state when its last connection closes.)"""
    with _registry_lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if _registry.get(shared.uri) is shared:
            del _registry[shared.uri]
    shared.close()
