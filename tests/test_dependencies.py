"""Every package the code imports is declared in ``pyproject.toml`` (issue 23): an import of an
undeclared package (there only because another one pulled it in) fails here."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _imported_top_level(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"diffuse_fit", "__future__"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in project["dependencies"]
    }


def test_every_imported_package_is_declared():
    distributions = packages_distributions()
    declared = _declared()
    missing = {}
    for module in sorted(_imported_top_level(ROOT / "model")):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_sees_an_undeclared_import(tmp_path):
    """The check itself: a module importing a package that is not declared is found."""
    (tmp_path / "m.py").write_text("import hypothesis\nfrom numpy import array\n")
    assert _imported_top_level(tmp_path) == {"hypothesis", "numpy"}
    assert "hypothesis" not in _declared()  # a dev tool, not a dependency
