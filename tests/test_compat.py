"""The anchorscad-utils ProcessManager API, rebuilt on ProcessExecutor."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import procexec.compat
from procexec import default_max_jobs
from procexec.compat import (
    CANNOT_EXECUTE_STATUS,
    NOT_FOUND_STATUS,
    ProcessManager,
    ProcessManagerEntry,
)
from tests._helpers import Gate, py

pytestmark = pytest.mark.usefixtures("reaper_path")

SRC = Path(__file__).resolve().parents[1] / "src"


class RecordingEntry(ProcessManagerEntry):
    """Records each callback with the thread it ran on, in one shared log."""

    def __init__(self, name: str, log: list[tuple[str, str, int]]) -> None:
        # A plain subclass with its own arguments that never calls super().__init__().
        self.name = name
        self.log = log

    def started(self) -> None:
        self.log.append(("started", self.name, threading.get_ident()))

    def ended(self, status: int) -> None:
        self.log.append((f"ended {status}", self.name, threading.get_ident()))


def test_documented_example_counts_order_and_threads() -> None:
    log: list[tuple[str, str, int]] = []
    manager = ProcessManager(max_jobs=2)
    for i in range(5):
        manager.run_proc(
            RecordingEntry(str(i), log), ["echo", f"Process {i}"], stdout=subprocess.DEVNULL
        )
    assert manager.finished_status() == (5, 0)
    assert {thread for _, _, thread in log} == {threading.get_ident()}
    starts = [name for event, name, _ in log if event == "started"]
    assert starts == ["0", "1", "2", "3", "4"]
    running = 0
    for event, _, _ in log:
        running += 1 if event == "started" else -1
        assert 0 <= running <= 2
    assert sorted(name for event, name, _ in log if event == "ended 0") == starts
    assert manager.current_entries == [] and len(manager.finished_entries) == 5


def test_ended_runs_in_the_callers_thread_from_every_method(gate: Gate) -> None:
    log: list[tuple[str, str, int]] = []
    manager = ProcessManager(max_jobs=3)
    manager.run_proc(RecordingEntry("gated", log), ["cat"], stdin=gate.read_fd)
    manager.run_proc(RecordingEntry("quick", log), py("pass"))
    assert manager.wait_for_completions(1) == 1  # the quick one ended, the gated one runs
    assert manager.count_procs() == 1
    gate.open()
    assert manager.finished_status() == (2, 0)
    assert {thread for _, _, thread in log} == {threading.get_ident()}


def test_max_jobs_changed_between_run_procs_applies_to_the_next(gate: Gate) -> None:
    log: list[tuple[str, str, int]] = []
    manager = ProcessManager(max_jobs=1)
    manager.run_proc(RecordingEntry("first", log), py("pass"))
    manager.max_jobs = 3  # a dataclass field, set between calls as the original allows
    for name in ("a", "b", "c"):  # with the old limit of 1, the second would never start
        manager.run_proc(RecordingEntry(name, log), ["cat"], stdin=gate.read_fd)
    assert all(entry.popen_obj is not None for entry in manager.current_entries)
    assert len(manager.current_entries) == 3
    gate.open()
    assert manager.finished_status() == (4, 0)


class Untouchable:
    """An entry the manager must not look at: reading its future fails the test."""

    @property
    def _procexec_future(self) -> None:
        raise AssertionError("count_procs() looked at the entries while none had ended")


def test_count_procs_looks_at_the_entries_only_after_a_process_ended(gate: Gate) -> None:
    # With hundreds of running entries, a scan on every run_proc() made starting them
    # quadratic; the manager now learns of each end from the future's done-callback.
    log: list[tuple[str, str, int]] = []
    manager = ProcessManager(max_jobs=4)
    manager.run_proc(RecordingEntry("gated", log), ["cat"], stdin=gate.read_fd)
    manager.current_entries.append(Untouchable())
    assert manager.count_procs() == 2
    assert manager.wait_for_completions(2) == 2
    manager.current_entries.pop()
    gate.open()
    assert manager.finished_status() == (1, 0)
    assert [event for event, _, _ in log] == ["started", "ended 0"]


@dataclass
class DataclassEntry(ProcessManagerEntry):
    filename: str = ""
    env: dict[str, str] = field(default_factory=dict)
    runner: Any = None
    statuses: list[int] = field(default_factory=list)

    def ended(self, status: int) -> None:
        self.statuses.append(status)


def test_dataclass_subclass_with_defaulted_fields(tmp_path: Path) -> None:
    manager = ProcessManager(max_jobs=2)
    entries = [DataclassEntry(filename=str(tmp_path / f"f{i}"), runner=manager) for i in range(3)]
    for entry in entries:
        manager.run_proc(
            entry,
            py(
                f"open({entry.filename!r}, 'w').write('x'); "
                f"raise SystemExit({len(entry.filename) % 2})"
            ),
        )
    manager.finished_status()
    assert all(Path(e.filename).read_text() == "x" for e in entries)
    assert [e.statuses for e in entries] == [[len(e.filename) % 2] for e in entries]
    assert all(isinstance(e.popen_obj, subprocess.Popen) for e in entries)


def test_megabytes_on_pipes_do_not_deadlock_and_communicate_returns_all() -> None:
    code = "import sys; sys.stdout.write('o' * 3_000_000); sys.stderr.write('e' * 2_000_000)"
    manager = ProcessManager(max_jobs=2)
    entries = [ProcessManagerEntry() for _ in range(3)]
    for entry in entries:
        manager.run_proc(entry, py(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert manager.finished_status() == (3, 0)
    for entry in entries:
        out, err = entry.communicate()
        assert out == b"o" * 3_000_000 and err == b"e" * 2_000_000


def test_text_mode_communicate() -> None:
    manager = ProcessManager(max_jobs=1)
    entry = ProcessManagerEntry()
    manager.run_proc(entry, py("print('hello')"), stdout=subprocess.PIPE, text=True)
    assert entry.communicate() == ("hello\n", None)
    assert ProcessManagerEntry().communicate() == (None, None)


def test_failures_and_unstartable_commands(tmp_path: Path) -> None:
    denied = tmp_path / "denied"
    denied.write_text("#!/bin/sh\n")
    manager = ProcessManager(max_jobs=2)
    failing, missing, no_exec, fine = (DataclassEntry() for _ in range(4))
    manager.run_proc(failing, py("raise SystemExit(4)"))
    manager.run_proc(missing, ["/no/such/program"])
    manager.run_proc(no_exec, [str(denied)])
    manager.run_proc(fine, py("pass"))
    assert manager.finished_status() == (1, 3)
    assert failing.statuses == [4]
    assert missing.statuses == [NOT_FOUND_STATUS] and isinstance(
        missing.start_error, FileNotFoundError
    )
    assert no_exec.statuses == [CANNOT_EXECUTE_STATUS] and isinstance(
        no_exec.start_error, PermissionError
    )
    assert missing.popen_obj is None and fine.start_error is None


class CommunicatingEntry(ProcessManagerEntry):
    """Calls communicate() in ended(), as anchorscad's entries do."""

    def ended(self, status: int) -> None:
        self.seen = (status, self.communicate())


