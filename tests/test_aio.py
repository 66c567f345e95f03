"""asyncio: awaiting jobs, completions, ``async with``, and cancellation that stops the
process, under asyncio.run, uvloop and anyio's asyncio backend."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import uvloop

from procexec import ProcessExecutor, ProcessFuture
from procexec.aio import completed, wait_job
from tests._helpers import assert_dies, is_running, py, read_pid_lines, spawner, wait_for_file

pytestmark = pytest.mark.usefixtures("reaper_path")

T = TypeVar("T")
Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


def _asyncio(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def _uvloop(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return uvloop.run(wrapper())


def _anyio(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(main, backend="asyncio")


@pytest.fixture(params=["asyncio", "uvloop", "anyio"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine function to its end under one event loop implementation."""
    return {"asyncio": _asyncio, "uvloop": _uvloop, "anyio": _anyio}[request.param]


@pytest.fixture
def report_pipe() -> Iterator[tuple[int, int]]:
    """A pipe the spawner children write their pids to."""
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


async def started_pids(read_fd: int, count: int = 1) -> list[tuple[int, int]]:
    """Wait, off the event loop, for ``count`` spawners to report (child, grandchild)."""
    return await asyncio.to_thread(read_pid_lines, read_fd, count)


async def cancel_after_start(task: asyncio.Task[Any], read_fd: int) -> list[tuple[int, int]]:
    pids = await started_pids(read_fd)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return pids


def test_await_gives_the_result_typed_as_run(run: Runner) -> None:
    async def main() -> tuple[int, str, int]:
        with ProcessExecutor(2) as ex:
            status = await ex.submit(py("raise SystemExit(4)"))
            result = await ex.run(py("print('hi')"), capture_output=True, text=True)
            both = await asyncio.gather(ex.submit(py("pass")), ex.submit(py("pass")))
        return status, result.stdout, sum(both)

    assert run(main) == (4, "hi\n", 0)


def test_errors_are_raised_by_await(run: Runner) -> None:
    async def main() -> None:
        with ProcessExecutor(1) as ex:
            with pytest.raises(FileNotFoundError):
                await ex.submit(["/no/such/program"])
            with pytest.raises(Exception, match="returned non-zero exit status 3"):
                await ex.run(py("raise SystemExit(3)"), check=True)

    run(main)


def test_cancelling_the_awaiting_task_stops_the_job_and_its_group(
    run: Runner, report_pipe: tuple[int, int]
) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[Any, list[tuple[int, int]]]:
        with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 5)]) as ex:
            future = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
            task = asyncio.ensure_future(wait_job(future))
            pids = await cancel_after_start(task, read_fd)
            assert future.done()  # reaped before the cancellation propagated
            return future.result(), pids

    status, pids = run(main)
    assert status == -signal.SIGTERM
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_a_timeout_around_await_stops_the_job(run: Runner, report_pipe: tuple[int, int]) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[Any, list[tuple[int, int]]]:
        with ProcessExecutor(1) as ex:
            future = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
            pids = await started_pids(read_fd)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(wait_job(future), 0.05)
            return future.result(0), pids

    status, pids = run(main)
    assert status == -signal.SIGTERM
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_anyio_cancel_scope_stops_the_job(report_pipe: tuple[int, int]) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[Any, list[tuple[int, int]]]:
        with ProcessExecutor(1) as ex:
            future = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
            pids = await anyio.to_thread.run_sync(read_pid_lines, read_fd, 1)
            with anyio.move_on_after(0.05) as scope:
                await future
            assert scope.cancelled_caught
            return future.result(0), pids

    status, pids = anyio.run(main, backend="asyncio")
    assert status == -signal.SIGTERM
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_a_queued_job_whose_waiter_is_cancelled_never_starts(
    run: Runner, report_pipe: tuple[int, int]
) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[bool, list[tuple[int, int]]]:
        with ProcessExecutor(1, term_sequence=[(signal.SIGKILL, 0)]) as ex:
            blocker = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
            queued = ex.submit(py("raise SystemExit(9)"))
            task = asyncio.ensure_future(wait_job(queued))
            pids = await cancel_after_start(task, read_fd)
            blocker.kill()
            assert queued.pid is None
            return queued.cancelled(), pids

    cancelled, pids = run(main)
    assert cancelled
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_a_second_cancellation_kills_at_once(run: Runner, report_pipe: tuple[int, int]) -> None:
    """The job ignores SIGTERM and the grace period is 300 s: only SIGKILL ends it."""
    read_fd, write_fd = report_pipe
    stubborn = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "os.write(int(sys.argv[1]), f'{os.getpid()} {os.getpid()}\\n'.encode())\n"
        "time.sleep(300)\n"
    )

    async def main() -> Any:
        with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 300)]) as ex:
            future = ex.submit([*py(stubborn), str(write_fd)], pass_fds=(write_fd,))
            task = asyncio.ensure_future(wait_job(future))
            await started_pids(read_fd)
            task.cancel()
            await asyncio.sleep(0)  # the task takes the first cancellation: SIGTERM
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return future.result(0)

    assert run(main) == -signal.SIGKILL


