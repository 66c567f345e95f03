"""Reaching a scheduler by its address, quickly either way.

Dask's own connect retries a refused connection until its timeout (30 s by default), and in
the versions tested waits without limit for a listener that never completes the handshake.
So before a ``Client`` is made, one plain TCP connection asks: a refusal fails at once; no
connection, or no first word from the scheduler (it speaks first on ``tcp://``) within
``connect_timeout``, fails then. The probe is then closed; the scheduler logs that a
connection closed before its handshake (at INFO).
"""

from __future__ import annotations

import math
import socket
import time

from distributed import Client
from distributed.comm.addressing import parse_address, parse_host_port

#: How long ``DaskExecutor(address)`` waits for the scheduler to answer, in seconds: more
#: than three TCP retries of a lost SYN (1, 3 and 7 s after the first).
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Schemes that run over one TCP connection, and whether the scheduler speaks first on it
#: (on ``tls`` and ``ws`` the client does: only the connection is checked).
_OVER_TCP = {"tcp": True, "tls": False, "ws": False, "wss": False}


class SchedulerUnreachableError(OSError):
    """No Dask scheduler could be reached at an address (``DaskExecutor(address)``).

    Attributes:
        address: the address tried.
        reason: why, e.g. ``"connection refused (...)"`` or ``"no answer within 10 s"``.
        timeout: the ``connect_timeout`` that ran out, or None when it failed otherwise.
    """

    def __init__(self, address: str, reason: str, timeout: float | None = None) -> None:
        hint = "" if timeout is None else " (connect_timeout)"
        super().__init__(f"cannot reach the Dask scheduler at {address}: {reason}{hint}")
        self.address = address
        self.reason = reason
        self.timeout = timeout


def check_connect_timeout(value: object) -> float:
    """``connect_timeout``: a positive, finite number of seconds, or None for the default;
    else TypeError/ValueError."""
    if value is None:
        return DEFAULT_CONNECT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"connect_timeout must be a number of seconds or None, not {type(value).__name__}"
        )
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"connect_timeout must be a positive number of seconds, got {value}")
    return float(value)


def connect(address: str, timeout: float) -> Client:
    """A ``Client`` of the scheduler at ``address``; SchedulerUnreachableError at once if
    the connection is refused, after ``timeout`` seconds if there is no answer."""
    probe(address, timeout)
    try:
        return Client(address, timeout=timeout)  # type: ignore[no-untyped-call]
    except OSError as error:  # it stopped answering since the probe, or refuses the handshake
        raise SchedulerUnreachableError(address, str(error)) from error


def probe(address: str, timeout: float) -> None:
    """Raise SchedulerUnreachableError unless the scheduler at ``address`` accepts a TCP
    connection and, on ``tcp://``, speaks within ``timeout`` seconds. Other transports
    (``inproc``, ``ucx``) are left to Dask."""
    scheme, location = parse_address(address)
    speaks_first = _OVER_TCP.get(scheme)
    if speaks_first is None:
        return
    host, port = parse_host_port(location)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if not speaks_first:
                return
            connection.settimeout(max(deadline - time.monotonic(), 0.001))
            said = connection.recv(1, socket.MSG_PEEK)
    except ConnectionRefusedError as error:
        reason = "connection refused (is the scheduler running, on that port?)"
        raise SchedulerUnreachableError(address, reason) from error
    except TimeoutError as error:
        reason = f"no answer within {timeout:g} s"
        raise SchedulerUnreachableError(address, reason, timeout) from error
    except OSError as error:  # the name does not resolve, no route to the host...
        raise SchedulerUnreachableError(address, error.strerror or str(error)) from error
    if not said:
        reason = "it closed the connection without a word (is it a Dask scheduler?)"
        raise SchedulerUnreachableError(address, reason)
