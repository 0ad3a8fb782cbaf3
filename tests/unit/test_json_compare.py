"""The comparison the container tests use for results and Evidently JSON computed in two environments."""

from __future__ import annotations

from support.json_compare import json_differences


def test_float_noise_is_equal_and_everything_else_is_compared_exactly() -> None:
    assert json_differences({"a": [1, 2.0, {"x": 0.1 + 0.2}]}, {"a": [1, 2.0, {"x": 0.3}]}) == []
    assert json_differences({"p": 1e-300}, {"p": 0.0}) == []
    assert json_differences(float("nan"), float("nan")) == []


def test_each_real_difference_is_named_by_its_path() -> None:
    assert json_differences({"a": 1}, {"a": 1.5}) == ["$.a: 1 != 1.5"]
    assert json_differences({"p": 0.0500001}, {"p": 0.05}) == ["$.p: 0.0500001 != 0.05"]
    assert json_differences({"drifted": True}, {"drifted": 1}) == ["$.drifted: True != 1"]
    assert json_differences({"c": ["a", "b"]}, {"c": ["a"]}) == ["$.c: 2 items != 1 items"]
    assert json_differences({"a": 1, "b": 2}, {"a": 1}) == ["$.b: only in first"]
    assert json_differences({"s": "ks"}, {"s": "chisquare"}) == ["$.s: 'ks' != 'chisquare'"]
