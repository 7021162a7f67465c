"""Grading: prepare a submission, execute it, judge its values, record the result."""
