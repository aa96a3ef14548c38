"""The one-line summary of a task's options in its history row and on its page: only what differs and applies."""

from __future__ import annotations

from studio.models import Task
from studio.tasks.display import options_summary


def _task(operation: str, options: dict) -> Task:
    return Task(operation=operation, model="nanodet", options=options)


def test_an_option_that_does_not_apply_is_left_out():
    # fill_color is stored normalised (#ffffffff) even when fill is none: it would read "fill colour #ffffffff".
    summary = options_summary(_task("smart_crop", {"aspect": "16:9", "fill": "none", "fill_color": "#ffffffff"}))
    assert "fill colour" not in summary
    assert "16:9" in summary


def test_an_option_that_applies_is_shown():
    summary = options_summary(_task("smart_crop", {"aspect": "16:9", "fill": "color", "fill_color": "#000000ff"}))
    assert "fill colour #000000ff" in summary


def test_a_not_requirement_holds_for_any_other_value():
    assert "blend" in options_summary(_task("stylize", {"blend_with": "ink-on-yellow", "blend": 30}))
    assert "blend 30" not in options_summary(_task("stylize", {"blend_with": "none", "blend": 30}))


def test_the_model_is_named_for_people():
    assert options_summary(_task("smart_crop", {})).startswith("NanoDet-g object detector")
