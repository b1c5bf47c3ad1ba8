"""Classroom tooling: releasing exercises, checking a learner's notebook, grading a class."""
