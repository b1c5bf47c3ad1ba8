"""Text corpora that need no download, language-model datasets, and a checked real-corpus loader.

:func:`stdlib_corpus` builds a corpus from the Python standard library that ships with the
interpreter (its source code, comments and docstrings): the same text on every machine with
the same Python version, nothing fetched. :func:`fetch_text` downloads a real corpus for
learners with a network and refuses it unless its SHA-256 matches.
"""

from __future__ import annotations

import hashlib
import sysconfig
import urllib.request
from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = ["TokenBlockDataset", "fetch_text", "stdlib_corpus"]

#: Standard-library modules with plenty of English prose in their docstrings.
DEFAULT_MODULES = (
    "argparse.py", "collections/__init__.py", "dataclasses.py", "functools.py", "inspect.py",
    "pathlib.py", "shutil.py", "subprocess.py", "textwrap.py", "typing.py",
)  # fmt: skip


def stdlib_corpus(max_chars: int | None = 1_000_000, modules: tuple[str, ...] = DEFAULT_MODULES) -> str:
    """Concatenated source of ``modules`` (paths relative to the stdlib folder), ASCII only.

    Raises:
        FileNotFoundError: if none of the modules exists in this Python's standard library.
    """
    if max_chars is not None and max_chars < 0:
        raise ValueError(f"max_chars must be >= 0 or None, got {max_chars}")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name in modules:
        path = stdlib / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(text.encode("ascii", errors="ignore").decode("ascii"))
    if not parts:
        raise FileNotFoundError(f"none of {modules} found under {stdlib}")
    corpus = "\n\n".join(parts)
    return corpus if max_chars is None else corpus[:max_chars]


def fetch_text(url: str, sha256: str, cache_dir: str | Path, timeout: float = 30.0) -> str:
    """Download ``url`` once into ``cache_dir`` and return its UTF-8 text, verified by ``sha256``.

    A cached file is re-verified on every call. ``file://`` URLs work too (used by the tests).

    Raises:
        ValueError: when the content's SHA-256 differs from ``sha256`` (the file is not kept).
        OSError: when the download fails (no network, HTTP error); the message says how to work offline.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".txt")
    if target.is_file():
        data = target.read_bytes()
    else:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except OSError as err:
            raise OSError(f"could not download {url}: {err}; without a network, use stdlib_corpus()") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        target.unlink(missing_ok=True)
        raise ValueError(f"{url}: SHA-256 {digest} does not match the expected {sha256}; refusing the file")
    if not target.is_file():
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return data.decode("utf-8")


class TokenBlockDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Next-token prediction windows: item ``i`` is ``(tokens[s:s+T], tokens[s+1:s+T+1])`` with
    ``s = i * stride`` (``stride`` defaults to ``block_size``: non-overlapping windows)."""

    def __init__(self, tokens: torch.Tensor, block_size: int, stride: int | None = None) -> None:
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if block_size < 1 or tokens.numel() < block_size + 1:
            raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens, got {tokens.numel()}")
        self.tokens, self.block_size = tokens, block_size
        self.stride = block_size if stride is None else stride
        self.count = (tokens.numel() - block_size - 1) // self.stride + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} windows")
        start = (index % self.count) * self.stride
        window = self.tokens[start : start + self.block_size + 1]
        return window[:-1], window[1:]
