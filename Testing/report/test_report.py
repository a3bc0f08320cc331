"""The HTML report, opened in a real headless Chromium: `eval --report` over real anatomy
(a CT head and an MNI T1 brain) with the simulated clinician and with a scripted endpoint
policy, and `report` over both evaluations and over a single record."""

from __future__ import annotations

import csv
import statistics

import numpy as np
import pytest
from PIL import Image

from MedSAMAgentLib import cli
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.records import read_records, write_records
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.prompts import Box
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.anatomy import ct_head, mni_t1
from Testing.fixtures.browser import broken_images, console_errors, headless_chromium
from Testing.fixtures.chat_server import ScriptedChatServer
from Testing.fixtures.records import two_runs

ROUNDS = 5


@pytest.fixture(scope="module")
def brain_manifest(tmp_path_factory):
    """Three 2D cases of real anatomy: two axial slices of the CT head, one of the MNI T1."""
    folder = tmp_path_factory.mktemp("brains")
    rows, truths = [], []
    for name, (path, brain), window, offset in (("ct", ct_head(), "brain", 0), ("ct", ct_head(), "brain", -18), ("t1", mni_t1(), None, 0)):
        frames = slice_frames(read_volume(path, log=lambda _: None), "axial", window)
        truth = frames.plane.to_display(brain)
        index = int(np.argmax(truth.sum(axis=(1, 2)))) + offset
        stem = f"{name}_{index}"
        Image.fromarray(frames[index]).save(folder / f"{stem}.png")
        Image.fromarray(truth[index].astype(np.uint8) * 255).save(folder / f"{stem}_mask.png")
        description = f"brain in {'head CT' if name == 'ct' else 'T1 MRI'}"
        rows.append({"image": f"{stem}.png", "mask": f"{stem}_mask.png", "description": description})
        truths.append(truth[index])
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "mask", "description"])
        writer.writeheader()
        writer.writerows(rows)
    return path, truths


def scripted_answers(truths) -> list[dict]:
    """The scripted policy: a tight box then stop; a loose box, a click at the brain's
    centre, then stop; an endpoint that refuses the third case (a failed case)."""
    def grid_box(truth, margin):
        letterbox, box = Letterbox.fit(truth.shape), Box.around(truth, margin)
        grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
        return {"content": tool_call_text("add_bbox", {"bbox_2d": grid})}

    rows, cols = np.nonzero(truths[1])
    centre = Letterbox.fit(truths[1].shape).to_grid(float(cols.mean()), float(rows.mean()))
    stop = {"content": tool_call_text("stop_action", {})}
    click = {"content": tool_call_text("add_point", {"point_2d": list(centre), "point_type": "positive"})}
    return [grid_box(truths[0], 3), stop, grid_box(truths[1], 25), click, stop, {"status": 400, "body": "model not loaded"}]


