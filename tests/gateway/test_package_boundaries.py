"""The packages the gateway composes import none of each other: only `gateway` joins them.

Each check runs in a fresh interpreter, imports a package (and every module under it), and
lists the top-level packages that got loaded along the way.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gateway_support import ROOT, base_env

_LOADED = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
if sys.argv[2] == "all":
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""
_OURS = {"core", "schemas", "proxy", "consumers", "emulators", "services", "plugins", "gateway"}


def _loaded_by(package: str, *, submodules: bool = True) -> list[str]:
    """Every module name in sys.modules after importing `package` (and all its submodules)."""
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, package, "all" if submodules else "package"],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names: list[str] = json.loads(done.stdout.splitlines()[-1])
    return names


@pytest.mark.parametrize(
    ("package", "may_use"),
    [
        ("proxy", {"core"}),
        ("consumers", {"core", "schemas"}),
        ("emulators", {"core", "schemas"}),
        ("plugins", {"core"}),
    ],
)
def test_a_package_loads_none_of_its_siblings(package: str, may_use: set[str]) -> None:
    """Importing all of a package loads only itself and the shared core (and schemas)."""
    loaded = {name.partition(".")[0] for name in _loaded_by(package)}
    assert loaded & _OURS <= {package, *may_use}


def test_importing_consumers_loads_no_command_line() -> None:
    """`import consumers` runs no CLI module: the commands live in `gateway`."""
    loaded = _loaded_by("consumers", submodules=False)
    assert "consumers.service" in loaded  # the import did run: the runtime is there
    assert not [name for name in loaded if name.startswith("gateway")]
    assert not [name for name in loaded if name.rpartition(".")[2] == "cli"]