#: A long job that writes its pid to argv[1] (whole, by a rename) and then sleeps.
SLEEPER = 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 300'


async def cancel_before_the_first_step(form: str, future: ProcessFuture[int]) -> None:
    """Cancel, in one of three ways, a task that runs ``future`` before the task's first
    step; return once the cancellation has propagated to this caller."""
    if form == "wait_for":
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(future, timeout=0)
    elif form == "ensure_future":
        task = asyncio.ensure_future(future)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        gathered = asyncio.gather(future)
        gathered.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gathered


@pytest.mark.parametrize("form", ["wait_for", "ensure_future", "gather"])
def test_a_cancellation_before_the_first_step_stops_a_running_job(
    run: Runner, form: str, tmp_path: Path
) -> None:
    """The task is cancelled before it ever ran: the job is stopped and reaped before the
    cancellation reaches the caller (it ran on, unseen, for 300 s)."""
    pid_file = tmp_path / "pid"

    async def main() -> tuple[bool, int]:
        with ProcessExecutor(1) as ex:
            future = ex.submit(["sh", "-c", SLEEPER, "job", str(pid_file)])
            await asyncio.to_thread(wait_for_file, pid_file)
            await cancel_before_the_first_step(form, future)
            return future.done(), future.result(0)

    assert run(main) == (True, -signal.SIGTERM)
    assert not is_running(int(pid_file.read_text()))


@pytest.mark.parametrize("form", ["wait_for", "ensure_future", "gather"])
def test_a_cancellation_before_the_first_step_cancels_a_queued_job(
    run: Runner, form: str, tmp_path: Path
) -> None:
    blocker_pid, queued_pid = tmp_path / "blocker", tmp_path / "queued"

    async def main() -> None:
        with ProcessExecutor(1, term_sequence=[(signal.SIGKILL, 0)]) as ex:
            blocker = ex.submit(["sh", "-c", SLEEPER, "job", str(blocker_pid)])
            queued = ex.submit(["sh", "-c", SLEEPER, "job", str(queued_pid)])
            await asyncio.to_thread(wait_for_file, blocker_pid)
            await cancel_before_the_first_step(form, queued)
            assert queued.cancelled()  # else leaving the block by this error stops both
            blocker.kill()

    run(main)
    assert not queued_pid.exists()


def test_a_future_run_as_a_task_by_several_tasks_and_awaited_too(run: Runner) -> None:
    """A job's future is a coroutine asyncio runs as a task; each task that runs it, and
    each ``await``, gets the result."""

    async def main() -> list[int]:
        with ProcessExecutor(1) as ex:
            future = ex.submit(["sh", "-c", "exit 3"])
            assert asyncio.iscoroutine(future)
            first, second = asyncio.ensure_future(future), asyncio.create_task(future)
            results = [await first, await second, await future, await future]
            assert not future._drivers  # each task's coroutine is dropped when it ends
            return results

    assert run(main) == [3, 3, 3, 3]
    with ProcessExecutor(1) as ex:
        assert asyncio.run(ex.submit(["sh", "-c", "exit 4"])) == 4


