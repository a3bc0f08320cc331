"""The demo's job through the page: open the demo CT from the data folder, draw a box
around the right kidney on the red view with the mouse, segment, save, and read the saved
`.seg.nrrd` back; edit with the brush and the scissors, re-run, propagate, undo; a box
with points; a box on a further slice grows the segment, and cancelling that run changes
nothing; the object's first and last slices set on the page bound the run. A screenshot
shows the segment where the kidney is and is kept for the README."""

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
    click_points_on_red,
    draw_box_on_red,
    edit_on_red,
    message,
    open_from_data_folder,
    open_page,
    red_view,
    red_view_offset,
    save,
    segment_count,
    serial,
    set_object_end,
    show_red_slice,
    wait_for,
)

DEMO_DICE_FLOOR = 0.95  # Testing/engine/test_demo.py: the demo's own floor
GROWN_SLICE_DICE_FLOOR = 0.9  # the slice a box grew the segment from, against the truth
SCREENSHOT = Path(__file__).resolve().parents[2] / "Resources" / "Screenshots" / "web_workstation.png"


def demo_box_ras(volume, truth, key: int | None = None):
    """The demo's box (on the kidney's middle slice unless given `key`, 4 pixels of margin)
    as two RAS corners, and that slice."""
    frames = slice_frames(volume, "axial")
    stack = frames.plane.to_display(truth)
    if key is None:
        present = np.flatnonzero(stack.any(axis=(1, 2)))
        key = int(present[len(present) // 2])
    box = Box.around(stack[key], margin=BOX_MARGIN_PIXELS)
    ijk = {(x, y): np.array([x, y, key, 1.0]) for x in (box.x0, box.x1) for y in (box.y0, box.y1)}
    # The axial display image of this phantom (identity direction) has columns along i, rows along j.
    corners = [(volume.geometry.ijk_to_ras() @ ijk[(x, y)])[:3] for x, y in ((box.x0, box.y0), (box.x1, box.y1))]
    return key, corners


def open_demo_on_kidney_slice(driver, url: str, volume, truth):
    """The demo CT opened from the data folder, the red view on the kidney's middle slice:
    that slice and the demo's box corners (RAS) there."""
    open_page(driver, url)
    open_from_data_folder(driver, DEMO_VOLUME)
    key, corners = demo_box_ras(volume, truth)
    show_red_slice(driver, key)
    return key, corners


def centre_ras(volume, mask, index) -> np.ndarray:
    """The patient point at the middle of `mask` on axial slice `index`."""
    j, i = np.argwhere(mask[index]).mean(axis=0)
    return (volume.geometry.ijk_to_ras() @ np.array([i, j, index, 1.0]))[:3]


def right_of(volume, index, r_mm) -> np.ndarray:
    """The voxels of axial slice `index` lying further right-to-left (larger R) than `r_mm`."""
    j, i = np.indices(volume.array.shape[1:])
    ras = np.einsum("ab,bji->aji", volume.geometry.ijk_to_ras(), np.stack([i, j, np.full_like(i, index), np.ones_like(i)]))
    return ras[0] > r_mm


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
    key, corners = open_demo_on_kidney_slice(driver, workstation.url, volume, truth)
    assert kidney_colour_share(driver, volume, truth, key) < 0.1  # nothing drawn yet
    driver.find_element(By.ID, "segment-name").send_keys(DEMO_TARGET)  # sent before the box, which the page confirms
    draw_box_on_red(driver, *corners)

    assert click_and_wait_run(driver) == "done", message(driver)
    assert segment_count(driver) == 1
    saved = Path(save(driver))
    assert saved.parent.parent == workstation.output and saved.name == "sample_abdomen_ct.seg.nrrd"
    segmentation = sitk.ReadImage(str(saved))
    assert segmentation.GetMetaData("Segment0_Name") == DEMO_TARGET
    labels = labels_of(str(saved))
    assert labels.shape == truth.shape
    assert dice(labels, truth) >= DEMO_DICE_FLOOR

    wait_for(driver, lambda: kidney_colour_share(driver, volume, truth, key) > 0.8, message="the segment is not shown on the kidney")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView()", driver.find_element(By.TAG_NAME, "h3"))  # the panel from its top
    driver.save_screenshot(str(SCREENSHOT.with_suffix(".new.png")))
    shutil.move(SCREENSHOT.with_suffix(".new.png"), SCREENSHOT)

    # Paint on one slice, cut with the scissors on another, re-run: both slices are kept voxel for voxel.
    painted_slice, cut_slice = key + 3, key - 3
    show_red_slice(driver, painted_slice)
    centre = centre_ras(volume, truth, painted_slice)
    edit_on_red(driver, "paint", [centre, centre + [30.0, 0.0, 0.0]])
    painted = labels_of(save(driver))
    assert painted[painted_slice].sum() > labels[painted_slice].sum() + 20  # the stroke reached beyond the kidney
    np.testing.assert_array_equal(np.delete(painted, painted_slice, axis=0), np.delete(labels, painted_slice, axis=0))

    show_red_slice(driver, cut_slice)
    centre = centre_ras(volume, truth, cut_slice)
    # Around the kidney's right half (it reaches 17 mm right and 15 mm front and back of its
    # centre), clear of the view's bottom edge, where the page's slice controls lie over it.
    outline = [centre + [dr, da, 0.0] for dr, da in ((0, -22), (25, -22), (25, 22), (0, 22), (0, -22))]
    edit_on_red(driver, "scissors", outline)
    cut = labels_of(save(driver))
    inside, outside = right_of(volume, cut_slice, centre[0] + 2), ~right_of(volume, cut_slice, centre[0] - 2)  # a pixel's margin
    assert painted[cut_slice][inside].any() and not cut[cut_slice][inside].any()  # cut inside the outline
    assert cut[cut_slice][outside].any()
    np.testing.assert_array_equal(cut[cut_slice][outside], painted[cut_slice][outside])  # kept outside it
    np.testing.assert_array_equal(np.delete(cut, cut_slice, axis=0), np.delete(painted, cut_slice, axis=0))

    assert click_and_wait_run(driver, "rerun") == "done", message(driver)
    rerun = labels_of(save(driver))
    np.testing.assert_array_equal(rerun[painted_slice], cut[painted_slice])
    np.testing.assert_array_equal(rerun[cut_slice], cut[cut_slice])

    # Propagate from the key slice as it stands: it is kept, and the slices edited before
    # are followed from it again.
    show_red_slice(driver, key)
    assert click_and_wait_run(driver, "propagate") == "done", message(driver)
    propagated = labels_of(save(driver))
    np.testing.assert_array_equal(propagated[key], rerun[key])
    assert dice(propagated, truth) >= DEMO_DICE_FLOOR
    assert propagated[cut_slice][inside].any()  # the half cut away is back

    for remaining in (1, 1, 0):  # the propagation, the re-run, then the first run, taken back (the segment goes with it)
        before = int(driver.find_element(By.ID, "message").get_attribute("data-serial"))
        driver.find_element(By.ID, "undo").click()
        wait_for(driver, lambda: int(driver.find_element(By.ID, "message").get_attribute("data-serial")) > before)
        assert segment_count(driver) == remaining
    show_red_slice(driver, key)
    wait_for(driver, lambda: kidney_colour_share(driver, volume, truth, key) < 0.1, message="the undone segment is still shown")


def labels_of(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path)) > 0


def test_a_box_with_points_then_a_box_on_a_further_slice_grows_the_segment_and_cancel_changes_nothing(workstation, browser, demo_phantom):
    volume, organs = demo_phantom
    truth = organs[DEMO_TARGET]
    driver = browser()
    key, corners = open_demo_on_kidney_slice(driver, workstation.url, volume, truth)
    draw_box_on_red(driver, *corners)

    # The box with points: a positive one in the kidney, a negative one in the box's corner.
    negative = corners[0] + 0.1 * (np.asarray(corners[1]) - corners[0])
    click_points_on_red(driver, "positive", centre_ras(volume, truth, key))
    click_points_on_red(driver, "negative", negative)
    assert driver.find_element(By.ID, "points").text == f"1 positive (slice {key}), 1 negative (slice {key})"
    assert click_and_wait_run(driver) == "done", message(driver)
    first = labels_of(save(driver))
    assert dice(first, truth) >= DEMO_DICE_FLOOR
    i, j, k = np.rint(np.linalg.inv(volume.geometry.ijk_to_ras()) @ [*negative, 1.0])[:3].astype(int)
    assert k == key and not first[k, j, i]

    # A box on a slice the run did not start from: cancelled, it changes nothing; run, it
    # grows the segment, keeping the slices it cannot reach (the key slice and beyond)
    # voxel for voxel.
    driver.find_element(By.ID, "clear-prompts").click()
    wait_for(driver, lambda: driver.find_element(By.ID, "points").text == "no points" and driver.find_element(By.ID, "box").text == "no box")
    grown_from, box_corners = key + 4, demo_box_ras(volume, truth, key + 4)[1]
    show_red_slice(driver, grown_from)
    draw_box_on_red(driver, *box_corners)
    driver.find_element(By.ID, "segment").click()
    wait_for(driver, lambda: driver.find_element(By.ID, "progress-text").get_attribute("data-run") == "running")
    wait_for(driver, lambda: driver.find_element(By.ID, "cancel").is_enabled())
    driver.find_element(By.ID, "cancel").click()
    wait_for(driver, lambda: driver.find_element(By.ID, "progress-text").get_attribute("data-run") != "running", seconds=60)
    assert driver.find_element(By.ID, "progress-text").get_attribute("data-run") == "cancelled"
    assert "nothing was changed" in message(driver)
    np.testing.assert_array_equal(labels_of(save(driver)), first)

    assert click_and_wait_run(driver) == "done", message(driver)
    assert segment_count(driver) == 1
    grown = labels_of(save(driver))
    np.testing.assert_array_equal(grown[: key + 1], first[: key + 1])
    assert dice(grown[grown_from], truth[grown_from]) >= GROWN_SLICE_DICE_FLOOR


def test_the_objects_slices_set_on_the_page_bound_the_run(workstation, browser, demo_phantom):
    volume, organs = demo_phantom
    truth = organs[DEMO_TARGET]
    driver = browser()
    key, corners = open_demo_on_kidney_slice(driver, workstation.url, volume, truth)
    kidney = np.flatnonzero(truth.any(axis=(1, 2)))
    first, last = key - 3, key + 2  # inside the kidney: without them the run would go on
    assert kidney[0] < first and last < kidney[-1]
    set_object_end(driver, "last", last)  # the ends in either order
    assert driver.find_element(By.ID, "range").text == f"last slice {last}: set the other end too"
    show_red_slice(driver, key)
    draw_box_on_red(driver, *corners)
    before = serial(driver, "message")
    driver.find_element(By.ID, "segment").click()  # one end alone: refused before any work
    wait_for(driver, lambda: serial(driver, "message") > before)
    assert "set both of the object's end slices" in message(driver) and segment_count(driver) == 0

    set_object_end(driver, "first", first)
    assert driver.find_element(By.ID, "range").text == f"object on slices {first} to {last}"
    show_red_slice(driver, key)
    assert click_and_wait_run(driver) == "done", message(driver)
    labels = labels_of(save(driver))
    np.testing.assert_array_equal(np.flatnonzero(labels.any(axis=(1, 2))), np.arange(first, last + 1))
    assert dice(labels[first:last + 1], truth[first:last + 1]) >= DEMO_DICE_FLOOR
