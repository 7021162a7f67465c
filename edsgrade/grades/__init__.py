"""Grades: final grades (weights, late penalties) and the exam's rubric, computed from the gradebook."""
