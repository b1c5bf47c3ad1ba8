"""The judge: test cells in the grader's process, the learner's code reached only through data.

The kernel side (:func:`mlcraft.classroom.grading.agent.serve`) answers here in-process through a link
that sends every request and reply through JSON, as the Jupyter channel does; the corpus
(``test_grading_corpus.py``) runs the same code against a real, sandboxed kernel.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlcraft.classroom.grading.agent import serve
from mlcraft.classroom.grading.judge import Judge, KernelGone, LearnerDataError, Remote, format_failure, free_globals
from mlcraft.classroom.grading.static import LearnerSource
from mlcraft.classroom.testing.forbidden import ForbiddenCallError

SETUP = "import torch\nfrom mlcraft.classroom.testing import DEVICE, assert_close, call_without, in_kernel\n"


class Link:
    """The kernel, in-process: the learner's namespace and the agent, behind JSON."""

    def __init__(self, namespace: dict[str, Any], drop_watch: bool = False) -> None:
        self.namespace = namespace
        self.drop_watch = drop_watch
        self.requests: list[dict[str, Any]] = []

    def request(self, content: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[Any]]:
        content = json.loads(json.dumps(content))
        self.requests.append(content)
        reply, out = serve(self.namespace, content, [bytes(b) for b in buffers])
        reply = json.loads(json.dumps(reply))
        if self.drop_watch:
            reply.pop("watch", None)
        return reply, out


def _judge(learner_code: str, **link_options: Any) -> tuple[Judge, Link]:
    namespace: dict[str, Any] = {}
    exec(SETUP + learner_code, namespace)
    link = Link(namespace, **link_options)
    judge = Judge(link, LearnerSource([("answer", learner_code)]))
    assert judge.run_setup_cell(SETUP, "imports") == ""
    return judge, link


def _run(judge: Judge, test: str) -> tuple[BaseException | None, str]:
    printed: list[str] = []
    err = judge.run_test_cell(test, "test-cell", lambda name, text: printed.append(text))
    return err, "".join(printed)


LEARNER = """
def double(x):
    return 2 * x

def clip_(x, hi):
    x.clamp_(max=hi)

def append_one(items):
    items.append(1)

def picky(x):
    if x < 0:
        raise ValueError(f"x must be >= 0, got {x}")
    return x

class Liar:
    def __eq__(self, other):
        return True

def liar():
    return Liar()

SCALE = 3.0
"""


def test_learner_functions_are_called_with_data_and_return_data() -> None:
    judge, _ = _judge(LEARNER)
    err, printed = _run(
        judge,
        "x = torch.arange(4.0)\nassert torch.equal(double(x), 2 * x)\nassert SCALE == 3.0\nprint('ok')\n",
    )
    assert err is None and printed == "ok\n"
    assert isinstance(judge.namespace["double"], Remote) and judge.namespace["SCALE"] == 3.0


def test_in_place_changes_to_arguments_come_back() -> None:
    judge, _ = _judge(LEARNER)
    err, _ = _run(
        judge,
        "x = torch.tensor([1.0, 5.0])\nclip_(x, 2.0)\nassert torch.equal(x, torch.tensor([1.0, 2.0]))\n"
        "items = [0]\nappend_one(items)\nassert items == [0, 1]\n",
    )
    assert err is None


def test_a_failing_test_fails_with_its_message_and_line() -> None:
    judge, _ = _judge(LEARNER)
    err, _ = _run(judge, "x = torch.ones(2)\nassert torch.equal(double(x), x), 'double should double'\n")
    assert isinstance(err, AssertionError) and "double should double" in str(err)
    ename, _, trace = format_failure(err, "test-cell")
    assert ename == "AssertionError" and any("<test-cell>" in line for line in trace)


def test_learner_exceptions_arrive_as_builtins_with_the_learners_traceback() -> None:
    judge, _ = _judge(LEARNER)
    err, _ = _run(
        judge,
        "try:\n    picky(-1)\nexcept ValueError as e:\n    assert 'got -1' in str(e)\nelse:\n    raise AssertionError\n",
    )
    assert err is None
    err, _ = _run(judge, "picky(-2)\n")
    assert type(err) is ValueError
    assert "in your code" in "".join(getattr(err, "__notes__", []))


