"""Files: atomic writes, YAML input, and the kind of a results directory.

One implementation of each, used by every layer:

* :func:`atomic_write` / :func:`atomic_write_text` / :func:`atomic_write_json` /
  :func:`atomic_write_parquet`: write to a hidden temporary file beside the target and
  ``os.replace`` it into place, so a reader (or a resumed batch) sees the old file or the new
  one, never half of one. :func:`atomic_directory` does the same for a whole directory.
* :func:`read_yaml` / :func:`parse_yaml`: read a YAML mapping with a safe loader that refuses
  what could hang or exhaust the process (files over :data:`MAX_INPUT_BYTES`, nesting deeper
  than :data:`MAX_DEPTH`, alias expansion beyond :data:`MAX_NODES` values) and duplicate keys,
  or raise :class:`InputError` with the file and line.
* :func:`short`: a value shortened for an error message (never expanded in full).
* :func:`safe_name` and :func:`check_output_dir` / :func:`check_output_file`: a name fit for a
  directory, and an output location checked before any work is done.
* :func:`results_kind`: what a results directory holds (``run``, ``comparison``,
  ``experiment``, ``sensitivity``), written in its ``metadata.json`` by whoever made it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import reprlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

ResultsKind = Literal["run", "comparison", "experiment", "sensitivity", "calibration"]
RESULTS_KINDS: tuple[str, ...] = ("run", "comparison", "experiment", "sensitivity", "calibration")


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


# --------------------------------------------------------------------------- messages
_REPR = reprlib.Repr(maxlevel=3, maxtuple=6, maxlist=6, maxdict=6, maxset=6, maxstring=60,
                     maxother=60, maxlong=40)


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` shortened for an error message: nested containers are cut after a few
    elements and levels (so a value built by YAML aliases is never expanded in full), long
    strings and numbers are elided in the middle."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 20] + "..." + text[-17:]


def short_text(text: str, limit: int = 80) -> str:
    """A string (a key, a file name) cut to ``limit`` characters, the middle elided."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 20] + "..." + text[-17:]


# --------------------------------------------------------------------------- YAML
#: Largest input file read, bytes. Scenario and experiment files are a few KB; the limit stops
#: a wrong path (a data file, a device) from being read whole.
MAX_INPUT_BYTES = 1 << 20
#: Deepest nesting of YAML collections. Scenario files nest 4 levels; deeper nesting only
#: serves to exhaust the parser's recursion.
MAX_DEPTH = 32
#: Most values a document may hold once aliases are expanded. A "billion laughs" file of 2 KB
#: expands to 10^9 values through nested aliases; anything that walks it (validation, copies,
#: error messages) would hang.
MAX_NODES = 100_000


