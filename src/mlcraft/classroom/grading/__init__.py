"""Classroom tooling: releasing exercises, checking a learner's notebook, grading a class."""

import sys

# jsonschema (imported by nbformat) compiles the grammar of the optional rfc3987_syntax package
# when it is installed: one to two seconds in every grading process, for an IRI string format
# that notebook validation never uses. Marking it absent makes jsonschema skip that format.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
