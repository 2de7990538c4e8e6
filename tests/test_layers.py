"""No module imports upward: the layers of docs' layout hold in the code.

Networks know nothing of Lightning or of genlab's models; models know nothing of
callbacks, files or the config machinery; the config machinery builds anything without
knowing what it builds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genlab

PACKAGE = Path(genlab.__file__).parent

# package (a module or a folder of genlab) -> what it must never import
FORBIDDEN = {
    "nets": ["pytorch_lightning", "genlab.models", "genlab.callbacks", "genlab.metrics",
             "genlab.config", "genlab.runs", "genlab.train", "genlab.eval", "genlab.sample"],
    "losses": ["pytorch_lightning", "genlab.models", "genlab.callbacks", "genlab.config"],
    "augment": ["pytorch_lightning", "genlab.models", "genlab.callbacks", "genlab.config"],
    "models": ["genlab.callbacks", "genlab.metrics", "genlab.config", "genlab.runs",
               "genlab.train", "genlab.eval", "genlab.sample", "wandb"],
    "config": ["genlab.models", "genlab.nets", "genlab.callbacks", "genlab.metrics",
               "genlab.data", "genlab.train", "genlab.eval", "genlab.sample"],
    "data": ["genlab.models", "genlab.callbacks", "genlab.metrics", "genlab.train"],
    "metrics": ["genlab.callbacks", "genlab.train", "genlab.eval", "genlab.sample"],
    "errors": ["genlab."],
    "compat": ["genlab."],
}  # fmt: skip


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(layer: str) -> list[Path]:
    folder, file = PACKAGE / layer, PACKAGE / f"{layer}.py"
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [file]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_upward(layer: str) -> None:
    found = modules(layer)
    assert found and all(path.is_file() for path in found), layer
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in found
        for name in sorted(imports(path))
        if any(name == bad or name.startswith(bad.rstrip(".") + ".") for bad in FORBIDDEN[layer])
    ]
    assert wrong == []
