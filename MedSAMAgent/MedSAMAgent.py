"""MedSAMAgent: type what to segment, get an editable 3D segmentation.

The widget only wires the GUI to the parameter node and to the logic; model work runs on
one persistent worker thread. `MedSAMAgentLogic` adds Slicer's parameter node to the
GUI-free `SegmentationLogic` (package `MedSAMAgentLogic`), which does the work and is
tested headless. Python dependencies are checked on first use and installed on the main
thread after the user agrees.
"""

from __future__ import annotations

import logging
from typing import Annotated

import qt
import slicer
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from MedSAMAgentLogic.parameters import A_SERVER, AGENT_SOURCES, LOCAL_MODEL, RUN_ON, THIS_COMPUTER, job_from_parameters

API_KEY_SETTING = "MedSAMAgent/EndpointApiKey"
SERVER_KEY_SETTING = "MedSAMAgent/ServerApiKey"


class MedSAMAgent(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedSAM-Agent")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.contributors = ["MedSAM-Agent for 3D Slicer developers"]
        self.parent.helpText = _(
            "Type what to segment (for example <i>right kidney in abdomen CT</i>): the MedSAM-Agent model places "
            "box and point prompts on the key slice, MedSAM2 or LiteMedSAM segments it and follows it through the "
            "volume. Edit the result with the Segment Editor, then <b>Re-run from my edits</b>: edited slices are kept."
        )
        self.parent.acknowledgementText = _(
            "MedSAM-Agent (CUHK-AIM-Group), MedSAM2 and LiteMedSAM (bowang-lab), SAM 2 (Meta)."
        )


@parameterNodeWrapper
class MedSAMAgentParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    target: str = ""
    keySliceView: Annotated[str, Choice(["Red", "Yellow", "Green"])] = "Red"
    findSlice: bool = False
    window: Annotated[str, Choice(["auto", "abdomen", "lung", "brain", "mediastinum", "bone", "percentile"])] = "auto"
    segmenter: Annotated[str, Choice(["litemedsam", "medsam2"])] = "litemedsam"
    checkpoint: str = ""
    runOn: Annotated[str, Choice(list(RUN_ON))] = THIS_COMPUTER
    serverUrl: str = ""
    agentSource: Annotated[str, Choice(list(AGENT_SOURCES))] = LOCAL_MODEL
    agentModel: str = "Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2"
    endpointUrl: str = ""
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    recheck: Annotated[int, WithinRange(0, 50)] = 0
    promptBox: vtkMRMLMarkupsROINode
    positivePoints: vtkMRMLMarkupsFiducialNode
    negativePoints: vtkMRMLMarkupsFiducialNode


class MedSAMAgentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._worker = None
        self._timer = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedSAMAgent.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MedSAMAgentLogic()

        self.ui.apiKeyLineEdit.text = qt.QSettings().value(API_KEY_SETTING, "")
        self.ui.apiKeyLineEdit.editingFinished.connect(self.onApiKeyChanged)
        self.ui.serverKeyLineEdit.text = qt.QSettings().value(SERVER_KEY_SETTING, "")
        self.ui.serverKeyLineEdit.editingFinished.connect(self.onServerKeyChanged)
        self.ui.checkMachineButton.clicked.connect(self.onCheckMachine)
        self.ui.runOnComboBox.currentTextChanged.connect(self.updateWhereToRun)
        self.ui.segmentButton.clicked.connect(lambda: self.onRun("segment"))
        self.ui.propagateButton.clicked.connect(lambda: self.onRun("propagate"))
        self.ui.rerunButton.clicked.connect(lambda: self.onRun("rerun"))
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.undoButton.clicked.connect(self.onUndo)
        self.ui.saveRecordButton.clicked.connect(self.onSaveRecord)
        self.ui.deviceComboBox.currentTextChanged.connect(self.updateWhereToRun)
        # After the .ui's own connection has shown the new segmentation's segments: a new
        # segmentation starts with "new segment", never with one of its segments to overwrite.
        self.ui.outputSegmentationSelector.currentNodeChanged.connect(lambda node: self.ui.segmentSelector.setCurrentSegmentID(""))
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self.setRunning(False)
        self.updateWhereToRun()

    def cleanup(self):
        self.removeObservers()
        if self._worker is not None:
            self._worker.shutdown()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)
        self.logic.forgetScene()

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    # -- actions ----------------------------------------------------------------------
    def onApiKeyChanged(self):
        qt.QSettings().setValue(API_KEY_SETTING, self.ui.apiKeyLineEdit.text)

    def onServerKeyChanged(self):
        qt.QSettings().setValue(SERVER_KEY_SETTING, self.ui.serverKeyLineEdit.text)

    def onCheckMachine(self):
        onServer = self.ui.runOnComboBox.currentText == A_SERVER
        with slicer.util.tryWithErrorDisplay(_("Could not check this machine."), waitCursor=True):
            report = self.logic.engine.machine_report(
                self.ui.serverUrlLineEdit.text if onServer else "", self.ui.serverKeyLineEdit.text if onServer else "")
            self.ui.machineReportTextEdit.setPlainText(report)
            self.ui.machineReportTextEdit.visible = True

    def updateWhereToRun(self, *args):
        from MedSAMAgentLogic.dependencies import cuda_available

        onServer = self.ui.runOnComboBox.currentText == A_SERVER
        # On a server its own weights, device and agent are used; the segmenter and the
        # choice of an agent or my prompts still apply.
        for localOnly in (self.ui.checkpointLineEdit, self.ui.deviceComboBox, self.ui.agentModelLineEdit,
                          self.ui.endpointUrlLineEdit, self.ui.apiKeyLineEdit):
            localOnly.enabled = not onServer
        self.ui.serverUrlLineEdit.enabled = self.ui.serverKeyLineEdit.enabled = onServer
        device = self.ui.deviceComboBox.currentText
        cuda = None if onServer else cuda_available()
        if onServer:
            self.ui.cpuWarningLabel.text = ""
        elif device != "cpu" and cuda is None:
            self.ui.cpuWarningLabel.text = _("PyTorch is not installed yet: the first run offers to install it.")
        elif device == "cpu" or (device == "auto" and not cuda):
            self.ui.cpuWarningLabel.text = _(
                "Running on the CPU: LiteMedSAM takes about a second per slice; the 8B agent takes minutes per turn.")
        else:
            self.ui.cpuWarningLabel.text = ""

    def onRun(self, mode):
        p = self._parameterNode
        if not self.logic.ensureDependencies(onServer=p.runOn == A_SERVER):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the run."), waitCursor=True):
            job = job_from_parameters(p, slicer.mrmlScene, self.ui.apiKeyLineEdit.text, mode, self.ui.serverKeyLineEdit.text)
            if not p.outputSegmentation:
                segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
                segmentation.CreateDefaultDisplayNodes()
                p.outputSegmentation = segmentation
            segmentId = self.ui.segmentSelector.currentSegmentID() or None
            self.logic.connectSegmentEditorUndo(p.outputSegmentation)
            prepared = self.logic.engine.prepare(mode, p.inputVolume, p.outputSegmentation, segmentId, job)
            self._worker = self._worker or self.logic.newWorker()
            self._worker.submit(
                lambda progress, cancel: self.logic.engine.compute(prepared, progress, cancel),
                lambda future: self.onFinished(prepared, future),
            )
            self.setRunning(True)
            self.ui.statusLabel.text = _("Starting...")
            self._timer.start()

    def onPoll(self):
        self._worker.poll(self.showProgress)

    def showProgress(self, step, done, total):
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done
        self.ui.statusLabel.text = step

    def onFinished(self, prepared, future):
        self._timer.stop()
        self.setRunning(False)
        self.showRecord(self.logic.engine.last_run)
        error = future.exception()
        if error is not None:
            self.ui.statusLabel.text = _("Stopped: {reason}. The segmentation was not changed.").format(reason=error)
            if not isinstance(error, self.logic.cancelledError()):
                slicer.util.errorDisplay(str(error), windowTitle=_("MedSAM-Agent"))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not write the result."), waitCursor=True):
            report = self.logic.engine.apply(prepared, future.result())
            self.ui.segmentSelector.setCurrentSegmentID(report.segment_id)
            self.ui.statusLabel.text = report.summary

    def onCancel(self):
        if self._worker is not None:
            self._worker.cancel()
            self.ui.statusLabel.text = _("Cancelling...")

    def onUndo(self):
        selected = self.ui.segmentSelector.currentSegmentID()
        with slicer.util.tryWithErrorDisplay(_("Could not undo."), waitCursor=True):
            self.logic.engine.undo()
        segmentation = self._parameterNode.outputSegmentation
        if selected and (not segmentation or segmentation.GetSegmentation().GetSegment(selected) is None):
            # The undone run had made that segment; the selector has since picked another,
            # which the next run must not overwrite.
            self.ui.segmentSelector.setCurrentSegmentID("")

    def setRunning(self, running):
        for button in (self.ui.segmentButton, self.ui.propagateButton, self.ui.rerunButton, self.ui.undoButton):
            button.enabled = not running
        self.ui.cancelButton.enabled = running
        if not running:
            self.ui.progressBar.value = 0

    def showRecord(self, lastRun):
        """The agent's record of the last run (finished, failed or cancelled): its runs and turns."""
        self.ui.turnsList.clear()
        self.ui.saveRecordButton.enabled = lastRun is not None
        for line in lastRun.lines() if lastRun is not None else []:
            item = qt.QListWidgetItem(line.text)
            if line.picture_png:
                pixmap = qt.QPixmap()
                pixmap.loadFromData(line.picture_png, "PNG")
                item.setIcon(qt.QIcon(pixmap.scaled(64, 64)))
            item.setToolTip(line.tooltip)
            self.ui.turnsList.addItem(item)

    def onSaveRecord(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Save the agent's record in a new folder inside"))
        if folder:
            with slicer.util.tryWithErrorDisplay(_("Could not save the record."), waitCursor=True):
                saved = self.logic.engine.save_last_run(folder)
                self.ui.statusLabel.text = _("Saved the agent's record in {folder}").format(folder=saved)


class MedSAMAgentLogic(ScriptedLoadableModuleLogic):
    """Slicer's parameter node and settings around the GUI-free `SegmentationLogic` (the
    `engine`), which is created on first use, after the dependencies are in place."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._engine = None

    def getParameterNode(self):
        return MedSAMAgentParameterNode(super().getParameterNode())

    @property
    def engine(self):
        if self._engine is None:
            from MedSAMAgentLogic.segmentation_logic import SegmentationLogic

            self._engine = SegmentationLogic(slicer.mrmlScene)
        return self._engine

    def forgetScene(self):
        if self._engine is not None:
            self._engine.forget_scene()

    def process(self, volumeNode, segmentationNode, segmentId, job, progress=None, cancel=None):
        """Segment (agent or prompts) and propagate, without a GUI; see SegmentationLogic."""
        return self.engine.process(volumeNode, segmentationNode, segmentId, job, progress, cancel)

    def connectSegmentEditorUndo(self, segmentationNode):
        """Let Ctrl+Z in the Segment Editor undo a run on the segmentation it shows."""
        editorWidget = self._segmentEditorWidget()

        def saveInSegmentEditor(node):
            if editorWidget is not None and editorWidget.segmentationNode() == node:
                editorWidget.saveStateForUndo()

        self.engine.writer.before_write = saveInSegmentEditor

    @staticmethod
    def _segmentEditorWidget():
        try:
            return slicer.modules.segmenteditor.widgetRepresentation().self().editor
        except AttributeError:
            return None

    @staticmethod
    def newWorker():
        from MedSAMAgentLogic.worker import Worker

        return Worker()

    @staticmethod
    def cancelledError():
        from MedSAMAgentLib.errors import Cancelled

        return Cancelled

    def ensureDependencies(self, onServer=False):
        """Check the Python packages (on a server: the client's only); offer to install
        what is missing (main thread)."""
        from MedSAMAgentLogic import dependencies

        found = dependencies.problems(dependencies.CLIENT_REQUIREMENTS if onServer else dependencies.REQUIREMENTS)
        if not found:
            return True
        pytorchUtils = self._pytorchUtils()
        plan = dependencies.install_plan(found, pytorchUtils is not None)
        message = _("MedSAM-Agent needs these Python packages:\n\n{problems}\n\nThis will run:\n\n{plan}\n\nInstall now?").format(
            problems="\n".join(p.describe() for p in found), plan="\n".join(plan)
        )
        if not slicer.util.confirmOkCancelDisplay(message, windowTitle=_("MedSAM-Agent: install dependencies")):
            return False
        installTorch = None
        if pytorchUtils is not None:
            def installTorch(torchSpecifier, torchvisionSpecifier):
                pytorchUtils.installTorch(
                    askConfirmation=False,
                    torchVersionRequirement=torchSpecifier,
                    torchvisionVersionRequirement=torchvisionSpecifier,
                )
        loadedBeforeInstall = dependencies.loaded_among(found)
        try:
            with slicer.util.tryWithErrorDisplay(_("Installing the dependencies failed."), waitCursor=True):
                dependencies.install(found, slicer.util.pip_install, installTorch)
                remaining = dependencies.problems([p.requirement for p in found])
                if remaining:
                    raise RuntimeError(_("Still missing after installation: {what}. Restart Slicer and try again.").format(
                        what="; ".join(p.describe() for p in remaining)))
        except Exception:  # noqa: BLE001 - tryWithErrorDisplay has shown it
            return False
        if loadedBeforeInstall:
            restartNow = slicer.util.confirmYesNoDisplay(
                _("{packages} had already been loaded; the new versions are used after a restart. Restart 3D Slicer now?").format(
                    packages=", ".join(loadedBeforeInstall)),
                windowTitle=_("MedSAM-Agent: restart needed"),
            )
            if restartNow:
                slicer.util.restart()
            return False
        return True

    @staticmethod
    def _pytorchUtils():
        try:
            import PyTorchUtils

            return PyTorchUtils.PyTorchUtilsLogic()
        except ImportError:
            logging.info("PyTorch extension not installed: torch will be installed with pip")
            return None


class MedSAMAgentTest(ScriptedLoadableModuleTest):
    """The logic's checks (MedSAMAgentLogic.selftest, also run headless by pytest) inside
    Slicer, on the generated abdominal phantom with LiteMedSAM."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_logic_on_the_phantom()

    def test_logic_on_the_phantom(self):
        import tempfile
        from pathlib import Path

        from MedSAMAgentLib.phantom import abdominal_phantom
        from MedSAMAgentLogic import selftest
        from MedSAMAgentLogic.segmentation_logic import SegmentationLogic
        from MedSAMAgentLogic.volume_nodes import add_volume_node

        self.delayDisplay("Generating the phantom")
        volume, organs = abdominal_phantom()
        node = add_volume_node(slicer.mrmlScene, volume.array, volume.geometry.ijk_to_ras(), "phantom")
        kidney = organs["right kidney"]
        logic = SegmentationLogic(slicer.mrmlScene)
        for check in selftest.LOGIC_CHECKS:
            self.delayDisplay(check.__name__)
            check(slicer.mrmlScene, node, kidney, logic)
        self.delayDisplay("check_manual_prompts_from_settings")
        selftest.check_manual_prompts_from_settings(slicer.mrmlScene, node, kidney, logic, MedSAMAgentLogic().getParameterNode())
        with tempfile.TemporaryDirectory() as folder:
            selftest.check_seg_nrrd_round_trip(slicer.mrmlScene, node, kidney, Path(folder))
        self.delayDisplay("Test passed")
