"""Reaching a Dask scheduler by its address: a refused connection fails at once, a scheduler
that does not answer fails after ``connect_timeout`` (the library's and the command line's),
and a real scheduler is still reached. Everything listens on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("distributed", reason="procexec[dask] is not installed")

import dask
from distributed import LocalCluster

from procexec.dask import DaskExecutor, SchedulerUnreachableError
from tests._helpers import run_cli

#: Port 1 (tcpmux) on the loopback: nothing listens there, so the kernel refuses at once.
REFUSED = "tcp://127.0.0.1:1"
#: Far more than these tests may take: a wait this long fails them by the per-test timeout.
FOREVER = 3600


@pytest.fixture(autouse=True)
def _dask_waits_long() -> Iterator[None]:
    """Dask's own connect timeout (30 s by default) set to an hour, so that a test that
    passes in seconds shows procexec's check, not Dask's timeout, at work."""
    with dask.config.set({"distributed.comm.timeouts.connect": f"{FOREVER}s"}):
        yield


@pytest.fixture
def silent() -> Iterator[str]:
    """The address of a socket that accepts connections (the kernel completes them) and
    never says a word, as a scheduler host whose process hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def dropping() -> Iterator[str]:
    """The address of a socket whose accept queue is full: the kernel drops the SYNs of new
    connections, as a firewall or a host that is down does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued: list[socket.socket] = []
        try:
            while True:  # fill the queue: until a connection gets no answer
                client = socket.socket()
                client.settimeout(0.5)
                try:
                    client.connect(("127.0.0.1", port))
                except TimeoutError:
                    client.close()
                    break
                queued.append(client)
                assert len(queued) < 64, "the accept queue never filled"
            yield f"tcp://127.0.0.1:{port}"
        finally:
            for client in queued:
                client.close()


def test_a_refused_connection_fails_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachableError) as caught:
        DaskExecutor(REFUSED, connect_timeout=FOREVER)
    assert time.monotonic() - start < FOREVER / 10
    assert str(caught.value) == (
        f"cannot reach the Dask scheduler at {REFUSED}: connection refused "
        "(is the scheduler running, on that port?)"
    )
    assert caught.value.address == REFUSED
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize("address", ["silent", "dropping"])
def test_a_scheduler_that_does_not_answer_fails_after_the_connect_timeout(
    address: str, request: pytest.FixtureRequest
) -> None:
    """1 s asked, an hour Dask's own: failing within 30 s is the asked timeout at work."""
    where = request.getfixturevalue(address)
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachableError, match=r"no answer within 1 s \(connect_timeout"):
        DaskExecutor(where, connect_timeout=1)
    took = time.monotonic() - start
    assert 1 <= took < 30


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "10", True])
def test_a_bad_connect_timeout_is_refused_at_the_call(value: object) -> None:
    with pytest.raises((TypeError, ValueError), match="connect_timeout"):
        DaskExecutor(REFUSED, connect_timeout=value)  # type: ignore[arg-type]


def test_a_name_that_does_not_resolve_says_so() -> None:
    with pytest.raises(SchedulerUnreachableError, match="cannot reach the Dask scheduler at"):
        DaskExecutor("tcp://no-such-host.invalid:8786", connect_timeout=FOREVER)


def test_a_scheduler_that_answers_is_reached_by_its_address() -> None:
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        resources={"procexec-slots": 1},
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        with DaskExecutor(address, connect_timeout=60) as ex:
            assert ex.submit(["sh", "-c", "exit 3"]).result(timeout=60) == 3


def test_the_command_line_fails_at_once_on_a_refused_connection() -> None:
    start = time.monotonic()
    result = run_cli("--dask", REFUSED, "--dask-connect-timeout", "1h", "echo", ":::", "a")
    assert time.monotonic() - start < FOREVER / 10
    assert result.returncode == 255
    assert result.stderr == (
        f"procexec: cannot reach the Dask scheduler at {REFUSED}: connection refused "
        "(is the scheduler running, on that port?)\n"
    )


def test_the_command_line_says_when_the_scheduler_does_not_answer(silent: str) -> None:
    result = run_cli("--dask", silent, "--dask-connect-timeout", "1", "echo", ":::", "a")
    assert result.returncode == 255
    assert result.stderr == (
        f"procexec: cannot reach the Dask scheduler at {silent}: no answer within 1 s "
        "(--dask-connect-timeout)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dask-connect-timeout", "5"], "--dask-connect-timeout needs --dask ADDRESS"),
        (["--dask", REFUSED, "--dask-connect-timeout", "0"], "--dask-connect-timeout"),
        (["--dask", REFUSED, "--dask-connect-timeout", "soon"], "--dask-connect-timeout"),
    ],
)
def test_the_command_line_refuses_a_bad_connect_timeout(args: list[str], message: str) -> None:
    result = run_cli(*args, "echo", ":::", "a")
    assert result.returncode == 255
    assert message in result.stderr and "Traceback" not in result.stderr
