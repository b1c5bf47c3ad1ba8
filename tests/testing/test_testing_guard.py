"""`mlcraft.testing.guard`: a submission that patches the comparison helpers cannot make a wrong
answer pass once the grader restores them.

Each test patches in a fresh interpreter (a subprocess), since the patches are process-wide.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import mlcraft.testing.guard as guard\nguard.install()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_patched_library_functions_are_restored() -> None:
    proc = run(
        """
        import numpy, torch
        torch.allclose = lambda *a, **k: True
        torch.testing.assert_close = lambda *a, **k: None
        numpy.allclose = lambda *a, **k: True
        numpy.testing.assert_allclose = lambda *a, **k: None
        torch.Tensor.__bool__ = lambda self: True
        torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
        assert torch.allclose(torch.zeros(2), torch.ones(2))  # the patch works before restore
        changed = guard.restore()
        for name in ("torch.allclose", "torch.testing.assert_close", "numpy.allclose",
                     "numpy.testing.assert_allclose", "torch.Tensor.__bool__", "torch.Tensor.__eq__"):
            assert name in changed, (name, changed)
        assert not torch.allclose(torch.zeros(2), torch.ones(2))
        assert not numpy.allclose(0.0, 1.0)
        assert not bool(torch.tensor(0))
        assert not (torch.zeros(2) == torch.ones(2)).any()
        try:
            numpy.testing.assert_allclose(0.0, 1.0)
        except AssertionError:
            pass
        else:
            raise SystemExit("numpy.testing.assert_allclose still patched")
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_patched_helper_in_module_and_namespace_is_restored() -> None:
    proc = run(
        """
        import sys, torch
        import mlcraft.testing
        from mlcraft.testing import assert_close
        namespace = {"assert_close": lambda *a, **k: None, "torch": object(), "student_value": 3}
        mlcraft.testing.assert_close = lambda *a, **k: None
        sys.modules["mlcraft.testing.tolerances"].assert_close = lambda *a, **k: None
        guard.restore(namespace)
        assert namespace["student_value"] == 3  # the student's own names are left alone
        assert namespace["torch"] is torch
        for check in (namespace["assert_close"], mlcraft.testing.assert_close):
            try:
                check(torch.zeros(2), torch.ones(2))
            except AssertionError:
                continue
            raise SystemExit("assert_close still patched")
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_restore_with_nothing_patched_changes_nothing() -> None:
    proc = run("print(guard.restore({'x': 1}))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["sys.modules['torch']", "sys.modules['numpy']"])
def test_a_replaced_module_object_is_put_back(module: str) -> None:
    proc = run(
        f"""
        import sys, types
        import numpy, torch
        original = {module}
        {module} = types.ModuleType("fake")
        guard.restore()
        assert {module} is original
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
