"""The layout holds: packages import only from the layers below them, no module imports itself back,
files and functions read in one sitting, tests mirror the source, and docs/architecture/packages.png
is drawn from the imports as they are."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "vaekit"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def architecture():
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "docs" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The vaekit modules a file imports, lazy imports included (``from a.b import c`` counts a.b.c where
    c is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaekit"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vaekit"))
    return found


def test_every_package_imports_only_from_the_layers_below():
    arch = architecture()
    packages = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {name for layer in arch.LAYERS for name in layer}  # a new package needs a layer
    upward = [(a, b) for a, b in arch.package_edges() if arch.layer_of(b) >= arch.layer_of(a)]
    assert not upward, f"imports against the layering: {upward}"


def test_no_import_cycles_between_modules():
    files = {module_name(p): p for p in SOURCE.rglob("*.py")}
    graph = {m: {i for i in imports(p) if i in files and i != m} for m, p in files.items()}
    # a package's __init__ re-exports its modules: importing a package is not a cycle through them
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_files_and_functions_read_in_one_sitting():
    long_files, long_functions = [], []
    for path in sorted(SOURCE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.name} ({length})")
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_tests_mirror_the_source_tree():
    for folder in sorted(p for p in (ROOT / "tests").rglob("*") if p.is_dir() and p.name != "__pycache__"):
        relative = folder.relative_to(ROOT / "tests")
        # the benchmarks' shared harness, outside src/; the whole package on a CUDA GPU (the cuda marker);
        # files the tests read (runs written by an earlier release)
        if relative.parts[0] in ("benchmarks", "gpu", "fixtures"):
            continue
        assert (SOURCE / relative).is_dir(), f"tests/{relative} has no src/vaekit/{relative}"


def test_the_package_picture_is_drawn_from_the_source(tmp_path):
    arch = architecture()
    arch.draw(tmp_path / "packages.png")
    assert (tmp_path / "packages.png").stat().st_size > 10_000
    edges = arch.package_edges()
    assert ("training", "models") in edges and ("cli", "training") in edges


# What tests a model's kind rather than asking it what it can do (docs/architecture.md, "Models by what
# they can do"): outside models/, isinstance or issubclass against a model class, a comparison of a
# model's name with a model's name, hasattr on a model, and the attributes that gave a kind away.
MODEL_CLASSES = {"VAE", "GaussianLatentVAE", "GaussianVAE", "NetworkVAE", "MLPVAE", "ConvVAE",
                 "ConditionalVAE", "VQVAE", "HierarchicalVAE"}  # fmt: skip
KIND_ATTRIBUTES = {"single_latent", "flow", "codebook_size", "group_shapes"}


def kind_checks(path: Path) -> list[str]:
    from vaekit.models import MODELS

    names = set(MODELS)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = node.args
            if node.func.id in ("isinstance", "issubclass") and len(args) == 2:
                classes = args[1].elts if isinstance(args[1], ast.Tuple) else [args[1]]
                if any(getattr(c, "id", getattr(c, "attr", None)) in MODEL_CLASSES for c in classes):
                    found.append(f"{where} {node.func.id} of a model class")
            if node.func.id == "hasattr" and args and "model" in ast.unparse(args[0]):
                found.append(f"{where} hasattr on a model")
        compared = isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute)
        if compared and node.left.attr == "name":
            constants = [c.value for c in node.comparators if isinstance(c, ast.Constant)]
            if any(value in names for value in constants):
                found.append(f"{where} a model's name compared")
        attribute = isinstance(node, ast.Attribute) and node.attr in KIND_ATTRIBUTES
        if attribute and "model" in ast.unparse(node.value):
            found.append(f"{where} model.{node.attr}")
    return found


def test_no_model_kind_check_outside_models():
    """Issue 34: the tools ask a model what it can do (latent_space, has_likelihood, fits_prior, ...)."""
    paths = [p for p in sorted(SOURCE.rglob("*.py")) if "models" not in p.relative_to(SOURCE).parts]
    checks = [check for path in paths for check in kind_checks(path)]
    assert not checks, checks


def test_the_kind_check_rule_finds_each_kind_of_check(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "isinstance(model, GaussianVAE)\nissubclass(cls, (VAE, int))\nhasattr(self.model, 'grid')\n"
        "model.name == 'vqvae'\nmodel.flow is None\nisinstance(x, dict)\nrun.name == 'other'\n"
    )
    sample = sample.rename(ROOT / "tests" / f".kind_check_sample_{id(sample)}.py")
    try:
        assert len(kind_checks(sample)) == 5
    finally:
        sample.unlink()
