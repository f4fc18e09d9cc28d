"""The package layering: utils is a leaf (it imports nothing else of the project)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_utils_imports_nothing_else_of_the_project():
    project = {"config", "data", "layers", "models", "engine", "train", "eval", "detect", "benchmarks", "scripts"}
    for name in sorted(os.listdir(os.path.join(ROOT, "utils"))):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(ROOT, "utils", name)).read())
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for module in modules:
                assert module.split(".")[0] not in project, f"utils/{name} imports {module}"
