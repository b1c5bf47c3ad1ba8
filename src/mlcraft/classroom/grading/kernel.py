"""The grading kernel: IPython's kernel with one more message type, the grader's data channel.

``python -m mlcraft.classroom.grading.kernel -f CONNECTION_FILE`` starts it (inside the sandbox, under
the limits shim). It runs the notebook's cells like any IPython kernel; besides, it answers
``mlcraft_request`` messages on the shell channel (:data:`mlcraft.classroom.grading.protocol.REQUEST_TYPE`)
with ``mlcraft_reply`` messages, served by :func:`mlcraft.classroom.grading.agent.serve`. Output the
learner's code prints meanwhile goes to IOPub with the request as parent, like a cell's.
``quit()`` and ``exit()`` in a learner's cell leave the kernel running (as in JupyterLab
with "keep kernel"), so they cost nothing and never race with the grader's next request.
"""

from __future__ import annotations

import sys
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp
from ipykernel.zmqshell import ZMQInteractiveShell
from traitlets import Type

from mlcraft.classroom.grading.agent import serve
from mlcraft.classroom.grading.protocol import REPLY_TYPE, REQUEST_TYPE

__all__ = ["GradingKernel", "GradingShell", "main"]


class GradingShell(ZMQInteractiveShell):
    """The kernel's shell, on which ``quit()`` and ``exit()`` keep the kernel running."""

    def ask_exit(self) -> None:
        self.keepkernel_on_exit = True  # type: ignore[assignment]  # ipykernel declares it None
        super().ask_exit()  # type: ignore[no-untyped-call]


class GradingKernel(IPythonKernel):
    """IPython's kernel plus the ``mlcraft_request`` handler."""

    implementation = "mlcraft-grading"
    shell_class = Type(GradingShell)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.shell_handlers[REQUEST_TYPE] = self._grader_request

    def _grader_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        content = parent.get("content") or {}
        buffers = list(parent.get("buffers") or [])
        assert self.shell is not None and self.session is not None
        reply, out = serve(self.shell.user_ns, content if isinstance(content, dict) else {}, buffers)
        for handle in (sys.stdout, sys.stderr):
            handle.flush()
        self.session.send(stream, REPLY_TYPE, reply, parent, ident=ident, buffers=list[Any](out))


def main() -> None:
    IPKernelApp.launch_instance(kernel_class=GradingKernel)


if __name__ == "__main__":
    main()
