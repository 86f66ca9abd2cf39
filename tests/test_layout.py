"""One home per concept (issue 16), checked on the package's source: no module
grows a second copy of a constant, a loader, a decoder or a file-commit step."""

import ast
import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tf_hourglass"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def syntax_tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def constants(path: Path) -> list:
    return [node.value for node in ast.walk(syntax_tree(path)) if isinstance(node, ast.Constant)]


def called_names(path: Path) -> set[str]:
    """Dotted names of the functions a module calls: ``f(...)`` gives ``f``, ``os.path.join(...)`` ``os.path.join``."""
    names = set()
    for node in ast.walk(syntax_tree(path)):
        if isinstance(node, ast.Call):
            parts, function = [], node.func
            while isinstance(function, ast.Attribute):
                parts.append(function.attr)
                function = function.value
            parts.append(getattr(function, "id", "?"))
            names.add(".".join(reversed(parts)))
    return names


def imported_modules(path: Path) -> set[str]:
    """Dotted names a module imports; ``from a import b`` gives both ``a`` and ``a.b``."""
    names = set()
    for node in ast.walk(syntax_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    ("value", "home"),
    [
        ("final.keras", "run_files.py"),
        ("inference.json", "run_files.py"),
        (200.0, "data/records.py"),  # PIXELS_PER_SCALE, the original code's crop unit
    ],
)
def test_run_file_names_and_crop_constants_are_written_in_one_module(value, home):
    holders = [
        module_name(path)
        for path in MODULES
        if any(type(constant) is type(value) and constant == value for constant in constants(path))
    ]
    assert holders == [home]


def test_only_the_model_loader_loads_keras_files():
    loaders = [
        module_name(path)
        for path in MODULES
        if any(name.endswith("load_model") for name in called_names(path))
    ]
    assert loaders == ["model_loader.py"]


def test_the_codec_is_the_only_heatmap_decoder():
    assert not (PACKAGE / "evaluation" / "decoding.py").exists()
    definers = [
        module_name(path)
        for path in MODULES
        for node in ast.walk(syntax_tree(path))
        if isinstance(node, ast.FunctionDef) and "heatmap" in node.name and "decode" in node.name
    ]
    assert definers == ["data/codec.py"]


def test_files_are_committed_by_renames_in_the_atomic_files_helper_only():
    renamers = [
        module_name(path)
        for path in MODULES
        if any(name.endswith((".rename", ".renames")) or name == "os.replace" for name in called_names(path))
    ]
    # convert.py renames its temporary shards (named by atomic_files) together,
    # once every shard is written, so a failed conversion commits none of them.
    # pretrained.py renames a download's .part file, kept between runs so that a
    # broken download resumes, once it is whole.
    assert renamers == ["atomic_files.py", "data/convert.py", "weights/pretrained.py"]


def test_fit_and_custom_loops_share_the_run_setup_and_do_not_import_each_other():
    fit_loop = imported_modules(PACKAGE / "training" / "fit_loop.py")
    custom_loop = imported_modules(PACKAGE / "training" / "custom_loop.py")
    assert "tf_hourglass.training.custom_loop" not in fit_loop
    assert "tf_hourglass.training.fit_loop" not in custom_loop
    assert "tf_hourglass.training.run_setup" in fit_loop & custom_loop
    assert "tf_hourglass.training.callbacks" in fit_loop & custom_loop


def test_every_console_script_is_a_main_function_listed_in_the_readme():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = [
        line.split("=") for line in setup["options.entry_points"]["console_scripts"].split("\n") if line
    ]
    readme = (ROOT / "README.md").read_text()
    assert len(scripts) == 7
    for name, target in scripts:
        module, function = target.strip().split(":")
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        defined = {node.name for node in ast.walk(syntax_tree(path)) if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"{name.strip()}: no {function}() in {path.relative_to(ROOT)}"
        assert f"`{name.strip()}`" in readme


def test_inference_evaluation_and_serving_share_one_prediction_path():
    for name in ("prediction/estimator.py", "evaluation/evaluator.py", "export/saved_model.py"):
        assert "tf_hourglass.prediction.single_person" in imported_modules(PACKAGE / name), name


def test_the_version_is_written_once():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: tf_hourglass.__version__"
    writers = [
        module_name(path)
        for path in MODULES
        for node in ast.walk(syntax_tree(path))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets)
    ]
    assert writers == ["__init__.py"]


# ----------------------------------------------------------------------------
# The import graph: no cycles, and every import points down the layers.
# ----------------------------------------------------------------------------

# Lowest first. A module may import its own layer and the ones below, never one above.
LAYERS = (
    ("base", ("atomic_files", "cli", "precision")),
    ("data", ("data",)),
    ("model", ("model", "run_files")),
    (
        "loading",
        ("weights", "model_loader", "prediction.single_person", "prediction.multi_person", "visualization"),
    ),
    ("tasks", ("training", "evaluation", "export", "prediction")),
)
# Commands (flags only) sit on top: they may import anything.
COMMANDS = (
    "tf_hourglass",  # the package's public names
    "tf_hourglass.train",
    "tf_hourglass.evaluate",
    "tf_hourglass.predict",
    "tf_hourglass.export.__main__",
    "tf_hourglass.data.convert",
    "tf_hourglass.data.synthetic.__main__",
    "tf_hourglass.weights.__main__",
)


def dotted_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PACKAGE_MODULES = {dotted_name(path): path for path in MODULES}


def package_imports(path: Path) -> set[str]:
    """The package modules a module imports, anywhere in it (also inside functions).

    ``from tf_hourglass import atomic_files`` is an import of ``tf_hourglass.atomic_files``,
    not of the package's ``__init__``.
    """
    imports = set()
    for node in ast.walk(syntax_tree(path)):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                imports.add(submodule if submodule in PACKAGE_MODULES else node.module)
    return {name for name in imports if name in PACKAGE_MODULES} - {dotted_name(path)}


IMPORT_GRAPH = {name: package_imports(path) for name, path in PACKAGE_MODULES.items()}


def layer_of(module: str) -> int:
    if module in COMMANDS:
        return len(LAYERS)
    relative = module.removeprefix("tf_hourglass.")
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(relative == prefix or relative.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py::LAYERS; add it where it belongs")


def test_every_module_belongs_to_a_layer():
    for module in IMPORT_GRAPH:
        layer_of(module)


def test_imports_point_down_the_layers_data_model_loading_tasks_commands():
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0] if layer_of(module) < len(LAYERS) else 'commands'}) imports "
        f"{target} ({LAYERS[layer_of(target)][0] if layer_of(target) < len(LAYERS) else 'commands'})"
        for module, targets in sorted(IMPORT_GRAPH.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycles():
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for target in sorted(IMPORT_GRAPH[module]):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(IMPORT_GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_layer_check_sees_an_upward_import():
    """The checks above look at real imports: a data module that imported the model would be caught."""
    assert layer_of("tf_hourglass.data.codec") < layer_of("tf_hourglass.model.hourglass")
    assert "tf_hourglass.data.codec" in IMPORT_GRAPH["tf_hourglass.model.info"]
    assert "tf_hourglass.atomic_files" in IMPORT_GRAPH["tf_hourglass.data.formats.custom"]
    assert "tf_hourglass" not in IMPORT_GRAPH["tf_hourglass.data.formats.custom"]
