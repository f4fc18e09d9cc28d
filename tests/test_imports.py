"""The package layering: config.py imports nothing of the project; utils imports nothing of it but config."""
import ast
import os

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
