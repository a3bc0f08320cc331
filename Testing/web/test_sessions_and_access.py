"""What makes the workstation safe to share: a key is asked for when there are keys, a bad
upload changes nothing, two sessions never see each other's volumes, and nothing outside
the data folder can be opened."""

from __future__ import annotations

import asyncio
import gzip
import http.cookiejar
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from selenium.webdriver.common.by import By

from MedSAMAgentLib import cli
from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.io.writers import write_volume
from MedSAMAgentLib.server.keys import add_key
from MedSAMAgentLib.web import gateway_secret
from MedSAMAgentLib.web.data_folder import DataFolder
from Testing.fixtures.browser import headless_chromium
from Testing.web.conftest import DEMO_VOLUME, running_workstation
from Testing.web.page_driver import PAGE_SECONDS, attribute, message, open_from_data_folder, open_page, upload, wait_for


def truncated_nifti(demo_phantom, folder):
    """The demo CT as a NIfTI with its last quarter cut off."""
    whole = write_volume(demo_phantom[0], folder / "whole.nii")
    truncated = folder / "truncated.nii.gz"
    data = whole.read_bytes()
    truncated.write_bytes(gzip.compress(data[: len(data) * 3 // 4]))
    return truncated


def test_truncated_nifti_upload_shows_the_error_and_changes_nothing(workstation, browser, demo_phantom, tmp_path):
    truncated = truncated_nifti(demo_phantom, tmp_path)
    with pytest.raises(InputImageError) as refused:  # what the command line says of the same file
        read_volume(truncated)
    driver = browser()
    open_page(driver, workstation.url)
    open_from_data_folder(driver, DEMO_VOLUME)
    upload(driver, truncated)
    assert message(driver) == str(refused.value)
    assert attribute(driver, "message", "data-kind") == "error"
    assert driver.find_element(By.ID, "volume-name").text == DEMO_VOLUME  # the open volume stays


def test_two_sessions_see_only_their_own_volumes(workstation, browser, demo_phantom, tmp_path):
    uploaded = write_volume(demo_phantom[0], tmp_path / "only_mine.nii.gz")
    first, second = browser("first"), browser("second")
    open_page(first, workstation.url)
    open_page(second, workstation.url)
    assert first.current_url != second.current_url  # each its own session (and process)
    open_from_data_folder(first, DEMO_VOLUME)
    upload(second, uploaded)
    assert second.find_element(By.ID, "volume-name").text == "only_mine.nii.gz"
    assert first.find_element(By.ID, "volume-name").text == DEMO_VOLUME
    open_page(first, workstation.url)  # the same browser gets its own session back, and nothing of the other's
    wait_for(first, lambda: first.find_element(By.ID, "volume-name").text == DEMO_VOLUME)
    second.get(first.current_url)  # another browser given the first one's address is sent to its own
    open_page(second, workstation.url)
    assert second.find_element(By.ID, "volume-name").text == "only_mine.nii.gz"


def test_a_wrong_key_is_refused_and_a_right_one_opens_a_session(browser, tmp_path, demo_phantom):
    key_file = tmp_path / "keys"
    key = add_key(key_file, "radiologist")
    with running_workstation(tmp_path, "--api-keys", str(key_file)) as station:
        driver = browser()
        driver.get(station.url)
        driver.find_element(By.ID, "key").send_keys("not-" + key)
        driver.find_element(By.ID, "login").click()
        wait_for(driver, lambda: "not accepted" in driver.find_element(By.ID, "login-error").text)
        assert not driver.find_elements(By.ID, "volume-name")
        driver.find_element(By.ID, "key").send_keys(key)
        driver.find_element(By.ID, "login").click()
        wait_for(driver, lambda: "/s/" in driver.current_url, PAGE_SECONDS, "the key did not open a session")
        open_page(driver, station.url)
        log = (tmp_path / "workstation.log").read_text()
        assert key not in log and "refused a key" in log


def test_listening_on_a_network_needs_keys(capsys):
    assert cli.main(["web", "--host", "0.0.0.0"]) == cli.EXIT_USER_ERROR
    assert "without keys" in capsys.readouterr().err


def test_nothing_outside_the_data_folder_opens(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "outside.nrrd").write_bytes(b"NRRD0004\n")
    (tmp_path / "data" / "link.nrrd").symlink_to(tmp_path / "outside.nrrd")
    folder = DataFolder(tmp_path / "data")
    for name in ("../outside.nrrd", "link.nrrd", str(tmp_path / "outside.nrrd")):
        with pytest.raises(InputImageError, match="not a volume in the data folder"):
            folder.resolve(name)


def test_the_command_line_starts_without_trame_or_models():
    loaded = subprocess.run([sys.executable, "-c", "import sys, MedSAMAgentLib.cli; "
                             "print(sorted({m.split('.')[0] for m in sys.modules} & {'trame', 'trame_slicer', 'vtk', 'slicer', 'torch'}))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_closed_page_ends_its_session(tmp_path):
    with running_workstation(tmp_path, "--idle-exit", "2") as station:
        with headless_chromium(tmp_path / "closing") as driver:
            open_page(driver, station.url)
            assert "ended" not in (tmp_path / "workstation.log").read_text()
        deadline = time.monotonic() + 60
        while "ended (status 0)" not in (tmp_path / "workstation.log").read_text():
            assert time.monotonic() < deadline, "the session's process outlived its page"
            time.sleep(0.2)


def session_processes(gateway_pid: int) -> list[list[str]]:
    """The command lines of the gateway's session processes (read from Linux's /proc)."""
    command_lines = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command_line = (stat.parent / "cmdline").read_bytes().decode().split("\0")
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        if parent == gateway_pid and "MedSAMAgentLib.web.session_app" in command_line:
            command_lines.append(command_line)
    return command_lines


async def open_websocket(url: str, headers: dict[str, str]) -> int | None:
    """None when `url` accepts the websocket, else the status of the refusal."""
    async with aiohttp.ClientSession() as client:
        try:
            async with client.ws_connect(url, headers=headers):
                return None
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status


def test_a_sessions_process_answers_only_the_gateway(tmp_path):
    """Each session's process listens on localhost: a local program going there directly,
    past the gateway's key and cookie checks, gets nothing, even with a made-up secret."""
    with running_workstation(tmp_path) as station:
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(station.url, timeout=120) as page:  # opens a session, through the gateway
            assert page.status == 200 and "/s/" in page.url
        [command_line] = session_processes(station.process.pid)
        port = command_line[command_line.index("--port") + 1]
        assert not any(gateway_secret.ENVIRONMENT in part for part in command_line)
        with browser.open(page.url, timeout=30) as again:  # the gateway still gets through
            assert again.status == 200
        for headers in ({}, {gateway_secret.HEADER: "guessed"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers), timeout=30)
            assert refused.value.code == 403
            assert asyncio.run(open_websocket(f"ws://127.0.0.1:{port}/ws", headers)) == 403


def test_a_session_process_will_not_start_without_the_gateways_secret(tmp_path):
    environment = {name: value for name, value in os.environ.items() if name != gateway_secret.ENVIRONMENT}
    started = subprocess.run([sys.executable, "-m", "MedSAMAgentLib.web.session_app", "--port", "1", "--output", str(tmp_path)],
                             capture_output=True, text=True, env=environment, timeout=60)
    assert started.returncode != 0
    assert gateway_secret.ENVIRONMENT in started.stderr
