"""The Server-Sent Events' wire format (studio/tasks/events.py): fields, one-line JSON data, numbered changes."""

from __future__ import annotations

import json

import pytest

from studio.tasks.events import Change, format_event, heartbeat, last_event_id, parse_change


def test_an_event_has_its_fields_then_one_line_of_json_data_and_a_blank_line():
    text = format_event({"stage": "line one\nline two", "progress": 40}, event="progress", event_id=7, retry_ms=2000)
    assert text.endswith("\n\n")
    lines = text[:-2].split("\n")
    assert lines[:3] == ["retry: 2000", "id: 7", "event: progress"]
    assert len(lines) == 4 and lines[3].startswith("data: ")  # a newline in a stage cannot end the event early
    assert json.loads(lines[3].removeprefix("data: ")) == {"stage": "line one\nline two", "progress": 40}


def test_a_retry_alone_and_a_heartbeat_are_events_clients_dispatch_nothing_for():
    assert format_event(retry_ms=5000) == "retry: 5000\n\n"
    assert heartbeat().startswith(":") and heartbeat().endswith("\n\n")


def test_an_announced_change_is_read_back_with_its_number():
    change = parse_change(b'12 {"status": "PROCESSING", "progress": 40, "stage": "encoding"}')
    assert change == Change(12, "PROCESSING", 40, "encoding")
    assert not change.finished
    assert parse_change('13 {"status": "FAILED", "progress": 40, "stage": null}').finished


@pytest.mark.parametrize("message", [b"finished", b"12", b'x {"status": "PROCESSING", "progress": 1}',
                                     b'3 {"status": "DONE", "progress": 1}', b'3 {"progress": 1}', b"3 [1]"])
def test_a_message_that_is_not_a_change_is_ignored(message):
    assert parse_change(message) is None


@pytest.mark.parametrize("header, number", [("41", 41), (" 7 ", 7), (None, None), ("", None), ("-1", None),
                                            ("1.5", None), ("٣", None), ("9" * 19, None), ("abc", None)])
def test_last_event_id_is_one_of_our_numbers_or_nothing(header, number):
    assert last_event_id(header) == number
