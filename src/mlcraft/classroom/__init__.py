"""Classroom tooling: the ``mlcraft`` command line, exercise release and grading, and the helpers
that the exercises' hidden tests import (:mod:`mlcraft.classroom.testing`).

This subpackage sits beside the machine-learning layers, never under them: it may import
``mlcraft.utils`` or ``mlcraft.config``, and no ML module imports it (checked by
``tests/test_layers.py``).
"""