def test_a_learner_error_names_the_input_that_caused_it() -> None:
    judge, _ = _judge(LEARNER + "\ndef fails(x, n, mode='a'):\n    raise RuntimeError('boom')\n")
    err, _ = _run(judge, "fails(torch.zeros(2, 3, dtype=torch.float16), [1, 2], mode='b')\n")
    assert type(err) is RuntimeError
    _, evalue, trace = format_failure(err, "test-cell")
    expected = "fails(tensor of shape [2, 3], torch.float16, on cpu, [1, 2], mode='b')"
    assert evalue.startswith("boom (") and expected in evalue, evalue
    assert any(expected in line for line in trace)
    err, _ = _run(judge, "picky(torch.tensor([-1.0]))\n")
    assert err is not None
    _, evalue, _ = format_failure(err, "test-cell")
    assert "picky(tensor([-1.0], dtype=torch.float32, device=cpu))" in evalue, evalue


def test_describe_summarises_inputs_without_dumping_them() -> None:
    import numpy as np
    import torch

    from mlcraft.classroom.grading.judge import describe

    assert describe(torch.zeros(0, 5)) == "tensor of shape [0, 5], torch.float32, on cpu"
    assert describe(torch.empty(3, device="meta")) == "tensor of shape [3], torch.float32, on meta"
    assert describe(np.zeros((2, 1), dtype=np.int64)) == "array of shape [2, 1], int64"
    assert describe(list(range(100))) == "list of 100"
    assert describe((1.5, None)) == "tuple([1.5, None])"
    assert describe("x" * 100).endswith("...") and len(describe("x" * 100)) == 60
    assert describe({"a": 1}) == "dict with keys 'a'"
    assert describe(object()) == "object"


def test_objects_are_not_data_so_a_lying_eq_cannot_pass() -> None:
    judge, _ = _judge(LEARNER)
    err, _ = _run(judge, "assert liar() == 42\n")
    assert isinstance(err, LearnerDataError) and "cannot be sent as data" in str(err)


def test_a_missing_answer_is_a_name_error() -> None:
    judge, _ = _judge("")
    err, _ = _run(judge, "assert seed_all(1) is None\n")
    assert isinstance(err, NameError)


DRIVER_TEST = """
_X = torch.arange(6.0).reshape(3, 2)

class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, x):
        return self.lin(x)


def _make(seed):
    torch.manual_seed(seed)
    return _Net()


@in_kernel
def _observe(seed):
    model = _make(seed)
    step(model, _X)
    return {k: v for k, v in model.state_dict().items()}


ref = _make(0)
with torch.no_grad():
    ref.lin.bias += 1.0
got = _observe(0)
assert set(got) == {"lin.weight", "lin.bias"}
for key, value in ref.state_dict().items():
    assert torch.equal(got[key], value), key
"""


def test_in_kernel_functions_run_beside_the_learners_code_with_their_helpers_and_constants() -> None:
    judge, link = _judge(
        "import torch\ndef step(model, x):\n    with torch.no_grad():\n        model.lin.bias += 1.0\n"
    )
    err, _ = _run(judge, DRIVER_TEST)
    assert err is None, err
    run = next(r for r in link.requests if r["op"] == "run")
    assert "class _Net" in run["source"] and "def _make" in run["source"], "helpers are shipped with the driver"
    assert "_X" in json.dumps(run["globals"]), "data constants are sent along"


def test_a_wrong_step_fails_the_driver_test() -> None:
    judge, _ = _judge("def step(model, x):\n    pass\n")
    err, _ = _run(judge, DRIVER_TEST)
    assert isinstance(err, AssertionError)


def test_call_without_reads_the_source_even_when_the_kernel_says_nothing() -> None:
    learner = "import torch\nfrom torch import softmax as sm\ndef probs(x):\n    return sm(x, -1)\n"
    judge, _ = _judge(learner)
    err, _ = _run(judge, "call_without(probs, torch.ones(3), forbidden=('torch.softmax',))\n")
    assert isinstance(err, ForbiddenCallError) and "imported as sm" in str(err)


def test_call_without_fails_when_the_dynamic_check_does_not_report_back() -> None:
    judge, _ = _judge("def add(a, b):\n    return a + b\n", drop_watch=True)
    err, _ = _run(judge, "call_without(add, 1, 2, forbidden=('torch.logsumexp',))\n")
    assert isinstance(err, ForbiddenCallError) and "did not report back" in str(err)


def test_call_without_passes_honest_code_and_returns_the_value() -> None:
    judge, _ = _judge("def add(a, b):\n    return a + b\n")
    err, _ = _run(judge, "assert call_without(add, 1, 2, forbidden=('torch.logsumexp',)) == 3\n")
    assert err is None


