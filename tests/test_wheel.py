"""The package installs as a wheel and runs a shipped scenario by name from any directory.

Builds the wheel (``pip wheel``, not an editable install), installs it into a fresh virtual
environment, and from an unrelated working directory runs ``govsim scenarios`` and
``govsim run default`` and imports every module of the source tree from the installed copy.
Nothing may be found through the source checkout: the scenarios and experiments come from the
wheel (``sim/_shipped``), results go under the working directory.

The fresh environment reuses the test environment's third-party packages through a ``.pth``
path entry (a plain path line: the editable install's own ``.pth`` hooks there are not run),
so the test needs no network and checks what the wheel itself carries.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "sim"


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)], tmp, env)
    wheels = list(dist.glob("govsim-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   tmp, env).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_govsim_test_deps.pth").write_text("\n".join(deps) + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])], tmp, env)
    work = tmp / "elsewhere"
    work.mkdir()
    return env_dir, work, env


def test_installed_wheel_runs_a_scenario_by_name_from_any_directory(installed):
    env_dir, work, env = installed
    govsim = env_dir / "bin" / "govsim"
    where = _run([str(env_dir / "bin" / "python"), "-c",
                  "import sim, sim.paths as p; print(sim.__file__); print(p.SCENARIO_DIR); "
                  "print(p.source_root())"], work, env).stdout.split("\n")
    assert str(env_dir) in where[0], f"sim imported from {where[0]}, not from the installed wheel"
    assert str(env_dir) in where[1] and where[2] == "None"
    listing = _run([str(govsim), "scenarios"], work, env).stdout
    for name in ("default", "pingxiang_reform", "anyuan_fusion"):
        assert name in listing
    _run([str(govsim), "run", "default", "--days", "5", "--quiet", "--out", "out"], work, env)
    assert (work / "out" / "runs.parquet").is_file() and (work / "out" / "metadata.json").is_file()
    _run([str(govsim), "experiment", "status", "--help"], work, env)


def test_installed_wheel_carries_every_module(installed):
    env_dir, work, env = installed
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in SIM.rglob("*.py") if p.name != "__main__.py"
    )
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % (modules,)
    _run([str(env_dir / "bin" / "python"), "-c", code], work, env)
    shipped = _run([str(env_dir / "bin" / "python"), "-c",
                    "import sim.paths as p; print(sorted(x.name for x in p.EXPERIMENT_DIR.glob('*.yaml')))"],
                   work, env).stdout
    for f in (ROOT / "experiments").glob("*.yaml"):
        assert f.name in shipped
    calibrations = _run([str(env_dir / "bin" / "python"), "-c",
                         "from sim.calibration import load_calibration as f; print(f('pingxiang').name"
                         " if hasattr(f('pingxiang'), 'name') else f('pingxiang').spec.name)"],
                        work, env).stdout
    assert "pingxiang" in calibrations  # the calibration file and the scenarios it names
