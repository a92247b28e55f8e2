"""A handler's prints are captured for its invocation only: other threads keep printing where they did."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from mlloop.localcloud.stdout import ThreadRoutedStdout, captured_stdout, release_stdout


def test_only_the_invoking_threads_prints_are_captured(capsys: pytest.CaptureFixture[str]) -> None:
    handler_output = io.StringIO()
    inside, release = threading.Event(), threading.Event()

    def handler() -> None:
        with captured_stdout(handler_output):
            print("from the handler")
            inside.set()
            release.wait(5)
            print("still the handler")

    worker = threading.Thread(target=handler)
    worker.start()
    assert inside.wait(5)
    print("from the main thread, mid-invocation")
    release.set()
    worker.join(5)
    print("from the main thread, afterwards")

    assert handler_output.getvalue() == "from the handler\nstill the handler\n"
    assert capsys.readouterr().out == "from the main thread, mid-invocation\nfrom the main thread, afterwards\n"


def test_a_nested_capture_restores_the_outer_one() -> None:
    outer, inner = io.StringIO(), io.StringIO()
    with captured_stdout(outer):
        print("outer")
        with captured_stdout(inner):
            print("inner")
        print("outer again")
    assert (outer.getvalue(), inner.getvalue()) == ("outer\nouter again\n", "inner\n")


def test_releasing_puts_back_the_stream_that_was_there() -> None:
    before = sys.stdout
    with captured_stdout(io.StringIO()):
        assert isinstance(sys.stdout, ThreadRoutedStdout)
    release_stdout()
    assert sys.stdout is before
