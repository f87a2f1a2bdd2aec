"""Text files a user hands in (scenarios, decisions, quotes), read one way: UTF-8 or refused.

Every refusal is an `InputFileError` whose message reads `path:line: problem` on one line,
so a command line can print it as it is. A bad byte is placed by its line and its offset
from the start of the file (`cmp`, `xxd -s` find it); a path that is missing, a folder or
unreadable is named before anything is read from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

UTF8_BOM = b"\xef\xbb\xbf"


class InputFileError(ValueError):
    """A file that cannot be read as input; the message reads `path:line: problem`."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[InputFileError], tuple[Path, int | None, str]]:
        # Rebuilt from its parts, not its message: a sweep's workers send it back pickled.
        return type(self), (self.path, self.line, self.problem)


def require_file(
    path: Path, what: str = "file", error: type[InputFileError] = InputFileError
) -> Path:
    """`path`, if it names a file; else `error` saying what is there instead."""
    if path.is_file():
        return path
    if path.is_dir():
        raise error(path, None, f"a folder, not a {what}")
    if path.exists():  # a device or a pipe: reading it might never end
        raise error(path, None, f"not a regular file, so not a {what}")
    raise error(path, None, f"no such {what}")


def read_text(path: Path, what: str = "file", error: type[InputFileError] = InputFileError) -> str:
    """The whole file as text: for files read at once (a scenario, a quote table)."""
    data = _read_bytes(path, what, error)
    skip = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    return _decode(path, data[skip:] if skip else data, 1, skip, error)


def text_lines(
    path: Path, what: str = "file", error: type[InputFileError] = InputFileError
) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, read as it is asked for: for files too long to hold
    (a million decisions), each line decoded on its own so a bad byte is still placed."""
    require_file(path, what, error)
    try:
        handle = path.open("rb")
    except OSError as failed:
        raise error(path, None, f"cannot read the {what}: {failed.strerror}") from None
    with handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            skip = len(UTF8_BOM) if number == 1 and raw.startswith(UTF8_BOM) else 0
            yield number, _decode(path, raw[skip:], number, offset + skip, error)
            offset += len(raw)


def _read_bytes(path: Path, what: str, error: type[InputFileError]) -> bytes:
    require_file(path, what, error)
    try:
        return path.read_bytes()
    except OSError as failed:
        raise error(path, None, f"cannot read the {what}: {failed.strerror}") from None


def _decode(path: Path, data: bytes, line: int, offset: int, error: type[InputFileError]) -> str:
    """`data` as text; `line` and `offset` are where its first byte is in the file."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line += data.count(b"\n", 0, bad.start)
        problem = f"not UTF-8 text: byte 0x{data[bad.start]:02X} at offset {offset + bad.start}"
        raise error(path, line, problem) from None