def cases_table(folder) -> list[dict]:
    with open(folder / "cases.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def carried_mean(series: list[list[float]]) -> list[float]:
    """Mean Dice after each round, a case that stopped keeping its last value."""
    filled = [s + [s[-1]] * (ROUNDS - len(s)) for s in series if s]
    return [statistics.fmean(s[r] for s in filled) for r in range(ROUNDS)] if filled else []


def numbers(text: str) -> list[float]:
    return [float(value) for value in text.split(";") if value]


def check_page(driver, page, evaluations: dict) -> None:
    """The page loads without a console error, every image decodes, and it shows every
    case of `evaluations` ({folder: policy}) with the numbers of their cases.csv."""
    driver.get(page.as_uri())
    assert console_errors(driver) == [] and broken_images(driver) == []
    sections = driver.find_elements("css selector", "section.case")
    rows = [(folder, row) for folder in evaluations for row in cases_table(folder)]
    assert len(sections) == len(rows) == int(driver.find_element("id", "case-count").text)
    for section, (folder, row) in zip(sections, rows):
        assert section.get_attribute("data-policy") == evaluations[folder] == row["policy"]
        assert section.find_element("css selector", "td.case-dice").text == f"{float(row['dice']):.4f}"
        assert row["description"] in section.find_element("tag name", "h2").text
        _, records = read_records(folder / row["record"])
        key_runs = section.find_elements("css selector", 'details.run[data-role="key"]')
        assert len(key_runs) == len(records) == 1
        turns = key_runs[0].find_elements("css selector", "figure.turn")
        assert len(turns) == len(records[0].turns)  # every turn shown, each with its picture
        assert all(turn.find_element("tag name", "img").get_attribute("src").startswith("data:image/png;base64,") for turn in turns)
        shown = [float(span.text) for span in key_runs[0].find_elements("css selector", ".turn-dice")]
        assert shown == pytest.approx(numbers(row["round_dice"]), abs=1e-4)
        if row["error"]:
            assert section.find_element("css selector", "p.error").text == row["error"]
    summary = {tr.get_attribute("data-group"): tr for tr in driver.find_elements("css selector", "#summary tr[data-group]")}
    curves = {(tr.get_attribute("data-group"), tr.get_attribute("class")): [float(td.text) for td in tr.find_elements("tag name", "td")[2:]]
              for tr in driver.find_elements("css selector", "#rounds tr[data-group]")}
    groups: dict[str, list[dict]] = {}
    for _, row in rows:
        groups.setdefault(f"{row['description']} · {row['policy']}", []).append(row)
    assert set(summary) == set(groups)
    for label, members in groups.items():
        assert int(summary[label].find_element("css selector", ".cases").text) == len(members)
        assert float(summary[label].find_element("css selector", ".mean-dice").text) == pytest.approx(
            statistics.fmean(float(r["dice"]) for r in members), abs=1e-4)
        assert curves.get((label, "policy"), []) == pytest.approx(carried_mean([numbers(r["round_dice"]) for r in members]), abs=1e-4)
        reference = carried_mean([numbers(r["clinician_round_dice"]) for r in members])
        assert curves.get((label, "clinician"), []) == pytest.approx(reference, abs=1e-4)
    for plot in ("dice-distribution", "round-dice"):
        assert driver.find_element("id", plot).get_attribute("naturalWidth") != "0"


def test_eval_reports_render_in_chromium_with_the_numbers_of_cases_csv(tmp_path, brain_manifest):
    manifest, truths = brain_manifest
    clinician, scripted = tmp_path / "clinician", tmp_path / "scripted"
    assert cli.main(["eval", str(manifest), "-o", str(clinician), "--policy", "clinician", "--report"]) == 0
    with ScriptedChatServer(scripted_answers(truths)) as model:
        assert cli.main(["eval", str(manifest), "-o", str(scripted), "--policy", "endpoint", "--endpoint", model.url, "--report"]) == 0
    by_clinician, by_script = cases_table(clinician), cases_table(scripted)
    assert [float(row["dice"]) >= 0.85 for row in by_clinician] == [True, True, False]  # LiteMedSAM is weak on the T1 brain
    assert all(float(row["dice"]) > 0.3 and not row["clinician_round_dice"] for row in by_clinician)
    assert [row["actions"] for row in by_script] == ["1", "2", "0"] and "HTTP 400" in by_script[2]["error"]
    assert all(row["clinician_round_dice"] for row in by_script[:2])  # the reference, beside the policy's rounds
    combined = tmp_path / "both.html"
    assert cli.main(["report", str(scripted), str(clinician), "-o", str(combined)]) == 0
    with headless_chromium(tmp_path / "profile") as driver:
        check_page(driver, clinician / "report.html", {clinician: "clinician"})
        check_page(driver, scripted / "report.html", {scripted: "endpoint"})
        check_page(driver, combined, {scripted: "endpoint", clinician: "clinician"})


def test_report_of_one_record(tmp_path, capsys):
    records, _ = two_runs()
    folder = write_records(records, tmp_path / "record", {"status": "failed", "error": "the agent found no 'liver' on slice 12"})
    assert cli.main(["report", str(folder)]) == 0
    page = folder / "report.html"
    assert cli.main(["report", str(folder)]) == cli.EXIT_USER_ERROR
    assert f"{page} exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["report", str(folder), "-o", str(tmp_path / "report.txt")]) == cli.EXIT_USER_ERROR
    assert cli.main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "r.html")]) == cli.EXIT_USER_ERROR
    assert "holds neither an evaluation (cases.csv) nor an agent record (trajectory.json)" in capsys.readouterr().err
    with headless_chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        assert console_errors(driver) == [] and broken_images(driver) == []
        [case] = driver.find_elements("css selector", "section.case")
        assert case.find_element("css selector", "p.error").text == "the agent found no 'liver' on slice 12"
        assert driver.find_elements("css selector", "#evaluation") == []  # no evaluation, no plots
        runs = case.find_elements("css selector", "details.run")
        assert [run.get_attribute("data-role") for run in runs] == ["key", "review"]
        assert [len(run.find_elements("css selector", "figure.turn")) for run in runs] == [len(r.turns) for r in records]
        assert [s.text for s in runs[0].find_elements("css selector", ".turn-dice")] == [f"{records[0].turns[0].dice:.4f}"]
