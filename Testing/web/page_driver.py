"""Driving the workstation's page as a person does (clicks, typing, a mouse drag), and
waiting after each action on what the page shows once the session has done it: the
`data-*` serials and states the page sets (`MedSAMAgentLib/web/page.py`), never on time."""

from __future__ import annotations

import itertools
import json

import numpy as np
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

PAGE_SECONDS = 120  # a new session's process starts (scene, views) before its page answers
RUN_SECONDS = 600  # LiteMedSAM on two shared CPU cores


def attribute(driver, element_id: str, name: str) -> str:
    return driver.find_element(By.ID, element_id).get_attribute(name) or ""


def wait_for(driver, condition, seconds: float = 60, message: str = ""):
    """Until `condition()` holds; an element missing or replaced meanwhile (the page is
    loading or re-rendering) counts as not yet."""
    return WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda _: _holds_unless_detached(condition), message)


def _holds_unless_detached(condition):
    # Chromium reports an element re-rendered between finding and reading it as an
    # "unknown error" naming the detached node rather than as a stale element.
    try:
        return condition()
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return False
        raise


def wait_serial(driver, element_id: str, before: int, seconds: float = 60) -> None:
    """Until the session has processed the action: the element's data-serial has grown."""
    wait_for(driver, lambda: int(attribute(driver, element_id, "data-serial") or 0) > before, seconds,
             f"#{element_id} did not change; page says: {message(driver)}")


def serial(driver, element_id: str) -> int:
    return int(attribute(driver, element_id, "data-serial") or 0)


def message(driver) -> str:
    return driver.find_element(By.ID, "message").text


def open_page(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, PAGE_SECONDS).until(lambda d: d.find_elements(By.ID, "volume-name") and red_view(d).size["width"] > 0)
    wait_for(driver, lambda: attribute(driver, "red-geometry", "data-geometry"), PAGE_SECONDS)


def open_from_data_folder(driver, name: str) -> None:
    before = serial(driver, "volume-name")
    wait_for(driver, lambda: any(o.text == name for o in Select(driver.find_element(By.ID, "volume-choice")).options))
    Select(driver.find_element(By.ID, "volume-choice")).select_by_visible_text(name)
    wait_for(driver, lambda: driver.find_element(By.ID, "open-volume").is_enabled())
    driver.find_element(By.ID, "open-volume").click()
    wait_serial(driver, "volume-name", before)


def upload(driver, *paths) -> None:
    before = serial(driver, "message")
    driver.find_element(By.ID, "upload").send_keys("\n".join(str(path) for path in paths))
    wait_serial(driver, "message", before, seconds=PAGE_SECONDS)


def show_red_slice(driver, index: int) -> None:
    field = driver.find_element(By.ID, "red-slice")
    field.clear()
    field.send_keys(str(index))
    wait_for(driver, lambda: attribute(driver, "red-slice", "data-shown") == str(index), message="the red view did not move")


def set_object_end(driver, end: str, index: int) -> None:
    """Show slice `index` on the red view and make it the object's `end` ('first' or 'last')."""
    show_red_slice(driver, index)
    before = serial(driver, "range")
    driver.find_element(By.ID, f"range-{end}").click()
    wait_serial(driver, "range", before)


def red_view(driver):
    """The red view's image (the page shows it first)."""
    return driver.find_elements(By.CSS_SELECTOR, "img.image-display-area")[0]


def red_view_offset(driver, ras) -> tuple[int, int]:
    """Where patient point `ras` lies in the red view's image, as an offset in CSS pixels from
    the image's centre (what selenium's mouse moves take), from the view's own
    pixel-to-patient matrix that the page publishes."""
    geometry = json.loads(attribute(driver, "red-geometry", "data-geometry"))
    x, y = (np.linalg.inv(np.array(geometry["xy_to_ras"])) @ np.append(np.asarray(ras, float), 1.0))[:2]
    width, height = geometry["size"]
    image = red_view(driver).size
    scale_x, scale_y = image["width"] / width, image["height"] / height
    return round(x * scale_x - image["width"] / 2), round(image["height"] / 2 - y * scale_y)


