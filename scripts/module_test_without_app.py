"""Run the module file `MedSAMAgent/MedSAMAgent.py` without the 3D Slicer application: its
parameter node and its `MedSAMAgentTest`, on slicer-core's real MRML, with the pure-Python
parts of Slicer (`parameterNodeWrapper`, `ScriptedLoadableModule`, `i18n`) taken from a
Slicer source checkout.

What this checks that the pytest suite cannot: the module file loads the way Slicer's
scripted-module factory loads it; `MedSAMAgentParameterNode` works under Slicer's own
parameter-node wrapper (defaults, Choice and range validation, node references stored in
the scripted module node); the manual-prompt path runs through that real wrapper; and
`MedSAMAgentTest.test_logic_on_the_phantom` passes. What it cannot check: the widget (Qt
and the qMRML widgets are replaced by import-only stand-ins, never called).

    git clone --depth 1 https://github.com/Slicer/Slicer /tmp/Slicer
    .venv/bin/python scripts/module_test_without_app.py /tmp/Slicer
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLICER_PYTHON_PARTS = ("parameterNodeWrapper", "ScriptedLoadableModule.py", "i18n.py")

IMPORT_ONLY_QT = '''"""Import-only stand-in for PythonQt's {name} module: any attribute is an inert class."""


class _Inert:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __getattr__(self, name):
        return _Inert()


def __getattr__(name):
    return type(name, (_Inert,), {{}})
'''

# Runs first among the overlay's modules: Slicer's Qt widget classes (qMRML*, qSlicer*),
# which slicer-core lacks, become inert classes so that Slicer's Python parts import.
WIDGET_CLASSES = '''import sys

_slicer = sys.modules["slicer"]


def _widget_class(name):
    if name.startswith("q"):
        cls = type(name, (), {})
        setattr(_slicer, name, cls)
        return cls
    raise AttributeError(name)


_slicer.__getattr__ = _widget_class
'''


def build_overlay(slicer_source: Path, folder: Path) -> None:
    package = slicer_source / "Base" / "Python" / "slicer"
    if not (package / "parameterNodeWrapper").is_dir():
        raise SystemExit(f"{slicer_source} is not a Slicer source checkout (no Base/Python/slicer/parameterNodeWrapper)")
    overlay = folder / "slicer"  # no __init__.py: slicer-core's meta-package picks it up from sys.path
    overlay.mkdir()
    for part in SLICER_PYTHON_PARTS:
        source = package / part
        if source.is_dir():
            shutil.copytree(source, overlay / part)
        else:
            shutil.copy(source, overlay / part)
    (overlay / "AAA_widget_classes.py").write_text(WIDGET_CLASSES)
    for name in ("qt", "ctk"):
        (folder / f"{name}.py").write_text(IMPORT_ONLY_QT.format(name=name))


def load_module_file(scene):
    import slicer

    slicer.mrmlScene = scene
    spec = importlib.util.spec_from_file_location("MedSAMAgent", ROOT / "MedSAMAgent" / "MedSAMAgent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["MedSAMAgent"] = module  # as Slicer's factory does, so string annotations resolve
    spec.loader.exec_module(module)
    return module


def check_parameter_node(module, scene) -> None:
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    parameters = module.MedSAMAgentParameterNode(node)
    assert (parameters.agentSource, parameters.keySliceView, parameters.segmenter, parameters.recheck) == (
        "local model", "Red", "litemedsam", 0)
    for name, value in (("agentSource", "nonsense"), ("recheck", 99)):
        try:
            setattr(parameters, name, value)
        except ValueError as error:
            print(f"  {name}={value!r} refused: {error}")
        else:
            raise AssertionError(f"{name}={value!r} was accepted")
    assert type(module.MedSAMAgentLogic().getParameterNode()).__name__ == "MedSAMAgentParameterNode"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("slicer_source", type=Path, help="a Slicer source checkout (github.com/Slicer/Slicer)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        build_overlay(args.slicer_source, Path(folder))
        sys.path[:0] = [folder, str(ROOT / "MedSAMAgent"), str(ROOT)]
        import slicer

        slicer.util = sys.modules["slicer.util"]  # the meta-package lets parameterNodeWrapper.util shadow it
        scene = slicer.vtkMRMLScene()
        segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
        segmentations.SetMRMLScene(scene)
        module = load_module_file(scene)
        print("MedSAMAgent.py loaded")
        check_parameter_node(module, scene)
        print("parameter node: defaults and validation as declared")

        from MedSAMAgentLib.phantom import abdominal_phantom
        from MedSAMAgentLogic import selftest
        from MedSAMAgentLogic.segmentation_logic import SegmentationLogic
        from MedSAMAgentLogic.volume_nodes import add_volume_node

        volume, organs = abdominal_phantom()
        volume_node = add_volume_node(scene, volume.array, volume.geometry.ijk_to_ras(), "phantom")
        parameters = module.MedSAMAgentLogic().getParameterNode()
        selftest.check_manual_prompts_from_settings(scene, volume_node, organs["right kidney"], SegmentationLogic(scene), parameters)
        print("manual prompts through the real parameter node wrapper: passed")

        test = module.MedSAMAgentTest()
        test.delayDisplay = lambda message, *args, **kwargs: print(f"  {message}")
        scene.Clear(False)
        started = time.perf_counter()
        test.test_logic_on_the_phantom()
        print(f"MedSAMAgentTest.test_logic_on_the_phantom passed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
