"""`medsam-agent web --server URL`: the workstation sends every job to a department server
(`medsam-agent serve`, started on localhost by the session's `server` fixture) with the key
in its environment; a box drawn in the page segments the right kidney there."""

from __future__ import annotations

from MedSAMAgentLib.io.writers import write_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.phantom import DEMO_TARGET
from MedSAMAgentLib.remote import SERVER_KEY_ENV
from Testing.web.conftest import DEMO_VOLUME, running_workstation
from Testing.web.page_driver import click_and_wait_run, draw_box_on_red, message, save
from Testing.web.test_segment_in_browser import DEMO_DICE_FLOOR, labels_of, open_demo_on_kidney_slice


def test_a_box_segments_on_the_department_server(server, keys, browser, demo_phantom, tmp_path):
    volume, organs = demo_phantom
    (tmp_path / "data").mkdir()
    write_volume(volume, tmp_path / "data" / DEMO_VOLUME)
    jobs_before = server.jobs()
    with running_workstation(tmp_path, "--server", server.url, environment={SERVER_KEY_ENV: keys[1]["alice"]}) as station:
        driver = browser()
        _, corners = open_demo_on_kidney_slice(driver, station.url, volume, organs[DEMO_TARGET])
        draw_box_on_red(driver, *corners)
        assert click_and_wait_run(driver) == "done", message(driver)
        assert dice(labels_of(save(driver)), organs[DEMO_TARGET]) >= DEMO_DICE_FLOOR
    # The server segmented it (the volume itself is uploaded only if an earlier test of the
    # session has not already stored the same one there).
    assert server.jobs() == jobs_before + 1
    assert keys[1]["alice"] not in (tmp_path / "workstation.log").read_text()
