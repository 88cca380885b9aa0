"""Files: atomic writes, YAML input, and the kind of a results directory.

One implementation of each, used by every layer:

* :func:`atomic_write` / :func:`atomic_write_text` / :func:`atomic_write_json` /
  :func:`atomic_write_parquet`: write to a hidden temporary file beside the target and
  ``os.replace`` it into place, so a reader (or a resumed batch) sees the old file or the new
  one, never half of one. :func:`atomic_directory` does the same for a whole directory.
* :func:`read_yaml`: read a YAML mapping with ``yaml.safe_load``, or raise :class:`InputError`
  with the file and line.
* :func:`results_kind`: what a results directory holds (``run``, ``comparison``,
  ``experiment``, ``sensitivity``), written in its ``metadata.json`` by whoever made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

ResultsKind = Literal["run", "comparison", "experiment", "sensitivity"]
RESULTS_KINDS: tuple[str, ...] = ("run", "comparison", "experiment", "sensitivity")


class InputError(ValueError):
    """An input file cannot be read. ``str()`` names the file and says what is wrong."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.message = message  # without the file name
        super().__init__(f"{file}: {message}" if file else message)


# --------------------------------------------------------------------------- atomic writes
def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to write a temporary file beside ``path``, then move it into place.

    The temporary file is removed if ``write`` raises. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def atomic_write_parquet(path: str | Path, df: Any) -> Path:
    """Write a DataFrame as Parquet (no index) atomically."""
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def is_temporary(path: Path) -> bool:
    """True for a temporary file or directory left by an interrupted atomic write."""
    return path.name.startswith(".") and ".tmp-" in path.name


@contextlib.contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``out`` on success.

    ``out`` must not exist or be empty. On any exception the temporary directory is removed
    and ``out`` is left as it was.

    Raises:
        FileExistsError: if ``out`` exists and is not empty.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"results directory {out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(out)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- YAML
def read_yaml(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """Read a YAML mapping (``yaml.safe_load``).

    Raises:
        InputError: the file is missing, unreadable, not YAML, or not a mapping; the message
            names the file and, for syntax errors, the line and column.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such {what}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); save the {what} as UTF-8",
                         file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"YAML syntax error{where}: {problem}", file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"the {what} must be a YAML mapping of keys to values, "
                         f"not a {type(data).__name__}", file=str(path))
    return data


# --------------------------------------------------------------------------- results kind
def read_metadata(path: str | Path) -> dict[str, Any]:
    """``metadata.json`` of a results directory.

    Raises:
        InputError: missing, not JSON, or not a JSON object (the message names the file).
    """
    f = Path(path) / "metadata.json"
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no metadata.json: not a results directory", file=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"metadata.json is not valid JSON ({exc})", file=str(path)) from None
    if not isinstance(meta, dict):
        raise InputError("metadata.json is not a JSON object", file=str(path))
    return meta


def results_kind(path: str | Path, meta: dict[str, Any] | None = None) -> ResultsKind:
    """The kind of a results directory, as its writer recorded it (``"kind"`` in
    ``metadata.json``: ``run`` for ``govsim run``, ``comparison`` for ``govsim compare``,
    ``experiment`` for a batch); an experiment that ``govsim experiment analyze`` has analysed
    (it wrote ``analysis.json``) is a ``sensitivity`` directory. Comparisons written before
    the kind was recorded are recognised by their ``spec_file``.

    Raises:
        InputError: no readable ``metadata.json``, or a kind this version does not know.
    """
    meta = read_metadata(path) if meta is None else meta
    kind = meta.get("kind", "experiment")
    if kind == "experiment" and meta.get("spec_file") == "govsim compare":
        kind = "comparison"
    if kind not in RESULTS_KINDS:
        raise InputError(f"metadata.json: unknown kind {kind!r}; expected one of "
                         f"{', '.join(RESULTS_KINDS)}", file=str(path))
    if kind == "experiment" and (Path(path) / "analysis.json").is_file():
        return "sensitivity"
    return kind
