"""The package layering: config.py imports nothing of the project; utils imports nothing of it but config; every
package imports only the packages below it."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = {"config", "data", "layers", "models", "engine", "utils", "train", "eval", "detect", "benchmarks",
           "scripts"}


def project_imports(path: str) -> list:
    """The top-level project modules a file imports (absolute imports only)."""
    tree = ast.parse(open(path).read())
    found = []
    for node in ast.walk(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found += [m.split(".")[0] for m in modules if m.split(".")[0] in PROJECT]
    return found


def test_config_imports_nothing_of_the_project():
    assert project_imports(os.path.join(ROOT, "config.py")) == []


def test_utils_imports_nothing_of_the_project_but_config():
    for name in sorted(os.listdir(os.path.join(ROOT, "utils"))):
        if name.endswith(".py"):
            imported = set(project_imports(os.path.join(ROOT, "utils", name))) - {"config", "utils"}
            assert not imported, f"utils/{name} imports {sorted(imported)}"


# What each package may import of the project: only packages below it (CONTRIBUTING's layering).
BELOW = {"layers": {"config", "utils"}, "models": {"config", "layers", "utils"},
         "data": {"config", "layers", "utils"}, "engine": {"config", "data", "layers", "models", "utils"}}
# The data checker is a command-line tool kept at `python -m data.check` (its documented name); it reports the
# prior coverage of the network the flags choose through engine.priors, the one exception.
ALLOWED_UP = {os.path.join("data", "check.py"): {"engine"}}


@pytest.mark.parametrize("package", sorted(BELOW))
def test_no_package_imports_a_package_above_it(package):
    for name in sorted(os.listdir(os.path.join(ROOT, package))):
        if name.endswith(".py"):
            where = os.path.join(package, name)
            above = set(project_imports(os.path.join(ROOT, where))) - BELOW[package] - {package}
            assert above <= ALLOWED_UP.get(where, set()), f"{where} imports {sorted(above)}, above {package}/"
