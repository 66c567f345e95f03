"""The advice a command given as one string gets: it must be advice that works."""

from __future__ import annotations

import shlex

import pytest

from procexec import ProcessExecutor
from procexec._validate import check_argv


def test_a_command_line_is_told_to_split_it_with_shlex_or_use_a_shell() -> None:
    with pytest.raises(TypeError) as caught:
        check_argv("ls -l", shell=False)
    message = str(caught.value)
    assert "shlex.split('ls -l')" in message
    assert "['ls', '-l']" in message
    assert "shell=True" in message
    assert "['ls -l']" not in message  # the advice that led to FileNotFoundError: 'ls -l'


def test_the_advice_works() -> None:
    """Following each half of the advice runs the command (its output is the test)."""
    with ProcessExecutor(1) as ex:
        split = ex.run(shlex.split("echo a  b"), capture_output=True).result()
        shell = ex.run("echo a  b", shell=True, capture_output=True).result()
    assert split.stdout == shell.stdout == b"a b\n"


def test_one_word_is_told_to_make_a_list_of_it() -> None:
    with pytest.raises(TypeError, match=r"pass \['ls'\], or shell=True"):
        check_argv("ls", shell=False)


def test_bytes_are_split_into_bytes() -> None:
    with pytest.raises(TypeError, match=r"not bytes: pass \[b'ls', b'-l'\], or shell=True"):
        check_argv(b"ls -l", shell=False)


@pytest.mark.parametrize("command", ["ls *.log | wc -l", "echo $HOME", "make && make install"])
def test_shell_syntax_is_told_to_use_a_shell_only(command: str) -> None:
    """Split, these would pass ``|`` or ``$HOME`` to the program as they are."""
    with pytest.raises(TypeError) as caught:
        check_argv(command, shell=False)
    message = str(caught.value)
    assert "it has shell syntax: pass shell=True" in message
    assert "shlex" not in message


def test_unbalanced_quotes_are_told_to_use_a_shell_or_a_list() -> None:
    with pytest.raises(TypeError, match=r"pass shell=True .*, or a list of its arguments"):
        check_argv("echo 'a", shell=False)


def test_a_long_command_is_not_repeated_in_the_advice() -> None:
    command = "convert " + " ".join(f"image{i}.png" for i in range(50))
    with pytest.raises(TypeError) as caught:
        check_argv(command, shell=False)
    message = str(caught.value)
    assert "shlex.split(command)" in message
    assert "shell=True" in message
    assert len(message) < 200


@pytest.mark.parametrize("method", ["submit", "run"])
def test_submit_and_run_give_the_advice(method: str) -> None:
    advice = r"shlex.split\('ls -l'\), which is \['ls', '-l'\]"
    with ProcessExecutor(1) as ex, pytest.raises(TypeError, match=advice):
        getattr(ex, method)("ls -l")


def test_a_shell_command_line_is_kept() -> None:
    assert check_argv("ls -l", shell=True) == "ls -l"
