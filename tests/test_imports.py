"""The package layering: utils imports nothing of the project; config.py only utils; its siblings (config_*.py)
only config, each other and utils; every package imports only the packages below it."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = {"config", "config_checks", "config_flags", "config_resolve"}
PROJECT = CONFIG | {"data", "layers", "models", "engine", "utils", "train", "eval", "detect", "benchmarks", "scripts"}


def project_imports(path: str) -> list:
    """The top-level project modules a file imports (absolute imports only)."""
    tree = ast.parse(open(path).read())
    found = []
    for node in ast.walk(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found += [m.split(".")[0] for m in modules if m.split(".")[0] in PROJECT]
    return found


def test_config_imports_only_utils_and_its_siblings_only_config():
    assert set(project_imports(os.path.join(ROOT, "config.py"))) <= {"utils"}
    for name in sorted(CONFIG - {"config"}):
        imported = set(project_imports(os.path.join(ROOT, name + ".py"))) - CONFIG - {"utils"}
        assert not imported, f"{name}.py imports {sorted(imported)}"


def test_utils_imports_nothing_of_the_project():
    for name in sorted(os.listdir(os.path.join(ROOT, "utils"))):
        if name.endswith(".py"):
            imported = set(project_imports(os.path.join(ROOT, "utils", name))) - {"utils"}
            assert not imported, f"utils/{name} imports {sorted(imported)}"


# What each package may import of the project: only packages below it (CONTRIBUTING's layering).
BELOW = {"layers": CONFIG | {"utils"}, "models": CONFIG | {"layers", "utils"},
         "data": CONFIG | {"layers", "utils"}, "engine": CONFIG | {"data", "layers", "models", "utils"}}
@pytest.mark.parametrize("package", sorted(BELOW))
def test_no_package_imports_a_package_above_it(package):
    for name in sorted(os.listdir(os.path.join(ROOT, package))):
        if name.endswith(".py"):
            where = os.path.join(package, name)
            above = set(project_imports(os.path.join(ROOT, where))) - BELOW[package] - {package}
            assert not above, f"{where} imports {sorted(above)}, above {package}/"
