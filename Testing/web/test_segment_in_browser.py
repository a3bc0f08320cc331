"""The demo's job through the page: open the demo CT from the data folder, draw a box
around the right kidney on the red view with the mouse, segment, save, and read the saved
`.seg.nrrd` back; undo; cancel. A screenshot shows the segment where the kidney is and is
kept for the README."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from selenium.webdriver.common.by import By

from MedSAMAgentLib.anatomy import segment_style
from MedSAMAgentLib.cli.demo import BOX_MARGIN_PIXELS
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.phantom import DEMO_TARGET
from MedSAMAgentLib.prompts import Box
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.web.conftest import DEMO_VOLUME
from Testing.web.page_driver import (
    click_and_wait_run,
    draw_box_on_red,
    open_from_data_folder,
    open_page,
    paint_on_red,
    red_view,
    red_view_offset,
    save_seg_nrrd,
    segment_count,
    show_red_slice,
    wait_for,
)

DEMO_DICE_FLOOR = 0.95  # Testing/engine/test_demo.py: the demo's own floor
SCREENSHOT = Path(__file__).resolve().parents[2] / "Resources" / "Screenshots" / "web_workstation.png"


def demo_box_ras(volume, truth):
    """The demo's box (the kidney's middle slice, 4 pixels of margin) as two RAS corners,
    and that slice."""
    frames = slice_frames(volume, "axial")
    stack = frames.plane.to_display(truth)
    present = np.flatnonzero(stack.any(axis=(1, 2)))
    key = int(present[len(present) // 2])
    box = Box.around(stack[key], margin=BOX_MARGIN_PIXELS)
    ijk = {(x, y): np.array([x, y, key, 1.0]) for x in (box.x0, box.x1) for y in (box.y0, box.y1)}
    # The axial display image of this phantom (identity direction) has columns along i, rows along j.
    corners = [(volume.geometry.ijk_to_ras() @ ijk[(x, y)])[:3] for x, y in ((box.x0, box.y0), (box.x1, box.y1))]
    return key, corners


def kidney_colour_share(driver, volume, truth, key) -> float:
    """The share of the kidney's pixels in the red view's screenshot drawn in the segment's
    colour (the fill blends it with the CT beneath)."""
    view = red_view(driver)
    image = np.asarray(Image.open(io.BytesIO(view.screenshot_as_png)).convert("RGB")).astype(float)
    colour = np.array(segment_style(DEMO_TARGET).colour) * 255
    inside = np.argwhere(truth[key])[::7]  # (j, i) voxels of the kidney on the key slice
    hits = 0
    for j, i in inside:
        ras = (volume.geometry.ijk_to_ras() @ np.array([i, j, key, 1.0]))[:3]
        x, y = red_view_offset(driver, ras)
        pixel = image[y + image.shape[0] // 2, x + image.shape[1] // 2]
        grey = pixel.mean()
        hits += np.dot(pixel - grey, colour - colour.mean()) > 0.3 * np.linalg.norm(colour - colour.mean()) * np.linalg.norm(pixel - grey + 1e-6)
    return hits / len(inside)


def test_box_drawn_with_the_mouse_segments_the_right_kidney(workstation, browser, demo_phantom):
    volume, organs = demo_phantom
    truth = organs[DEMO_TARGET]
    driver = browser()
    open_page(driver, workstation.url)
    open_from_data_folder(driver, DEMO_VOLUME)
    key, corners = demo_box_ras(volume, truth)
    show_red_slice(driver, key)
    assert kidney_colour_share(driver, volume, truth, key) < 0.1  # nothing drawn yet
    driver.find_element(By.ID, "segment-name").send_keys(DEMO_TARGET)  # sent before the box, which the page confirms
    draw_box_on_red(driver, *corners)

    assert click_and_wait_run(driver) == "done", driver.find_element(By.ID, "message").text
    assert segment_count(driver) == 1
    saved = Path(save_seg_nrrd(driver))
    assert saved.parent.parent == workstation.output and saved.name == "sample_abdomen_ct.seg.nrrd"
    segmentation = sitk.ReadImage(str(saved))
    assert segmentation.GetMetaData("Segment0_Name") == DEMO_TARGET
    labels = labels_of(str(saved))
    assert labels.shape == truth.shape
    assert dice(labels, truth) >= DEMO_DICE_FLOOR

    wait_for(driver, lambda: kidney_colour_share(driver, volume, truth, key) > 0.8, message="the segment is not shown on the kidney")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT.with_suffix(".new.png")))
    shutil.move(SCREENSHOT.with_suffix(".new.png"), SCREENSHOT)

    # Paint on another slice, re-run: that slice is kept voxel for voxel.
    edited = key + 3
    show_red_slice(driver, edited)
    centre = (volume.geometry.ijk_to_ras() @ np.array([*np.argwhere(truth[edited]).mean(axis=0)[::-1], edited, 1.0]))[:3]
    paint_on_red(driver, "paint", centre, centre + np.array([30.0, 0.0, 0.0]))
    painted = labels_of(save_seg_nrrd(driver))
    assert painted[edited].sum() > labels[edited].sum() + 20  # the stroke reached beyond the kidney
    np.testing.assert_array_equal(np.delete(painted, edited, axis=0), np.delete(labels, edited, axis=0))
    assert click_and_wait_run(driver, "rerun") == "done", driver.find_element(By.ID, "message").text
    rerun = labels_of(save_seg_nrrd(driver))
    np.testing.assert_array_equal(rerun[edited], painted[edited])

    for remaining in (1, 0):  # the re-run, then the first run, taken back
        before = int(driver.find_element(By.ID, "message").get_attribute("data-serial"))
        driver.find_element(By.ID, "undo").click()
        wait_for(driver, lambda: int(driver.find_element(By.ID, "message").get_attribute("data-serial")) > before)
        assert segment_count(driver) == remaining
    show_red_slice(driver, key)
    wait_for(driver, lambda: kidney_colour_share(driver, volume, truth, key) < 0.1, message="the undone segment is still shown")


def labels_of(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path)) > 0


def test_cancel_leaves_the_segmentation_unchanged(workstation, browser, demo_phantom):
    volume, organs = demo_phantom
    driver = browser()
    open_page(driver, workstation.url)
    open_from_data_folder(driver, DEMO_VOLUME)
    key, corners = demo_box_ras(volume, organs[DEMO_TARGET])
    show_red_slice(driver, key)
    draw_box_on_red(driver, *corners)
    driver.find_element(By.ID, "segment").click()
    wait_for(driver, lambda: driver.find_element(By.ID, "progress-text").get_attribute("data-run") == "running")
    wait_for(driver, lambda: driver.find_element(By.ID, "cancel").is_enabled())
    driver.find_element(By.ID, "cancel").click()
    wait_for(driver, lambda: driver.find_element(By.ID, "progress-text").get_attribute("data-run") != "running", seconds=60)
    assert driver.find_element(By.ID, "progress-text").get_attribute("data-run") == "cancelled"
    assert "nothing was changed" in driver.find_element(By.ID, "message").text
    assert segment_count(driver) == 0
