"""The grading kernel: IPython's kernel with one more message type, the grader's data channel.

``python -m mlcraft.grading.kernel -f CONNECTION_FILE`` starts it (inside the sandbox, under
the limits shim). It runs the notebook's cells like any IPython kernel; besides, it answers
``mlcraft_request`` messages on the shell channel (:data:`mlcraft.grading.protocol.REQUEST_TYPE`)
with ``mlcraft_reply`` messages, served by :func:`mlcraft.grading.agent.serve`. Output the
learner's code prints meanwhile goes to IOPub with the request as parent, like a cell's.
"""

from __future__ import annotations

import sys
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp

from mlcraft.grading.agent import serve
from mlcraft.grading.protocol import REPLY_TYPE, REQUEST_TYPE

__all__ = ["GradingKernel", "main"]


class GradingKernel(IPythonKernel):  # type: ignore[misc]  # ipykernel is untyped
    """IPython's kernel plus the ``mlcraft_request`` handler."""

    implementation = "mlcraft-grading"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shell_handlers[REQUEST_TYPE] = self._grader_request

    def _grader_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        content = parent.get("content") or {}
        buffers = list(parent.get("buffers") or [])
        reply, out = serve(self.shell.user_ns, content if isinstance(content, dict) else {}, buffers)
        for handle in (sys.stdout, sys.stderr):
            handle.flush()
        self.session.send(stream, REPLY_TYPE, reply, parent, ident=ident, buffers=out)


def main() -> None:
    IPKernelApp.launch_instance(kernel_class=GradingKernel)


if __name__ == "__main__":
    main()
