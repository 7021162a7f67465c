"""The judge: cases run on plain values outside the student's process, with `ref`."""
from pathlib import Path

import numpy as np

from conftest import toy_master
from edsgrade.grading.judge import judge_all, judge_question
from edsgrade.authoring.master import parse_master
from edsgrade.grading.sandbox.plaindata import Unavailable, encode_names

MASTER = parse_master(toy_master(), Path("toy.ipynb"))
Q1 = MASTER.question("q1")


def test_right_answer_gets_every_point_whatever_its_type():
    for value in (3.0, np.float32(3.0), 3):
        assert judge_question(Q1, {"mean_value": value}, {"mean_value": 3.0}).points == 3


def test_wrong_answer_keeps_public_points_only():
    result = judge_question(Q1, {"mean_value": 2.0}, {"mean_value": 3.0})
    assert result.points == 1
    hidden = [c for c in result.cases if c.hidden]
    assert not hidden[0].passed and "hidden mean check failed" in hidden[0].message


def test_missing_value_fails_with_a_clear_message():
    result = judge_question(Q1, {"mean_value": Unavailable("mean_value", "missing")}, {"mean_value": 3.0})
    assert result.points == 0
    assert all("`mean_value` is not defined" in c.message for c in result.cases)


def test_nothing_captured_means_no_points():
    result = judge_question(Q1, None, {"mean_value": 3.0})
    assert result.points == 0 and "stopped before" in result.cases[0].message


def test_judge_all_decodes_captures_and_references():
    captures = {"q1": encode_names({"mean_value": 4.0}, ["mean_value"]),
                "q2": encode_names({"squares": [1.0, 4.0, 16.0, 81.0]}, ["squares"])}
    refs = {"q1": encode_names({"mean_value": 4.0}, ["mean_value"]),
            "q2": encode_names({"squares": np.array([1.0, 4.0, 16.0, 81.0])}, ["squares"])}
    assert [r.points for r in judge_all(MASTER.questions, captures, refs)] == [3, 2]


def test_a_case_cannot_change_the_value_another_case_sees():
    values = {"squares": [1.0, 4.0, 16.0, 81.0]}
    judge_question(MASTER.question("q2"), values, {"squares": [1.0, 4.0, 16.0, 81.0]})
    assert values["squares"] == [1.0, 4.0, 16.0, 81.0]
