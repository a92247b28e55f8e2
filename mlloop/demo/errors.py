"""The demo's one error: a phase that did not end the way the story says it must."""

from __future__ import annotations


class StoryError(RuntimeError):
    """A phase did not end the way the story says it must; the message says what was seen instead."""