@pytest.mark.parametrize(
    ("kwargs", "output"),
    [
        ({"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}, (b"", b"")),
        ({"stdout": subprocess.PIPE, "text": True}, ("", None)),
        ({"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "encoding": "utf-8"}, ("", None)),
        ({}, (None, None)),
    ],
)
def test_communicate_in_ended_of_an_unstartable_command(
    kwargs: dict[str, Any], output: tuple[Any, Any]
) -> None:
    """ended() gets 127 and communicate() there returns no output: nothing raises out of
    run_proc, and start_error holds the exception."""
    manager = ProcessManager(max_jobs=1)
    entry = CommunicatingEntry()
    manager.run_proc(entry, ["/no/such/program"], **kwargs)
    assert entry.seen == (NOT_FOUND_STATUS, output)
    assert isinstance(entry.start_error, FileNotFoundError)
    assert entry.communicate() == output
    assert manager.finished_status() == (0, 1)


def test_positional_popen_arguments_and_poll_time_accepted() -> None:
    manager = ProcessManager(max_jobs=1, poll_time=5.0)
    entry = ProcessManagerEntry()
    manager.run_proc(entry, py("raise SystemExit(2)"), -1)  # bufsize, positionally
    assert manager.finished_status() == (0, 1)
    assert entry.popen_obj is not None and entry.popen_obj.returncode == 2


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((["true"],), {"no_such_option": 1}),  # the usual call: argv, then keywords
        ((["true"],), {"timeout": 5}),  # run()'s own keyword, which Popen does not take
        ((["true"], -1), {"no_such_option": 1}),  # with a positional Popen argument too
        ((), {}),  # no command at all
    ],
)
def test_bad_popen_arguments_raise_before_anything_starts(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    log: list[tuple[str, str, int]] = []
    manager = ProcessManager(max_jobs=1)
    with pytest.raises(TypeError):
        manager.run_proc(RecordingEntry("bad", log), *args, **kwargs)
    assert log == [] and manager.current_entries == manager.finished_entries == []
    assert manager.finished_status() == (0, 0)


def test_defaults_and_bad_max_jobs() -> None:
    assert ProcessManager().max_jobs == default_max_jobs() == procexec.compat.DEFAULT_MAX_JOBS
    with pytest.raises(AttributeError):
        procexec.compat.NO_SUCH_NAME  # noqa: B018
    with pytest.raises(ValueError, match="max_jobs"):
        ProcessManager(max_jobs=0).run_proc(ProcessManagerEntry(), ["true"])


def test_max_jobs_none_means_the_default() -> None:
    manager = ProcessManager(max_jobs=None)  # as the executor takes it
    assert manager.max_jobs == default_max_jobs()
    manager.run_proc(ProcessManagerEntry(), ["true"])
    assert manager.finished_status() == (1, 0)


class FragileEntry(ProcessManagerEntry):
    """Its ``ended()`` raises when its name says so; every call is logged."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def ended(self, status: int) -> None:
        self.log.append(self.name)
        if self.name.startswith("raise"):
            raise ValueError(f"ended {self.name}")


def _within(call: Any, seconds: float = 30) -> Any:
    """``call()`` on another thread; its result or exception, failing if it hangs."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((call(), None))
        except Exception as error:  # handed to the test's thread
            outcome.append((None, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"{call} still runs after {seconds}s"
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


def test_an_ended_that_raises_propagates_and_the_manager_stays_usable(gate: Gate) -> None:
    """The original manager lets the exception out of the call that ran ``ended()``; it used
    to hang every later ``finished_status()`` here, and the other entries never ended."""
    log: list[str] = []
    manager = ProcessManager(max_jobs=5)
    entries = [FragileEntry(name, log) for name in ["a", "raise-b", "c", "raise-d", "e"]]
    for entry in entries:
        manager.run_proc(entry, ["cat"], stdin=gate.read_fd)
    gate.open()
    for entry in entries:  # all have ended before the manager looks: one call sees them all
        entry.communicate()
    assert log == []
    with pytest.raises(ValueError, match="ended raise-"):
        _within(manager.finished_status)
    with pytest.raises(ValueError, match="ended raise-"):
        _within(manager.finished_status)
    assert _within(manager.finished_status) == (5, 0)
    assert sorted(log) == ["a", "c", "e", "raise-b", "raise-d"], "each ended() runs once"
    assert manager.current_entries == [] and len(manager.finished_entries) == 5
    manager.run_proc(FragileEntry("f", log), ["sh", "-c", "exit 1"])
    assert _within(manager.finished_status) == (5, 1)


def test_a_fresh_manager_is_a_plain_dataclass_that_copies() -> None:
    # As with the original: nothing holding a lock exists before the first run_proc().
    manager = ProcessManager(max_jobs=2)
    copied = copy.deepcopy(manager)
    assert copied == manager
    assert dataclasses.asdict(copied)["max_jobs"] == 2


def test_legacy_import_path_is_the_same_api() -> None:
    from anchorscad_lib.utils import process_manager  # type: ignore[import-untyped]

    assert process_manager.ProcessManager is ProcessManager
    assert process_manager.ProcessManagerEntry is ProcessManagerEntry
    assert default_max_jobs() == process_manager.DEFAULT_MAX_JOBS
    with pytest.raises(AttributeError):
        process_manager.NO_SUCH_NAME  # noqa: B018
    # Namespace packages, so anchorscad-utils' other modules can live beside ours.
    assert not (SRC / "anchorscad_lib" / "__init__.py").exists()
    assert not (SRC / "anchorscad_lib" / "utils" / "__init__.py").exists()