def test_a_gone_kernel_is_not_a_test_failure_but_an_event() -> None:
    class Dead:
        def request(self, content: dict[str, Any], buffers: list[bytes]) -> tuple[dict[str, Any], list[Any]]:
            raise KernelGone("crashed", "the kernel died")

    judge = Judge(Dead())
    judge.namespace["f"] = Remote(judge, "f")
    with pytest.raises(KernelGone):
        judge.run_test_cell("f(1)\n", "t", lambda name, text: None)


def test_free_globals() -> None:
    source = (
        "import math\nx = seed_all(1)\ndef f(y):\n    return y + helper(y) + x\n"
        "class C:\n    z = CONST\n[w for w in items]\n"
    )
    assert free_globals(source) == {"seed_all", "helper", "CONST", "items"}
    assert free_globals("def broken(:\n") == set()


def test_in_place_changes_of_shape_dtype_and_device_come_back_too() -> None:
    judge, _ = _judge("def grow(mask):\n    mask.unsqueeze_(0)\n\ndef widen(x):\n    x.data = x.data.double()\n")
    err, _ = _run(
        judge,
        "mask = torch.ones(2, 2)\ngrow(mask)\nassert mask.shape == (1, 2, 2), mask.shape\n"
        "x = torch.ones(3)\nwiden(x)\nassert x.dtype == torch.float64, x.dtype\n",
    )
    assert err is None, err


def test_test_helpers_can_be_pickled_in_the_kernel(tmp_path: Any) -> None:
    judge, _ = _judge("")
    err, _ = _run(
        judge,
        "import pickle\n\ndef _payload():\n    return 42\n\n"
        "class _Box:\n    def __reduce__(self):\n        return (_payload, ())\n\n"
        "@in_kernel\ndef _roundtrip():\n    return pickle.loads(pickle.dumps(_Box()))\n\n"
        "assert _roundtrip() == 42\n",
    )
    assert err is None, err


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # pandas 3 deprecates it; learners still write it
def test_in_place_changes_to_pandas_tables_come_back() -> None:
    """A learner's function that edits a DataFrame or Series argument in place (a new column, rows
    dropped, a sort with inplace=True, a value set) leaves the grader's object changed the same way,
    so a test's "must not modify its input" check sees it; an untouched table stays the same object."""
    learner = (
        "import pandas as pd\n"
        "def add_total(df):\n    df['total'] = df['a'] + df['b']\n    return len(df)\n"
        "def drop_first(df):\n    df.drop(index=df.index[0], inplace=True)\n"
        "def sort_in_place(df):\n    df.sort_values('a', inplace=True)\n"
        "def fill(s):\n    s.fillna(0.0, inplace=True)\n"
        "def nested(frames):\n    frames[0].loc[0, 'a'] = 99\n"
        "def reads(df):\n    return float(df['a'].sum())\n"
    )
    judge, _ = _judge(learner)
    test = (
        "import pandas as pd\n"
        "df = pd.DataFrame({'a': [3, 1, 2], 'b': [10, 20, 30]})\n"
        "assert add_total(df) == 3\n"
        "assert list(df.columns) == ['a', 'b', 'total'] and df['total'].tolist() == [13, 21, 32]\n"
        "drop_first(df)\n"
        "assert df.index.tolist() == [1, 2] and df['a'].tolist() == [1, 2]\n"
        "df2 = pd.DataFrame({'a': [3, 1, 2]})\n"
        "sort_in_place(df2)\n"
        "assert df2['a'].tolist() == [1, 2, 3] and df2.index.tolist() == [1, 2, 0]\n"
        "s = pd.Series([1.0, None, 3.0], name='x')\n"
        "fill(s)\n"
        "assert s.tolist() == [1.0, 0.0, 3.0] and s.name == 'x'\n"
        "frames = [pd.DataFrame({'a': [1, 2]})]\n"
        "inner = frames[0]\n"
        "nested(frames)\n"
        "assert inner['a'].tolist() == [99, 2] and frames[0] is inner\n"
        "untouched = pd.DataFrame({'a': [1.0, float('nan')]})\n"
        "before = untouched\n"
        "assert reads(untouched) == 1.0 and untouched is before and untouched['a'].isna().tolist() == [False, True]\n"
    )
    err, _ = _run(judge, test)
    assert err is None, err
