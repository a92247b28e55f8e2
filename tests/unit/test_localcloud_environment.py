"""Function environments overlaid on the process: restored without deleting, and cleaned up at the end."""

from __future__ import annotations

import os

import pytest

from mlloop.localcloud.environment import drop_added_variables, overlay_environ


def test_an_overlay_restores_what_was_there_and_added_variables_go_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLLOOP_TEST_KEPT", "before")
    monkeypatch.delenv("MLLOOP_TEST_ADDED", raising=False)
    with overlay_environ({"MLLOOP_TEST_KEPT": "inside", "MLLOOP_TEST_ADDED": "inside"}):
        assert os.environ["MLLOOP_TEST_KEPT"] == os.environ["MLLOOP_TEST_ADDED"] == "inside"
    assert os.environ["MLLOOP_TEST_KEPT"] == "before"
    # Kept while the cloud runs: another thread may be iterating os.environ.
    assert os.environ["MLLOOP_TEST_ADDED"] == "inside"
    drop_added_variables()
    assert "MLLOOP_TEST_ADDED" not in os.environ
    assert os.environ["MLLOOP_TEST_KEPT"] == "before"
