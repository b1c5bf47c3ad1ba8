"""mlcraft: reference implementations and classroom tooling for the mlcraft course.

The lessons in ``course/`` build each idea by hand first; the code here is the
production-quality version they end on, and the version the exercise tests trust.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlcraft")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
