"""Reading model answers: every drift repaired when unambiguous, or an invalid turn with
its reason; never an exception. Inputs are written the way Qwen3-VL answers."""

from __future__ import annotations

from MedSAMAgentLib.agent.parsing import parse_action

CLEAN_BOX = '<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [120, 340, 410, 620]}}\n</tool_call>'


def test_clean_box():
    action = parse_action(CLEAN_BOX)
    assert action.kind == "box" and action.box == (120, 340, 410, 620) and action.repairs == []


def test_clean_point_and_stop():
    point = parse_action('<tool_call>\n{"name": "add_point", "arguments": {"point_2d": [345, 167], "point_type": "negative"}}\n</tool_call>')
    assert point.kind == "point" and point.point == (345, 167) and point.positive is False and point.repairs == []
    stop = parse_action('<tool_call>\n{"name": "stop_action", "arguments": {}}\n</tool_call>')
    assert stop.kind == "stop" and stop.valid


def test_malformed_json_is_invalid():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [1, 2, 3 4]]}}\n</tool_call>')
    assert action.kind == "invalid" and "not valid JSON" in action.error


def test_unquoted_keys_are_quoted():
    action = parse_action('<tool_call>\n{name: "add_point", arguments: {point_2d: [500, 430], point_type: "positive"}}\n</tool_call>')
    assert action.kind == "point" and action.point == (500, 430) and action.positive
    assert "unquoted keys quoted" in action.repairs


def test_key_missing_its_opening_quote():
    action = parse_action('<tool_call>\n{"name": "add_point", "arguments": {"point_2d": [500, 430], point_type": "positive"}}\n</tool_call>')
    assert action.kind == "point" and "unquoted keys quoted" in action.repairs


def test_identical_repeated_calls_are_one():
    action = parse_action(CLEAN_BOX + "\n" + CLEAN_BOX)
    assert action.kind == "box" and "2 identical tool calls read as one" in action.repairs


def test_different_calls_are_ambiguous():
    stop = '<tool_call>\n{"name": "stop_action", "arguments": {}}\n</tool_call>'
    action = parse_action(CLEAN_BOX + "\n" + stop)
    assert action.kind == "invalid" and "2 different tool calls" in action.error


def test_unknown_tool():
    action = parse_action('<tool_call>\n{"name": "add_polygon", "arguments": {"points": [[1, 2]]}}\n</tool_call>')
    assert action.kind == "invalid" and "unknown tool 'add_polygon'" in action.error


def test_legacy_point_tools_are_understood():
    action = parse_action('<tool_call>\n{"name": "add_negative_point", "arguments": {"x": 100, "y": 200}}\n</tool_call>')
    assert action.kind == "point" and action.point == (100, 200) and action.positive is False
    assert "legacy tool add_negative_point read as add_point" in action.repairs


def test_coordinates_slightly_past_the_grid_are_clipped():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [-3, 10, 1000, 1004]}}\n</tool_call>')
    assert action.kind == "box" and action.box == (0, 10, 999, 999) and "bbox_2d clipped to 0-999" in action.repairs


def test_coordinates_far_off_the_grid_are_invalid():
    action = parse_action('<tool_call>\n{"name": "add_point", "arguments": {"point_2d": [1500, 20], "point_type": "positive"}}\n</tool_call>')
    assert action.kind == "invalid" and "off the 0-999 grid" in action.error


def test_box_given_max_first_is_reordered():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [410, 620, 120, 340]}}\n</tool_call>')
    assert action.kind == "box" and action.box == (120, 340, 410, 620)
    assert "box corners swapped into min-max order" in action.repairs


def test_box_without_area_is_invalid():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [120, 340, 120, 620]}}\n</tool_call>')
    assert action.kind == "invalid" and "has no area" in action.error


def test_text_around_the_call_is_ignored():
    action = parse_action("I will draw a box around the right kidney.\n" + CLEAN_BOX + "\nDone.")
    assert action.kind == "box" and "text around the tool call ignored" in action.repairs


def test_missing_closing_tag():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [120, 340, 410, 620]}}')
    assert action.kind == "box" and "missing </tool_call>" in action.repairs


def test_cut_off_answer_gets_its_braces_closed():
    action = parse_action('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [120, 340, 410, 620]')
    assert action.kind == "box" and "missing closing brace added" in action.repairs


def test_call_without_tags():
    action = parse_action('{"name": "stop_action", "arguments": {}}')
    assert action.kind == "stop" and "tool call without <tool_call> tags" in action.repairs


def test_floats_and_strings_become_integers():
    action = parse_action('<tool_call>\n{"name": "add_point", "arguments": {"point_2d": ["345", 167.6], "point_type": "positive"}}\n</tool_call>')
    assert action.point == (345, 168)
    assert "point_2d number given as a string" in action.repairs and "point_2d rounded to integers" in action.repairs


def test_single_quotes_and_trailing_commas():
    action = parse_action("<tool_call>\n{'name': 'add_bbox', 'arguments': {'bbox_2d': [1, 2, 30, 40],},}\n</tool_call>")
    assert action.kind == "box" and action.box == (1, 2, 30, 40)
    assert "single quotes read as double quotes" in action.repairs and "trailing comma removed" in action.repairs


def test_arguments_as_a_json_string():
    action = parse_action('<tool_call>\n{"name": "add_point", "arguments": "{\\"point_2d\\": [5, 6], \\"point_type\\": \\"positive\\"}"}\n</tool_call>')
    assert action.kind == "point" and "arguments given as a JSON string" in action.repairs


def test_bad_point_type_and_wrong_arity():
    assert "point_type must be positive or negative" in parse_action(
        '<tool_call>\n{"name": "add_point", "arguments": {"point_2d": [5, 6], "point_type": "maybe"}}\n</tool_call>'
    ).error
    assert "must be a list of 4 numbers" in parse_action(
        '<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": [5, 6, 7]}}\n</tool_call>'
    ).error


def test_no_call_at_all_and_garbage():
    for text in ("", "The kidney is on the left.", "\x00\xff<tool_call>", None):
        action = parse_action(text)
        assert action.kind == "invalid" and action.error
