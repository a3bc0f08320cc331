"""`medsam-agent eval`: score a policy on a manifest of images or volumes with ground truth.

Manifest: CSV with a header, or JSON (a list of objects), with columns `image`, `mask`,
`description` and optionally `slice`, `axis` and `labels`; paths are relative to the
manifest. Several targets per case: `description` lists them separated by ';' ("liver;
spleen") and `mask` is a label map whose label n is the n-th target, or `labels` gives
each target's label ("6;1"); each target is scored as its own row. A 2D
image (PNG, JPEG) is one agent loop; a volume is the full flow (key slice from the `slice`
column, else the ground truth's largest cross-section, else the agent's own search with
`find_slice`), then propagation.

Per case: Dice, IoU, normalised surface Dice at a tolerance (mm; pixels for 2D images),
HD95, number of actions, invalid turns, the Dice after each round on the key slice (and the
simulated clinician's on the same slice, the reference, when another policy is evaluated),
the MedSAM-Agent training reward of the key-slice trajectory, seconds, and the folder of
the case's agent record (`records/caseNNN`, written for failed cases too). The summary
groups by description and overall.

Each target is scored on its own (`evaluate_target`, which `medsam-agent eval` runs as a
batch row) and its score kept in `scores/`, so that an evaluation run again skips the
targets already scored.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputImageError, MedSAMAgentError
from ..io.atomic import write_bytes_atomically
from ..io.volumes import read_volume
from ..metrics import dice, iou, surface_metrics
from ..segmenters.base import Segmenter, slice_frames
from ..targets import folder_name
from .clinician_reference import clinician_round_dice, round_dice
from .loop import END_STOP, Trajectory, run_agent
from .policies import Policy
from .recording import record_of
from .records import KEY, AgentRecord, failure_outcome, write_records
from .volume_agent import AgentRequest, segment_with_agent

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_TOLERANCE_MM = 2.0
CASES_FILE = "cases.csv"
RECORDS_FOLDER = "records"
SCORES_FOLDER = "scores"  # each finished target's CaseResult (JSON), so that an evaluation run again skips it


@dataclass
class CaseResult:
    case: int
    image: str
    description: str
    dice: float
    iou: float
    nsd: float
    hd95: float
    actions: int
    invalid_turns: int
    round_dice: str  # Dice after each action on the key slice, ';'-separated
    reward: float
    end_reason: str
    seconds: float
    error: str = ""
    policy: str = ""
    clinician_round_dice: str = ""  # the reference: the simulated clinician on the same key slice
    record: str = ""  # the case's agent record, relative to the evaluation's folder


def read_manifest(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"manifest not found: {path}")
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise InputImageError(f"{path.name}: a JSON manifest is a list of cases")
    else:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, 1):
        missing = [key for key in ("image", "mask", "description") if not row.get(key)]
        if missing:
            raise InputImageError(f"{path.name}: case {number} lacks {', '.join(missing)}")
        for key in ("image", "mask"):
            row[key] = str((path.parent / row[key]).resolve()) if not Path(row[key]).is_absolute() else row[key]
        row["targets"] = _targets(row, f"{path.name}: case {number}")
    return rows


def _targets(row: dict, where: str) -> list[tuple[str, int | None]]:
    """(description, label) per target; label None: every non-zero voxel (one target)."""
    names = [name.strip() for name in str(row["description"]).split(";") if name.strip()]
    labels = str(row.get("labels") or "").strip()
    if labels:
        try:
            values = [int(value) for value in labels.split(";")]
        except ValueError:
            raise InputImageError(f"{where}: labels {labels!r} are not whole numbers separated by ';'") from None
        if len(values) != len(names):
            raise InputImageError(f"{where}: {len(names)} targets but {len(values)} labels")
        return list(zip(names, values))
    if len(names) == 1:
        return [(names[0], None)]
    return [(name, label) for label, name in enumerate(names, 1)]


@dataclass(frozen=True)
class TargetCase:
    """One scored run of an evaluation: one target of one manifest case."""

    case: int
    name: str  # 'case003', or 'case003_liver' for one of several targets: its record's and its score's name
    image: str
    mask: str
    description: str
    label: int | None  # None: every non-zero voxel of the mask
    slice: str  # "": from the ground truth, or found by the agent (--find-slice)
    axis: str  # "": axial

    @property
    def record(self) -> str:
        """The case's agent record, relative to the evaluation's folder."""
        return f"{RECORDS_FOLDER}/{self.name}"


def case_targets(rows: list[dict]) -> list[TargetCase]:
    """Each target of each case of a manifest read by `read_manifest`, in order."""
    targets = []
    for number, case in enumerate(rows, 1):
        several = len(case["targets"]) > 1
        for description, label in case["targets"]:
            name = f"case{number:03d}" + (f"_{folder_name(description)}" if several else "")
            targets.append(TargetCase(number, name, case["image"], case["mask"], description, label, _text(case.get("slice")),
                                      _text(case.get("axis"))))
    return targets


def _text(value) -> str:
    """A manifest cell as text: a JSON manifest may give a number (slice 0 included), a CSV an empty cell."""
    return "" if value is None else str(value).strip()


def evaluate_target(target: TargetCase, output_dir: Path, policy: Policy, segmenter: Segmenter,
                    tolerance_mm: float = DEFAULT_TOLERANCE_MM, find_slice: bool = False) -> CaseResult:
    """Run and score one target, and write its agent record (a failed run's too) and its
    score, in that order: a score on disk means the target is finished."""
    started = time.perf_counter()
    try:
        if target.image.lower().endswith(IMAGE_SUFFIXES):
            result, records = _evaluate_image(target, policy, segmenter, tolerance_mm)
        else:
            result, records = _evaluate_volume(target, policy, segmenter, tolerance_mm, find_slice)
        outcome = {"status": "done"}
    except MedSAMAgentError as error:
        result = failed_result(target, str(error), policy.name)
        records, outcome = error.records, failure_outcome(error)
    result.seconds = round(time.perf_counter() - started, 2)
    result.policy = policy.name
    result.record = target.record
    output_dir = Path(output_dir)
    (output_dir / RECORDS_FOLDER).mkdir(exist_ok=True)
    write_records(records, output_dir / result.record, {**outcome, "case": target.case, "description": target.description})
    _write_score(result, score_path(output_dir, target))
    return result


def failed_result(target: TargetCase, error: str, policy: str) -> CaseResult:
    """A target that was not scored: zeros, an infinite HD95 and its error."""
    return CaseResult(target.case, target.image, target.description, 0.0, 0.0, 0.0, math.inf, 0, 0, "", 0.0, "error", 0.0, error,
                      policy, record=target.record)


def score_path(output_dir: Path, target: TargetCase) -> Path:
    return Path(output_dir) / SCORES_FOLDER / f"{target.name}.json"


def read_score(path: Path) -> CaseResult:
    return CaseResult(**json.loads(Path(path).read_text()))


def _write_score(result: CaseResult, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    write_bytes_atomically(path, json.dumps(asdict(result)).encode())  # hd95 may be inf: JSON's Infinity, which json reads back


def _evaluate_image(target: TargetCase, policy, segmenter, tolerance) -> tuple[CaseResult, list[AgentRecord]]:
    image = np.asarray(Image.open(target.image).convert("RGB"))
    truth = _of_target(np.asarray(Image.open(target.mask).convert("L")), target)
    if truth.shape != image.shape[:2]:
        raise InputImageError(f"case {target.case}: mask {truth.shape} and image {image.shape[:2]} differ in size")
    runs = []
    try:
        trajectory = run_agent(image, target.description, policy, segmenter, truth=truth, started=runs.append)
    except MedSAMAgentError as error:
        error.records = [record_of(run, KEY, 0) for run in runs]
        raise
    mask = trajectory.final_mask()
    nsd, hd95 = surface_metrics(mask, truth, (1.0, 1.0), tolerance)
    result = _case(target, mask, truth, nsd, hd95, trajectory, truth, _reference(policy, image, truth, target, segmenter))
    return result, [record_of(trajectory, KEY, 0)]


def _evaluate_volume(target: TargetCase, policy, segmenter, tolerance, find_slice) -> tuple[CaseResult, list[AgentRecord]]:
    volume = read_volume(target.image, log=lambda _: None)
    reference = read_volume(target.mask, log=lambda _: None)
    if reference.geometry.size != volume.geometry.size:
        raise InputImageError(f"case {target.case}: the mask's grid {reference.geometry.size} differs from the image's {volume.geometry.size}")
    frames = slice_frames(volume, target.axis or "axial", target=target.description)
    expected = _of_target(reference.array, target)
    truth = frames.plane.to_display(expected)
    if target.slice:
        key = int(target.slice)
    elif find_slice:
        key = None
    else:
        key = int(np.argmax(truth.sum(axis=(1, 2))))
    outcome = segment_with_agent(volume, frames, segmenter, policy, AgentRequest(target.description, key_slice=key), truth=truth)
    mask = outcome.segmentation.mask
    nsd, hd95 = surface_metrics(mask, expected, volume.geometry.spacing[::-1], tolerance)
    key = outcome.key_slice
    clinician = _reference(policy, frames[key], truth[key], target, segmenter, frames.pixel_spacing)
    return _case(target, mask, expected, nsd, hd95, outcome.key_trajectory, truth[key], clinician), outcome.records()


def _of_target(labels: np.ndarray, target: TargetCase) -> np.ndarray:
    """The target in a mask: every non-zero voxel, or those of its label."""
    return labels > 0 if target.label is None else labels == target.label


def _reference(policy, image, truth, target: TargetCase, segmenter, pixel_spacing=(1.0, 1.0)) -> list[float] | None:
    """The clinician's Dice per round on the key slice, unless the clinician is the one evaluated."""
    if policy.name == "clinician":
        return None
    return clinician_round_dice(image, truth, target.description, segmenter, pixel_spacing)


def _case(target: TargetCase, mask, truth, nsd, hd95, trajectory: Trajectory, key_truth, clinician: list[float] | None) -> CaseResult:
    rounds = round_dice(trajectory, key_truth)
    return CaseResult(
        case=target.case,
        image=target.image,
        description=target.description,
        dice=round(dice(mask, truth), 4),
        iou=round(iou(mask, truth), 4),
        nsd=round(nsd, 4),
        hd95=round(hd95, 3),
        actions=trajectory.actions,
        invalid_turns=trajectory.invalid_turns,
        round_dice=";".join(f"{value:.4f}" for value in rounds),
        reward=round(agent_reward(trajectory, key_truth), 4),
        end_reason=trajectory.end_reason,
        seconds=0.0,
        clinician_round_dice="" if clinician is None else ";".join(f"{value:.4f}" for value in clinician),
    )


def agent_reward(trajectory: Trajectory, truth: np.ndarray) -> float:
    """The reward the model was trained with: 0.2 format + 0.8 quality, where quality is
    0.5 IoU + 0.5 Dice of the final mask, minus the IoU lost after the best turn and 0.01 per
    turn, plus 0.1 of every IoU gain, clipped to [0, 1]."""
    acted = trajectory.actions > 0
    stopped = trajectory.end_reason == END_STOP
    format_reward = 1.0 if acted and stopped else 0.5 if acted or stopped else 0.0
    ious = [iou(turn.mask, truth) for turn in trajectory.turns if turn.mask is not None and turn.number > 0]
    if not ious:
        return 0.2 * format_reward
    final_mask = trajectory.final_mask()
    quality = 0.5 * ious[-1] + 0.5 * dice(final_mask, truth)
    if len(ious) > 1:
        quality -= (max(ious) - ious[-1]) + 0.01 * len(ious)
        quality += 0.1 * sum(max(0.0, later - earlier) for earlier, later in zip(ious, ious[1:]))
    return 0.2 * format_reward + 0.8 * min(1.0, max(0.0, quality))


def summarise(results: list[CaseResult]) -> list[dict]:
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.description, []).append(result)
    rows = []
    for name, members in [*sorted(groups.items()), ("overall", results)]:
        finite_hd = [r.hd95 for r in members if math.isfinite(r.hd95)]
        rows.append({
            "description": name,
            "cases": len(members),
            "dice": round(float(np.mean([r.dice for r in members])), 4),
            "iou": round(float(np.mean([r.iou for r in members])), 4),
            "nsd": round(float(np.mean([r.nsd for r in members])), 4),
            "hd95": round(float(np.mean(finite_hd)), 3) if finite_hd else math.inf,
            "actions": round(float(np.mean([r.actions for r in members])), 2),
            "invalid_turns": int(sum(r.invalid_turns for r in members)),
            "reward": round(float(np.mean([r.reward for r in members])), 4),
            "errors": sum(1 for r in members if r.error),
            "seconds": round(float(np.mean([r.seconds for r in members])), 2),
        })
    return rows


def write_reports(results: list[CaseResult], output_dir: Path) -> None:
    _write_csv(output_dir / CASES_FILE, [asdict(r) for r in results])
    summary = summarise(results)
    _write_csv(output_dir / "summary.csv", summary)
    columns = list(summary[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in summary]
    (output_dir / "summary.md").write_text("\n".join(lines) + "\n")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["case"])
        writer.writeheader()
        writer.writerows(rows)
