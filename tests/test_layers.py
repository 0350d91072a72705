"""The layering holds: every import in src/mgelab (lazy ones inside functions included) points
downwards, only the tracking package imports mlflow, only the Hydra side imports Hydra, and no
module can reach itself through imports. Read from the source with ``ast``, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mgelab"

# Lowest first. A package may import its own modules and any package of a lower layer.
LAYERS: List[Tuple[str, ...]] = [
    ("startup",),  # settled before MegEngine does any work (MKL's code path); imported by mgelab/__init__
    ("checkpoint",),  # the checkpoint format and safe unpickling
    ("nn",),
    ("data",),
    ("models",),
    ("train",),  # the trainer: no Hydra, no MLflow
    ("tracking",),  # MLflow only: no Hydra, no trainer, no MegEngine
    ("report", "serving", "deploy"),  # read runs / use trained models; serving and deploy never track
    ("config", "run"),  # the Hydra side
]
# Edges between packages of one layer, and edges a lower layer would allow but the design forbids.
SAME_LAYER_ALLOWED = {("deploy", "serving"), ("run", "config")}
FORBIDDEN = {("serving", "tracking"), ("deploy", "tracking")}
# Third-party packages only some packages may import.
ONLY_IN = {
    "mlflow": {"tracking"},
    "hydra": {"config", "run"},
    "omegaconf": {"config", "run"},
}
NO_MEGENGINE = {"startup", "checkpoint", "tracking"}
# The root package runs first in every process that imports mgelab: it may reach only the start-up layer,
# or importing any part of mgelab would load the rest.
ROOT_MAY_IMPORT = {"startup"}

RANK: Dict[str, int] = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module an ``import`` statement anywhere in the file names (relative ones resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            # ``from mgelab.x import y`` may name the submodule mgelab.x.y
            for alias in node.names:
                if module.startswith("mgelab"):
                    yield f"{module}.{alias.name}"


def source_files() -> List[Path]:
    return sorted(SRC.rglob("*.py"))


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal_modules() -> Set[str]:
    return {module_name(path) for path in source_files()}


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) for p in source_files()} - {""}
    assert packages <= set(RANK), f"place these packages in LAYERS: {sorted(packages - set(RANK))}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_downwards(path: Path):
    here = package_of(module_name(path))
    known = internal_modules()
    wrong = []
    for target in set(imports_of(path)):
        top = target.split(".")[0]
        if top == "mgelab":
            if target not in known:
                continue  # an attribute (``from mgelab.train import Trainer``), checked through its module
            there = package_of(target)
            if there in ("", here):
                continue
            if here == "":
                if there not in ROOT_MAY_IMPORT:
                    wrong.append(f"{target} (the root package may import only {sorted(ROOT_MAY_IMPORT)})")
                continue
            upward = RANK[there] > RANK[here]
            sideways = RANK[there] == RANK[here] and (here, there) not in SAME_LAYER_ALLOWED
            if upward or sideways or (here, there) in FORBIDDEN:
                wrong.append(f"{target} (layer {RANK[there]}, here {RANK[here]})")
        elif top in ONLY_IN and here not in ONLY_IN[top]:
            wrong.append(f"{target} (only {sorted(ONLY_IN[top])} may import {top})")
        elif top == "megengine" and here in NO_MEGENGINE:
            wrong.append(f"{target} ({here} must not load MegEngine)")
    assert not wrong, f"{module_name(path)} imports " + "; ".join(sorted(wrong))


def test_no_import_cycles():
    known = internal_modules()
    graph = {module_name(p): {t for t in imports_of(p) if t in known} - {module_name(p)} for p in source_files()}
    for module, targets in graph.items():
        # A package's __init__ naming its own submodules is how a package exports: not a cycle.
        graph[module] = {t for t in targets if not (module != t and t.startswith(module + ".") and
                                                    (SRC / Path(*module.split(".")[1:]) / "__init__.py").exists())}
    state: Dict[str, int] = {}
    path: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_file_over_300_lines():
    files = [*SRC.rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    long = {str(f.relative_to(ROOT)): n for f in files if (n := len(f.read_text().splitlines())) > 300}
    assert not long, f"split these files (lines): {long}"
