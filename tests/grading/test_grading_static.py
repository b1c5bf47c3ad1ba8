"""Reading the learner's source for forbidden calls, outside the learner's kernel."""

from __future__ import annotations

import pytest

from mlcraft.classroom.grading.static import LearnerSource, forbidden_key, parse_cell

LSE = ("torch.logsumexp", "torch.softmax", "torch.nn.functional.softmax")


def _uses(source: str, entry: str = "f", forbidden: tuple[str, ...] = LSE) -> list[str]:
    return LearnerSource([("answer", source)]).forbidden_uses([entry], forbidden)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ndef f(x):\n    return torch.logsumexp(x, -1)\n",
        "def f(x):\n    return x.logsumexp(-1)\n",
        "from torch import logsumexp as lse\ndef f(x):\n    return lse(x, -1)\n",
        "def f(x):\n    from torch import logsumexp\n    return logsumexp(x, -1)\n",
        "import torch.nn.functional as F\ndef f(x):\n    return F.softmax(x, -1)\n",
        "import torch\nsm = torch.softmax\ndef f(x):\n    return sm(x, -1)\n",
        "import torch\ndef f(x):\n    return getattr(torch, 'logsumexp')(x, -1)\n",
        "import torch\ndef helper(x):\n    return torch.special.logsumexp(x, -1)\ndef f(x):\n    return helper(x) * 1\n",
        "import torch\nclass Impl:\n    def go(self, x):\n        return torch.logsumexp(x, -1)\ndef f(x):\n    return Impl().go(x)\n",
    ],
    ids=[
        "attr",
        "method",
        "alias",
        "local-import",
        "functional",
        "assigned-alias",
        "getattr-literal",
        "helper",
        "class",
    ],
)
def test_forbidden_calls_are_found_however_spelled(source: str) -> None:
    assert _uses(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ndef f(x):\n    return getattr(torch, 'log' + 'sumexp')(x, -1)\n",
        "def f(x):\n    return eval('x.logsumexp(-1)')\n",
        "import importlib\ndef f(x):\n    return importlib.import_module('torch').logsumexp(x, -1)\n",
        "def f(x):\n    return __import__('torch').logsumexp(x, -1)\n",
        "def f(x):\n    g = f.__code__\n    return x\n",
        "import sys\ndef f(x):\n    return sys.modules['torch'].logsumexp(x, -1)\n",
        "def f(x):\n    return globals()['y']\n",
        "from torch import *\ndef f(x):\n    return x\n",
    ],
    ids=["computed-getattr", "eval", "importlib", "dunder-import", "code", "sys-modules", "globals", "star"],
)
def test_constructs_that_hide_calls_are_reported(source: str) -> None:
    found = _uses(source)
    assert found and any("hides what is called" in f for f in found), found


@pytest.mark.parametrize(
    "source",
    [
        "def f(x):\n    m = x.amax(-1, keepdim=True)\n    return (m + (x - m).exp().sum(-1, keepdim=True).log()).squeeze(-1)\n",
        # the learner's own softmax, called from its logsumexp, is allowed
        "def softmax(x):\n    e = (x - x.amax(-1, keepdim=True)).exp()\n    return e / e.sum(-1, keepdim=True)\n"
        "def f(x):\n    return softmax(x)\n",
        "import torch\ndef f(x):\n    return getattr(x, 'shape')\n",
        # unreachable code that uses the library is not the function under test
        "import torch\ndef scratch(x):\n    return torch.logsumexp(x, -1)\ndef f(x):\n    return x.exp().sum(-1).log()\n",
        # methods that share a name with a builtin are not the builtin
        "import torch\ndef f(model, x):\n    model.eval()\n    return torch.compile(model)(x)\n",
    ],
    ids=["manual", "own-softmax", "getattr-other", "unreachable", "eval-method"],
)
def test_honest_code_passes(source: str) -> None:
    assert _uses(source) == []