def trace_on_red(driver, path_ras, steps: int = 4) -> None:
    """Press the left button on the first patient point of the red view, move through the
    others (`steps` moves along each leg), release on the last."""
    view = red_view(driver)
    offsets = [red_view_offset(driver, ras) for ras in path_ras]
    actions = ActionChains(driver, duration=50)
    actions.move_to_element_with_offset(view, *offsets[0]).click_and_hold()
    for start, end in itertools.pairwise(offsets):
        for step in range(1, steps + 1):
            actions.move_to_element_with_offset(view, round(start[0] + step / steps * (end[0] - start[0])),
                                                round(start[1] + step / steps * (end[1] - start[1])))
    actions.release().perform()


def place(driver, what: str) -> None:
    """Make clicks on the red view place `what`: 'box', 'positive' or 'negative' (points)."""
    if attribute(driver, "placing", "data-placing") != what:
        driver.find_element(By.ID, {"box": "draw-box", "positive": "positive-point", "negative": "negative-point"}[what]).click()
    wait_for(driver, lambda: attribute(driver, "placing", "data-placing") == what, message=f"placing {what} did not start")


def draw_box_on_red(driver, corner_ras, opposite_ras, steps: int = 4) -> None:
    """As Slicer places an ROI: click one corner, move to the opposite one, click."""
    before = serial(driver, "box")
    place(driver, "box")
    view = red_view(driver)
    start, end = red_view_offset(driver, corner_ras), red_view_offset(driver, opposite_ras)
    actions = ActionChains(driver, duration=50).move_to_element_with_offset(view, *start).click()
    for step in range(1, steps + 1):
        actions.move_to_element_with_offset(view, round(start[0] + step / steps * (end[0] - start[0])),
                                            round(start[1] + step / steps * (end[1] - start[1])))
    actions.click().perform()
    wait_serial(driver, "box", before)


def click_points_on_red(driver, kind: str, *points_ras) -> None:
    """Place positive or negative points with clicks on the red view."""
    place(driver, kind)
    for ras in points_ras:
        before = serial(driver, "points")
        ActionChains(driver, duration=50).move_to_element_with_offset(red_view(driver), *red_view_offset(driver, ras)).click().perform()
        wait_serial(driver, "points", before)


def edit_on_red(driver, tool: str, path_ras) -> None:
    """A stroke of the brush ('paint') or the eraser ('erase') along `path_ras`, or an
    outline traced with the scissors ('scissors'), on the red view."""
    driver.find_element(By.ID, {"paint": "brush", "erase": "eraser", "scissors": "scissors"}[tool]).click()
    wait_for(driver, lambda: attribute(driver, "tool", "data-tool") == tool, message=f"the {tool} tool was not taken up")
    before = serial(driver, "tool")
    trace_on_red(driver, path_ras, steps=8)
    wait_serial(driver, "tool", before)


def click_and_wait_run(driver, button: str = "segment", seconds: float = RUN_SECONDS) -> str:
    before = int(attribute(driver, "progress-text", "data-run-serial") or 0)
    driver.find_element(By.ID, button).click()
    wait_for(driver, lambda: int(attribute(driver, "progress-text", "data-run-serial") or 0) > before, seconds,
             "the run did not end")
    return attribute(driver, "progress-text", "data-run")


def save(driver, button: str = "save") -> str:
    """Click a save button ('save': .seg.nrrd, 'save-dicom', 'save-record'); the path saved."""
    before = serial(driver, "saved")
    driver.find_element(By.ID, button).click()
    wait_serial(driver, "saved", before)
    return attribute(driver, "saved", "data-path")


def segment_count(driver) -> int:
    return int(attribute(driver, "volume-name", "data-segments") or 0)