class _LimitError(Exception):
    def __init__(self, message: str, mark: Any = None):
        super().__init__(message)
        self.message = message
        self.mark = mark


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _loader_class() -> type:
    """``yaml.SafeLoader`` with a depth limit, refused duplicate keys and an expansion budget
    (built on first use, so that importing this module does not import yaml)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    class LimitedLoader(yaml.SafeLoader):
        def __init__(self, stream: str):
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _LimitError(f"nested deeper than {MAX_DEPTH} levels",
                                      self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _check_expansion(node)
            return node

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:
                        continue  # unhashable: the constructor reports it
                    if first is not key_node:
                        raise _LimitError(
                            f"duplicate key {short(key)} (first at line {first.start_mark.line + 1});"
                            " each key may appear once in a mapping", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    def _check_expansion(root: Any) -> None:
        """Count the values and the depth of the document with aliases expanded, without
        expanding it: each node is visited once (memoised), iteratively (no recursion)."""
        size: dict[int, int] = {}
        depth: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            nid = id(node)
            if done:
                on_path.discard(nid)
                kids = _children(node)
                size[nid] = 1 + sum(size[id(k)] for k in kids)
                depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
                if size[nid] > MAX_NODES:
                    raise _LimitError(f"more than {MAX_NODES:,} values once its aliases (*name)"
                                      " are expanded", node.start_mark)
                if depth[nid] > MAX_DEPTH:
                    raise _LimitError(f"nested deeper than {MAX_DEPTH} levels once its aliases"
                                      " (*name) are expanded", node.start_mark)
                continue
            if nid in size:
                continue
            if nid in on_path:
                raise _LimitError("an alias (*name) refers to a collection that contains it",
                                  node.start_mark)
            on_path.add(nid)
            stack.append((node, True))
            stack.extend((k, False) for k in _children(node) if id(k) not in size)

    def _children(node: Any) -> list[Any]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    _LOADER = LimitedLoader
    return _LOADER


_LOADER: type | None = None


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """Parse one YAML document safely (``SafeLoader``: plain data only) within the limits
    :data:`MAX_DEPTH` and :data:`MAX_NODES`, refusing duplicate keys.

    Raises:
        InputError: a syntax error (with line and column) or a limit exceeded; the message
            names ``source`` and never contains the expanded document.
    """
    import yaml

    loader = None
    try:
        loader = _loader_class()(text)  # the reader refuses control characters here
        return loader.get_single_data()
    except _LimitError as exc:
        raise InputError(f"YAML: {exc.message}{_where(exc.mark)}", file=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"YAML syntax error{_where(mark)}: {short_text(problem, 200)}",
                         file=source) from None
    except RecursionError:  # a safety net under MAX_DEPTH
        raise InputError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                         file=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text_input(path: str | Path, *, what: str = "file",
                    max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of a small UTF-8 input file (a byte-order mark is dropped).

    Raises:
        InputError: missing, not a regular file, larger than ``max_bytes``, unreadable or not
            UTF-8; the message names the file.
    """
    path = Path(path)
    name = short_text(str(path), 300)
    try:
        if not path.exists():
            raise InputError(f"no such {what}", file=name)
        if not path.is_file():
            raise InputError(f"not a regular file, so not a {what}", file=name)
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except InputError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot read the {what}: {reason}", file=name) from None
    if len(raw) > max_bytes:
        raise InputError(f"larger than {max_bytes // 1024} KiB: not a {what}", file=name)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); save the {what} as UTF-8",
                         file=name) from None


def read_yaml(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """Read a YAML mapping (safely, within limits: see :func:`parse_yaml`).

    Raises:
        InputError: the file is missing, not a regular file, too large, unreadable, not UTF-8,
            not YAML, beyond the limits, has a duplicate key, or is not a mapping; the message
            names the file and, for syntax errors, the line and column.
    """
    text = read_text_input(path, what=what)
    name = short_text(str(path), 300)
    data = parse_yaml(text, source=name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"the {what} must be a YAML mapping of keys to values, "
                         f"not a {type(data).__name__}", file=name)
    return data


# --------------------------------------------------------------------------- output locations
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str, *, fallback: str = "run", limit: int = 80) -> str:
    """A name fit for one directory level: letters, digits, ``_ . -`` only (anything else,
    including path separators, becomes ``_``), no leading dot or dash (so never ``..``, a
    hidden file or something read as an option), at most ``limit`` characters; ``fallback`` if nothing is left."""
    out = _UNSAFE.sub("_", str(name)).lstrip("._-")[:limit].rstrip("_")
    return out or fallback


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_writable_parent(path: Path, what: str) -> None:
    """``path`` (which does not exist yet) could be created: every existing ancestor is a
    directory and the nearest one is writable (tried, not guessed: permissions, read-only
    mounts and pseudo file systems all show up)."""
    anc = _nearest_existing(path)
    if not anc.is_dir():
        raise InputError(f"{what} {path} cannot be created: {anc} is a file, not a directory")
    try:
        probe = anc / f".govsim-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be created: {anc} is not writable"
                         f" ({exc.strerror or exc})") from None