def test_forbidden_method_of_a_class_is_keyed_on_the_class() -> None:
    assert forbidden_key("torch.nn.MultiheadAttention.forward") == "MultiheadAttention"
    assert forbidden_key("torch.nn.functional.softmax") == "softmax"
    source = "import torch\nclass MHA(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.m = torch.nn.MultiheadAttention(4, 2)\n"
    assert _uses(source, "MHA", ("torch.nn.MultiheadAttention.forward",))
    honest = "import torch\nclass MHA(torch.nn.Module):\n    def forward(self, x):\n        return self.proj(x)\n"
    assert _uses(honest, "MHA", ("torch.nn.MultiheadAttention.forward",)) == []


def test_the_last_definition_counts_and_later_cells_see_earlier_imports() -> None:
    source = LearnerSource(
        [
            ("a", "from mlcraft.utils import seed_everything\n"),
            ("b", "def seed_all(s):\n    pass\n"),
            ("c", "def seed_all(s):\n    seed_everything(s)\n"),
        ]
    )
    found = source.forbidden_uses(["seed_all"], ("mlcraft.utils.seed_everything",))
    assert found == ["uses mlcraft.utils.seed_everything (imported as seed_everything) (cell 'c', line 2)"]
    honest = LearnerSource([*source.cells[:2], ("c", "def seed_all(s):\n    return None\n")])
    assert honest.forbidden_uses(["seed_all"], ("mlcraft.utils.seed_everything",)) == []


def test_ipython_syntax_is_understood_and_unreadable_definitions_fail() -> None:
    assert parse_cell("%timeit 1 + 1\nx = 1\n") is not None
    assert parse_cell("def broken(:\n") is None
    found = LearnerSource([("bad", "def f(:\n")]).forbidden_uses(["f"], LSE)
    assert found and "cannot read" in found[0], "what the grader cannot read, it cannot clear"
    made_by_exec = LearnerSource([("a", "exec('def f(x):\\n    return x.logsumexp(-1)')\n")])
    assert made_by_exec.forbidden_uses(["f"], LSE)


@pytest.mark.parametrize(
    "source",
    [
        # a later cell rebinds the honest-looking answer to a helper that calls the library
        "import torch\ndef _lse(x):\n    return torch.logsumexp(x, -1)\ndef f(x):\n    return x\nf = _lse\n",
        # a top-level lambda run on a worker thread started before any check
        "import concurrent.futures, torch\n_POOL = concurrent.futures.ThreadPoolExecutor(1)\n"
        "_LSE = lambda x: torch.logsumexp(x, -1)\ndef f(x):\n    return _POOL.submit(_LSE, x).result()\n",
        # the answer under a cell magic, which makes it a string
        "%%capture\nimport torch\ndef f(x):\n    return torch.logsumexp(x, -1)\n",
        # PyTorch's private path to the same kernel, kept in a dict
        "import torch\n_OPS = {'lse': torch.ops.aten.logsumexp.default}\ndef f(x):\n    return _OPS['lse'](x, [-1], False)\n",
        "from torch import ops\ndef f(x):\n    return ops.aten.logsumexp.default(x, [-1], False)\n",
        # the kernel's IPython reached from the function under test
        "def f(x):\n    return get_ipython().user_ns['torch'].logsumexp(x, -1)\n",
        "import builtins, torch\ndef f(x):\n    return builtins.getattr(torch, 'l' + 'ogsumexp')(x, -1)\n",
        # the answer is the library function itself
        "import torch\ndef f(x):\n    return x\nf = torch.logsumexp\n",
    ],
    ids=["rebound", "lambda-thread", "cell-magic", "aten-dict", "ops-import", "get-ipython", "builtins", "is-library"],
)
def test_escapes_found_by_an_outside_tester_are_closed(source: str) -> None:
    assert _uses(source), source


def test_two_targets_of_the_same_name_are_told_apart() -> None:
    forbidden = ("torchvision.ops.nms", "mlcraft.ops.nms")
    for source, named in (
        ("from torchvision.ops import nms as _tv\ndef nms(b, s, t):\n    return _tv(b, s, t)\n", "torchvision.ops.nms"),
        ("import mlcraft.ops as ev\ndef nms(b, s, t):\n    return ev.nms(b, s, t)\n", "mlcraft.ops.nms"),
    ):
        found = LearnerSource([("nms-answer", source)]).forbidden_uses(["nms"], forbidden)
        assert len(found) == 1 and f"uses {named} " in found[0], found
