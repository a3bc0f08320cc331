"""A DICOM series opened from the data folder and uploaded file by file, a typed target segmented by the agent (behind a
scripted OpenAI-compatible endpoint), the agent's turns shown with their pictures, and the
result saved as DICOM SEG and the agent's record folder, both read back."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from selenium.webdriver.common.by import By

from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.records import RECORD_FILE
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.phantom import DEMO_TARGET
from MedSAMAgentLib.prompts import Box
from Testing.engine.test_dicom_seg import seg_masks_by_pydicom
from Testing.fixtures.dicom_series import write_volume_series
from Testing.web.page_driver import (
    attribute,
    click_and_wait_run,
    message,
    open_from_data_folder,
    open_page,
    save,
    show_red_slice,
    upload,
    wait_for,
)

AGENT_DICE_FLOOR = 0.9  # the agent's box has 3 pixels of margin, the demo's 4


def agent_answers(volume, truth) -> tuple[int, list[dict]]:
    """The key slice, and the agent's answers on it: a box around the kidney, then stop."""
    plane = SlicePlane.for_view(volume.geometry, "axial")
    stack = plane.to_display(truth)
    present = np.flatnonzero(stack.any(axis=(1, 2)))
    key = int(present[len(present) // 2])
    letterbox = Letterbox.fit(plane.image_shape, plane.pixel_spacing)
    box = Box.around(stack[key], 3)
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    return key, [{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}, {"content": tool_call_text("stop_action", {})}]


def test_a_dicom_series_opened_or_uploaded_and_segmented_by_the_agent_saves_dicom_seg_and_the_record(workstation, browser, demo_phantom, agent_endpoint):
    phantom, organs = demo_phantom
    series = write_volume_series(workstation.data / "dicom_ct", phantom.array, (1.0, 1.0, 4.0), (0.0, 0.0, 0.0))
    volume = read_volume(workstation.data / "dicom_ct", log=lambda *_: None)
    truth = organs[DEMO_TARGET]  # the series keeps the phantom's voxel order
    driver = browser()
    open_page(driver, workstation.url)
    open_from_data_folder(driver, "dicom_ct/")
    assert driver.find_element(By.ID, "volume-name").text == "dicom_ct" and attribute(driver, "volume-name", "data-dicom") == "true"
    upload(driver, *series.paths)
    assert attribute(driver, "message", "data-kind") != "error", message(driver)
    assert driver.find_element(By.ID, "volume-name").text == "dicom-series" and attribute(driver, "volume-name", "data-dicom") == "true"

    key, answers = agent_answers(volume, truth)
    show_red_slice(driver, key)
    agent_endpoint.steps[:] = answers
    driver.find_element(By.ID, "targets").send_keys(DEMO_TARGET)
    assert click_and_wait_run(driver) == "done", message(driver)

    # The agent's turns, each with the picture it saw.
    wait_for(driver, lambda: int(attribute(driver, "turns", "data-count") or 0) >= 3)
    lines = [line.text for line in driver.find_elements(By.CSS_SELECTOR, "#turns .turn")]
    assert lines[0].startswith(f"key slice {key}: ended by stop_action"), lines
    assert [line.split(": ", 1)[1].split(" ")[0] for line in lines[1:]] == ["box", "stop"], lines
    pictures = driver.find_elements(By.CSS_SELECTOR, "#turns img.turn-picture")
    assert len(pictures) == 2
    for picture in pictures:
        source = picture.get_attribute("src")
        assert source.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).size[0] > 100

    seg_path = Path(save(driver, "save-dicom"))
    assert seg_path.name == "dicom-series.dcm"
    seg = pydicom.dcmread(str(seg_path))
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == DEMO_TARGET
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.dicom.series_uid
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert dice(seg_masks_by_pydicom(seg_path, volume.geometry)[0], truth) >= AGENT_DICE_FLOOR

    record = Path(save(driver, "save-record"))
    assert record.is_dir() and record.parent == seg_path.parent
    saved = json.loads((record / RECORD_FILE).read_text())
    assert saved["outcome"]["status"] == "done" and saved["outcome"]["target"] == DEMO_TARGET
    assert len(list(record.rglob("turn*.png"))) == 2