def check_output_dir(path: str | Path, *, replace: bool = False, resume: bool = False,
                     what: str = "results directory") -> Path:
    """Check, before any work, that results can be written to directory ``path``.

    Args:
        path: the directory to be created (or filled).
        replace: an existing non-empty directory will be replaced (``--force``).
        resume: an existing directory will be continued (``--resume``).

    Raises:
        InputError: ``path`` is a file, lies under a file, cannot be created or written, or
            exists and is not empty while neither ``replace`` nor ``resume`` is set.
    """
    path = Path(path)
    try:
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise InputError(f"{what} {path} is a file, not a directory; choose another --out")
            if not (replace or resume) and any(path.iterdir()):
                raise InputError(f"{what} {path} already exists; choose another --out or add"
                                 " --force")
            if not os.access(path, os.W_OK | os.X_OK):
                raise InputError(f"{what} {path} is not writable")
            if replace and not os.access(path.absolute().parent, os.W_OK | os.X_OK):
                raise InputError(f"{what} {path} cannot be replaced: its parent is not writable")
        else:
            _check_writable_parent(path, what)
    except OSError as exc:  # e.g. a name too long, a permission denied on an ancestor
        raise InputError(f"{what} {short_text(str(path), 200)}: {exc.strerror or exc}") from None
    return path


def check_output_file(path: str | Path, *, what: str = "output file") -> Path:
    """Check, before any work, that file ``path`` can be written (replaced if it exists).

    Raises:
        InputError: ``path`` is a directory, lies under a file, or cannot be written.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"{what} {path} is a directory; give a file name")
        if path.exists():
            if not os.access(path, os.W_OK) or not os.access(path.absolute().parent, os.W_OK):
                raise InputError(f"{what} {path} is not writable")
        else:
            _check_writable_parent(path, what)
    except OSError as exc:
        raise InputError(f"{what} {short_text(str(path), 200)}: {exc.strerror or exc}") from None
    return path


# --------------------------------------------------------------------------- results kind
#: Keys of which a results directory's ``metadata.json`` has at least one (``design``: an
#: experiment's results written by other tools, as the sensitivity tests do).
METADATA_MARKERS = ("kind", "schema_version", "spec_file", "design")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """``metadata.json`` of a results directory.

    Raises:
        InputError: the directory is missing or a file; ``metadata.json`` is missing,
            unreadable, not JSON, not a JSON object, or an object that does not describe a
            results directory (none of :data:`METADATA_MARKERS`). The message names the
            directory.
    """
    path = Path(path)
    where = short_text(str(path), 300)
    if not path.exists():
        raise InputError("no such results directory", file=where)
    if not path.is_dir():
        raise InputError("a file, not a results directory", file=where)
    f = path / "metadata.json"
    if not f.exists():
        raise InputError("no metadata.json: not a results directory", file=where)
    try:
        text = read_text_input(f, what="metadata.json", max_bytes=64 * MAX_INPUT_BYTES)
        meta = json.loads(text)
    except InputError as exc:
        raise InputError(f"metadata.json: {exc.message}", file=where) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"metadata.json is not valid JSON ({short_text(str(exc), 120)})",
                         file=where) from None
    if not isinstance(meta, dict):
        raise InputError("metadata.json is not a JSON object", file=where)
    if not any(k in meta for k in METADATA_MARKERS):
        raise InputError("metadata.json does not describe a results directory (it has none of"
                         f" {', '.join(METADATA_MARKERS)})", file=where)
    return meta


def results_kind(path: str | Path, meta: dict[str, Any] | None = None) -> ResultsKind:
    """The kind of a results directory, as its writer recorded it (``"kind"`` in
    ``metadata.json``: ``run`` for ``govsim run``, ``comparison`` for ``govsim compare``,
    ``experiment`` for a batch); an experiment that ``govsim experiment analyze`` has analysed
    (it wrote ``analysis/analysis.json``) is a ``sensitivity`` directory. Comparisons written before
    the kind was recorded are recognised by their ``spec_file``.

    Raises:
        InputError: no readable ``metadata.json``, or a kind this version does not know.
    """
    meta = read_metadata(path) if meta is None else meta
    kind = meta.get("kind", "experiment")
    if not isinstance(kind, str):
        raise InputError(f"metadata.json: 'kind' must be a text, not {short(kind)}",
                         file=short_text(str(path), 300))
    if kind == "experiment" and meta.get("spec_file") == "govsim compare":
        kind = "comparison"
    if kind not in RESULTS_KINDS:
        raise InputError(f"metadata.json: unknown kind {short(kind)}; expected one of "
                         f"{', '.join(RESULTS_KINDS)}", file=short_text(str(path), 300))
    if kind == "experiment" and (Path(path) / "analysis" / "analysis.json").is_file():
        return "sensitivity"
    return kind
