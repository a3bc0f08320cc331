"""An evaluation (`medsam-agent eval`) as batch rows: each target of each case is a row, run
and scored by `agent.evaluation.evaluate_target` with the policy and segmenter of the
engine of the worker that takes it, on the same workers as a batch's rows (`--workers`,
`--ray`).

A target's score is written to `scores/` as soon as it is scored, so an evaluation killed
and run again scores only the targets left. `evaluation.json` names the manifest's cases
and the options the scores belong to: a folder holding another evaluation is refused
rather than mixed in, and a finished one is refused rather than silently redone;
`--overwrite` scores everything again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ...agent.evaluation import (
    CASES_FILE,
    SCORES_FOLDER,
    CaseResult,
    TargetCase,
    case_targets,
    evaluate_target,
    failed_result,
    read_manifest,
    read_score,
    score_path,
    write_reports,
)
from ...errors import OutputError
from ...io.atomic import write_bytes_atomically
from ..options import DEFAULT_POLICY, engine_from_args
from .cohort import LOGS_FOLDER, BatchEvents, open_output_folder, run_jobs
from .results import FAILED, SKIPPED, RowResult, one_line
from .worker import RowJob

EVALUATION_FILE = "evaluation.json"
SCORED_WITH = ("policy", "agent_model", "endpoint", "segmenter", "checkpoint", "agent_turns_px", "tolerance", "find_slice")


@dataclass(frozen=True)
class EvaluationRow:
    """One target of one case, scored on a worker's engine (always this computer's: the
    ground truth never leaves it)."""

    target: TargetCase
    output_dir: Path
    tolerance: float
    find_slice: bool

    @property
    def segmenter(self) -> str | None:
        return None  # the engine's default, the evaluation's --segmenter

    @property
    def uses_agent(self) -> bool:
        return True

    def complete(self) -> bool:
        return score_path(self.output_dir, self.target).is_file()

    def run(self, engine, result: RowResult, started: float) -> None:
        score = evaluate_target(self.target, self.output_dir, engine.policy(), engine.segmenter(), self.tolerance, self.find_slice)
        if score.error:
            result.status, result.error = FAILED, one_line(score.error)


@dataclass
class Evaluation:
    results: list[CaseResult]  # one per target, in the manifest's order
    skipped: int  # targets scored by an earlier run


def run_evaluation(options: argparse.Namespace, events: BatchEvents) -> Evaluation:
    """Score the manifest `options.manifest` into `options.output_dir` and write its reports."""

    def read_targets() -> list[TargetCase]:
        targets = _targets_to_score(options)
        if not options.ray:  # Ray's nodes check their own engines, in their actors
            _check_engine(options)
        return targets

    targets = open_output_folder(options, read_targets)
    folder = options.output_dir
    if options.overwrite:
        shutil.rmtree(folder / SCORES_FOLDER, ignore_errors=True)
    write_bytes_atomically(folder / EVALUATION_FILE, json.dumps(_identity(options, targets), indent=2).encode())
    scores: dict[int, CaseResult] = {}
    jobs = []
    for number, target in enumerate(targets, 1):
        if score_path(folder, target).is_file():
            scores[number] = read_score(score_path(folder, target))
            events.checked(RowResult(number, target.image, target.record, SKIPPED))
        else:
            row = EvaluationRow(target, folder, options.tolerance, options.find_slice)
            jobs.append(RowJob(number, target.image, target.record, row, folder / LOGS_FOLDER / f"row{number:04d}.log"))

    def keep(result: RowResult) -> None:
        target = targets[result.row - 1]
        path = score_path(folder, target)
        # No score: the row never reached scoring (refused, its worker lost, a fault): it
        # counts as an error now and is tried again by the next run.
        scores[result.row] = read_score(path) if path.is_file() else failed_result(target, result.error, options.policy or DEFAULT_POLICY)

    run_jobs(jobs, options, events, keep)
    results = [scores[number] for number in sorted(scores)]
    write_reports(results, folder)
    return Evaluation(results, len(targets) - len(jobs))


def _targets_to_score(options: argparse.Namespace) -> list[TargetCase]:
    """The manifest's targets, once the output folder is known to hold nothing else than
    this evaluation unfinished (or `--overwrite` allows replacing what it holds)."""
    targets = case_targets(read_manifest(options.manifest))
    folder = Path(options.output_dir)
    if options.overwrite or not folder.is_dir():
        return targets
    identity_path = folder / EVALUATION_FILE
    if not identity_path.is_file():
        if (folder / CASES_FILE).exists() or (folder / SCORES_FOLDER).exists():
            raise OutputError(f"{folder} already holds an evaluation; pass --overwrite to replace it")
        return targets
    now = _identity(options, targets)
    try:
        earlier = json.loads(identity_path.read_text())
        earlier_options, earlier_cases = dict(earlier["options"]), earlier["cases"]
    except (ValueError, KeyError, TypeError):
        raise OutputError(f"{identity_path} cannot be read; pass --overwrite to score the evaluation again") from None
    differences = [f"{_option(name)} {earlier_options.get(name)} (now {value})"
                   for name, value in now["options"].items() if earlier_options.get(name) != value]
    if earlier_cases != now["cases"]:
        differences.insert(0, f"other cases (manifest {earlier.get('manifest')})")
    if differences:
        raise OutputError(f"{folder} holds an evaluation with {', '.join(differences)}; pass --overwrite to replace it, "
                          "or choose another folder")
    if (folder / CASES_FILE).is_file() and all(score_path(folder, target).is_file() for target in targets):
        raise OutputError(f"{folder} already holds this evaluation, finished; pass --overwrite to score it again")
    return targets


def _check_engine(options: argparse.Namespace) -> None:
    """Every row of an evaluation needs the same engine: one it cannot have (weights or a
    policy's model not here) is refused once, for the whole evaluation, before any row
    runs or any score is touched."""
    engine = engine_from_args(options, with_agent=True)
    try:
        engine.preflight(uses_agent=True)
    finally:
        engine.close()


def _identity(options: argparse.Namespace, targets: list[TargetCase]) -> dict:
    """What the scores in the folder belong to: the manifest's cases and the options that
    change a score."""
    cases = json.dumps([asdict(target) for target in targets], sort_keys=True)
    return {
        "manifest": str(Path(options.manifest).resolve()),
        "cases": hashlib.sha256(cases.encode()).hexdigest(),
        "options": {name: getattr(options, name) for name in SCORED_WITH},
    }


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")
