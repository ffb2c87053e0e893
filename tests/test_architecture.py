"""ARCHITECTURE.md's layering: each package imports only the packages below it (read from the source)."""
import ast
import pathlib

import crn_tf

ROOT = pathlib.Path(crn_tf.__file__).parent

# package -> the crn_tf packages its modules may import (ARCHITECTURE.md's table).
FOUNDATIONS = {"core"}
ALLOWED = {
    "core": FOUNDATIONS,
    "labels": FOUNDATIONS | {"labels"},
    "nn": FOUNDATIONS | {"labels", "nn"},
    "loss": FOUNDATIONS | {"labels", "nn", "loss"},
    "weights": FOUNDATIONS | {"labels", "nn", "weights"},
    "data": FOUNDATIONS | {"labels", "data"},
    "synthetic": FOUNDATIONS | {"labels", "data", "synthetic"},
}


def package_of(module: str) -> str:
    """crn_tf.nn.model -> nn; crn_tf.labels -> labels; crn_tf -> crn_tf."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "crn_tf"


def imported_packages(path: pathlib.Path) -> set[str]:
    """The crn_tf packages a source file imports (top-level and function-level imports alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crn_tf"):
            if node.module == "crn_tf":
                found |= {alias.name for alias in node.names if (ROOT / alias.name).exists()
                          or (ROOT / f"{alias.name}.py").exists()}
            else:
                found.add(package_of(node.module))
        elif isinstance(node, ast.Import):
            found |= {package_of(alias.name) for alias in node.names if alias.name.startswith("crn_tf.")}
    return found


SHIM = "sys.modules[__name__] = _module"
"""A module that only keeps an old name working (`python -m` and imports) is no layer of its own."""


def test_layers_import_only_what_is_below_them():
    violations = []
    for package, allowed in ALLOWED.items():
        paths = [ROOT / "labels.py"] if package == "labels" else sorted((ROOT / package).rglob("*.py"))
        assert paths, package
        for path in paths:
            if SHIM in path.read_text():
                continue
            for imported in imported_packages(path) - allowed - {"crn_tf"}:
                violations.append(f"{path.relative_to(ROOT.parent)} imports crn_tf.{imported}")
    assert violations == []


def test_at_most_twelve_modules_directly_in_the_package():
    modules = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(modules) <= 12, modules


def test_no_module_over_500_lines():
    long = {str(path.relative_to(ROOT.parent)): n for path in ROOT.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}


def test_old_module_names_are_their_new_homes():
    import importlib

    for old, new in crn_tf.MOVED_MODULES.items():
        assert importlib.import_module(f"crn_tf.{old}") is importlib.import_module(new), old
    for shim in ("crn_tf.download", "crn_tf.tf1_import", "crn_tf.data.synthetic", "crn_tf.data.bench"):
        assert SHIM in (ROOT.parent / (shim.replace(".", "/") + ".py")).read_text()


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from crn_tf.training.run import train\n    import crn_tf.nn.model\n")
    assert imported_packages(bad) == {"training", "nn"}


# Tests that follow one path through many modules (faults injected across the stack, a custom
# label set from dataset to demo, this file); every other test file is named after its module.
ACROSS_MODULES = {"test_architecture.py", "test_faults.py", "test_own_data.py"}


def module_test_names() -> set[str]:
    """test_<path with _ for />.py for every module and package: crn_tf/nn/model.py -> test_nn_model.py."""
    names = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        if parts:
            names.add("test_" + "_".join(parts) + ".py")
    return names


def test_each_test_file_is_named_after_its_module():
    tests = {path.name for path in pathlib.Path(__file__).parent.glob("test_*.py")}
    assert sorted(tests - module_test_names() - ACROSS_MODULES) == []
    assert "test_nn_model.py" in module_test_names() and "test_evaluate_segmenter.py" in module_test_names()
