"""The browser files the explorer needs, kept on this machine (``python -m sim.explorer.assets``).

A Solara page loads its JavaScript (the Vuetify app, require.js, the draggable grid layout and
Vega for the charts) through the Solara server's asset proxy, which serves files from a cache
directory (``<venv>/share/solara/cdn``) and fetches missing ones from a public CDN. Where the
machine has no route to that CDN (CI, an office network) the page stays blank. This module
fills the cache from the npm registry with ``npm pack`` (the ordinary npm client), once; after
that the explorer works offline. Where the cache is already complete it does nothing.

``python -m sim.explorer.assets`` installs what is missing and exits 0 when everything is in place
(1 otherwise, with the reason). ``--check`` only reports.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# (npm package, version or range as the page asks for it, a file that must exist inside).
# The directory name is "<package>@<spec>", exactly the path the page requests, so a range such
# as "vega@5" is stored under that name with the newest matching release.
_COMMON: tuple[tuple[str, str, str], ...] = (
    ("requirejs", "2.3.6", "require.js"),
    ("@widgetti/vue-grid-layout", "2.3.13-alpha.2", "dist/vue-grid-layout.umd.js"),
    ("font-awesome", "4.5.0", "css/font-awesome.min.css"),
    ("vega", "5", "build/vega.min.js"),
    ("vega-lite", "5", "build/vega-lite.min.js"),
    ("vega-embed", "6", "build/vega-embed.min.js"),
)
# The Vuetify app: Solara's page for ipyvuetify 1.x (Vue 2) or 3.x (Vue 3); the bundle's file name
# carries the ipywidgets major version.
_VUETIFY = {1: ("@widgetti/solara-vuetify-app", "10.1.1"),
            3: ("@widgetti/solara-vuetify3-app", "5.2.0")}


def cache_dir() -> Path:
    """The Solara server's asset cache (``solara.server.settings.assets.proxy_cache_dir``)."""
    try:
        from solara.server import settings

        return Path(settings.assets.proxy_cache_dir)
    except (ImportError, AttributeError):  # pragma: no cover - solara missing or changed
        return Path(sys.prefix) / "share" / "solara" / "cdn"


def required() -> list[tuple[str, str, str]]:
    """The packages this Solara version's page loads (the Vuetify app depends on ipyvuetify's and
    ipywidgets' major versions)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        widgets = int(version("ipywidgets").split(".")[0])
        vuetify = int(version("ipyvuetify").split(".")[0])
    except (PackageNotFoundError, ValueError):  # pragma: no cover - assume the newest stack
        widgets, vuetify = 8, 3
    package, spec = _VUETIFY[3 if vuetify >= 3 else 1]
    return [(package, spec, f"dist/solara-vuetify-app{widgets}.min.js"), *_COMMON]


def missing(root: Path | None = None) -> list[tuple[str, str, str]]:
    """Required packages not yet in the cache."""
    root = cache_dir() if root is None else root
    return [p for p in required() if not (root / f"{p[0]}@{p[1]}" / p[2]).is_file()]


def _npm_pack(package: str, spec: str, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (Debian package 'npm')")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", f"{package}@{spec}", "--silent"], cwd=tmp, capture_output=True,
            text=True, timeout=300, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {package}@{spec} failed: {out.stderr.strip()[-500:]}")
        tgz = sorted(Path(tmp).glob("*.tgz"))
        if not tgz:
            raise RuntimeError(f"npm pack {package}@{spec} produced no tarball")
        with tarfile.open(tgz[0]) as tf:
            tf.extractall(tmp, filter="data")
        staged = Path(tmp) / "package"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(staged, partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)


def ensure(root: Path | None = None, log=print) -> list[str]:
    """Install every missing package into the cache. Returns the problems (empty: all there)."""
    root = cache_dir() if root is None else root
    problems = []
    for package, spec, probe in missing(root):
        log(f"fetching {package}@{spec} from the npm registry into {root}")
        try:
            _npm_pack(package, spec, root / f"{package}@{spec}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            problems.append(f"{package}@{spec}: {exc}")
            continue
        if not (root / f"{package}@{spec}" / probe).is_file():
            problems.append(f"{package}@{spec}: {probe} is missing from the package")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.explorer.assets",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only report what is missing")
    args = ap.parse_args(argv)
    if args.check:
        miss = missing()
        for package, spec, _ in miss:
            print(f"missing: {package}@{spec}")
        print(f"explorer assets in {cache_dir()}: {'complete' if not miss else 'incomplete'}")
        return 1 if miss else 0
    problems = ensure()
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    print(f"explorer assets in {cache_dir()}: {'complete' if not problems else 'incomplete'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