def test_an_error_thrown_in_before_the_first_step_is_raised_as_it_is() -> None:
    """Only a cancellation stops the job; any other error thrown into a future that has not
    started as a coroutine is raised at once, as by a native coroutine."""
    with ProcessExecutor(1) as ex:
        future = ex.submit(["true"])
        with pytest.raises(ValueError, match="thrown"):
            future.throw(ValueError("thrown"))
        with pytest.raises(KeyError):
            future.throw(KeyError)
        try:
            raise OSError("with its traceback")
        except OSError as error:
            with pytest.raises(OSError, match="with its traceback") as raised:
                future.throw(OSError, error, error.__traceback__)
        assert raised.value.__traceback__ is not None
        future.close()  # nothing to close: no task runs it
        assert future.result() == 0


def test_the_coroutine_protocol_by_hand() -> None:
    """A task may step a future itself: its own coroutine of it, which close() closes."""

    async def main() -> None:
        with ProcessExecutor(1) as ex:
            future = ex.submit(["true"])
            yielded = future.send(None)  # this task's wait_job, at its first await
            assert isinstance(yielded, asyncio.Future) and future._drivers
            future.close()
            assert not future._drivers
            assert await future == 0

    asyncio.run(main())


def test_completed_yields_in_completion_order(run: Runner, report_pipe: tuple[int, int]) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[list[int], bool, list[tuple[int, int]]]:
        with ProcessExecutor(3, term_sequence=[(signal.SIGKILL, 0)]) as ex:
            slow = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
            quick = [ex.submit(py(f"raise SystemExit({i})")) for i in (1, 2)]
            pids = await started_pids(read_fd)
            seen = []
            async for future in completed([slow, *quick]):
                seen.append(future.result())
                if len(seen) == 2:
                    slow_left_running = not slow.done()  # only watched, not owned
                    slow.kill()
            return seen[:2], slow_left_running, pids

    seen, left_running, pids = run(main)
    assert sorted(seen) == [1, 2] and left_running
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_async_with_waits_without_blocking_the_loop(run: Runner) -> None:
    async def main() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        async with ProcessExecutor(2) as ex:
            futures = [ex.submit(py("import time; time.sleep(0.2)")) for _ in range(2)]
        before = ticks
        ticking.cancel()
        assert all(f.done() for f in futures)
        return before, sum(f.result() for f in futures)

    ticks, statuses = run(main)
    assert statuses == 0 and ticks > 10  # the loop ran while the block waited


def test_async_with_left_by_an_error_stops_and_reaps(
    run: Runner, report_pipe: tuple[int, int]
) -> None:
    read_fd, write_fd = report_pipe

    async def main() -> tuple[Any, Any, list[tuple[int, int]]]:
        with pytest.raises(ValueError, match="boom"):
            async with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 5)]) as ex:
                running = ex.submit(spawner(write_fd), pass_fds=(write_fd,))
                queued = ex.submit(py("pass"))
                pids = await started_pids(read_fd)
                raise ValueError("boom")
        return running.result(0), queued.cancelled(), pids

    status, cancelled, pids = run(main)
    assert status == -signal.SIGTERM and cancelled
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)


def test_cancelling_the_wait_of_async_with_stops_and_reaps(report_pipe: tuple[int, int]) -> None:
    read_fd, write_fd = report_pipe
    futures = []

    async def block() -> None:
        async with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 5)]) as ex:
            futures.append(ex.submit(spawner(write_fd), pass_fds=(write_fd,)))

    async def main() -> list[tuple[int, int]]:
        task = asyncio.ensure_future(block())
        return await cancel_after_start(task, read_fd)

    pids = asyncio.run(main())
    assert futures[0].result(0) == -signal.SIGTERM
    for child, grandchild in pids:
        assert_dies(child)
        assert_dies(grandchild)
