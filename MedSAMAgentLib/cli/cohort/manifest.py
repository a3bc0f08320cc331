"""A batch manifest: a CSV, or a JSON list of objects, with one row per job whose columns
are named after `segment`'s options. `segment_arguments` turns a row into exactly the
options `segment` would parse from its command line, so that a row means what the same
options mean to `segment` (the same engine request, the same output).

Columns: `image`; either `target` (several separated by `;`; `description`, `eval`'s name,
is accepted too) or `slice` with `box` (`I0 J0 I1 J1`) and/or `points` (`I J pos; I J neg`);
optionally `range` (`A B`), `axis`, `window`, `segmenter`, `gt` (for the simulated
clinician) and `output` (relative to the output folder; by default the image's name with
`.seg.nrrd`). Relative image and `gt` paths are relative to the manifest's folder.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputImageError, PromptError

COLUMNS = ("image", "target", "description", "slice", "box", "points", "range", "axis", "window", "segmenter", "gt", "output")
DEFAULT_OUTPUT_SUFFIX = ".seg.nrrd"
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
RECORDS_FOLDER = "records"  # each agent row's record: records/<output name>


@dataclass(frozen=True)
class ManifestRow:
    number: int  # 1-based, as the user counts the rows
    values: dict[str, str]
    folder: Path  # the manifest's folder, which relative paths start from

    def path(self, column: str) -> Path:
        path = Path(self.values[column]).expanduser()
        return path if path.is_absolute() else (self.folder / path).resolve()

    @property
    def image(self) -> str:
        return self.values.get("image", "")


def read_manifest(path: Path) -> list[ManifestRow]:
    """The rows, with their values as text (empty cells dropped). A manifest that cannot be
    read, or that has a column no row option is named after, is refused as a whole."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"manifest not found: {path}")
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text())
            if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                raise InputImageError(f"{path.name}: a JSON manifest is a list of objects, one per row")
        else:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise InputImageError(f"{path.name} cannot be read as a manifest: {error}") from None
    unknown = sorted({str(column) for row in rows for column in row if column not in COLUMNS})
    if unknown:
        raise InputImageError(f"{path.name}: unknown column {', '.join(map(repr, unknown))}; the columns are {', '.join(COLUMNS)}")
    if not rows:
        raise InputImageError(f"{path.name} has no rows")
    folder = path.resolve().parent
    return [ManifestRow(number, _texts(row), folder) for number, row in enumerate(rows, 1)]


def output_name(row: ManifestRow) -> str:
    """The output's name relative to the output folder: the `output` column, or the image's
    name with its image suffix replaced by `.seg.nrrd`."""
    if row.values.get("output"):
        return row.values["output"]
    name = Path(row.image).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] + DEFAULT_OUTPUT_SUFFIX
    return name + DEFAULT_OUTPUT_SUFFIX


def segment_argv(row: ManifestRow, output: Path, record_folder: Path) -> list[str]:
    """The `segment` command line that means what the row means."""
    values = row.values
    if not row.image:
        raise PromptError("no image: the image column is empty")
    target = values.get("target") or values.get("description")
    if values.get("target") and values.get("description"):
        raise PromptError("give the target in one column, target or description")
    argv = [str(row.path("image")), "-o", str(output)]
    for column in ("slice", "axis", "window", "segmenter"):
        if values.get(column):
            argv += [f"--{column}", values[column]]
    if values.get("range"):
        argv += ["--range", *values["range"].split()]
    if values.get("box"):
        argv += ["--box", *values["box"].split()]
    for point in filter(None, (part.strip() for part in values.get("points", "").split(";"))):
        argv += ["--point", *point.split()]
    if target:
        argv += ["--target", target, "--save-trajectory", str(record_folder)]
    if values.get("gt"):
        argv += ["--gt", str(row.path("gt"))]
    return argv


@dataclass(frozen=True)
class SharedOptions:
    """The names of `segment`'s options that the batch's options give the rows: every row
    (models, server), and the rows with a target (the agent's)."""

    every_row: tuple[str, ...]
    target_rows: tuple[str, ...]


def segment_arguments(row: ManifestRow, output: Path, record_folder: Path, options: argparse.Namespace,
                      shared: SharedOptions) -> argparse.Namespace:
    """`segment`'s options for the row: its columns parsed by `segment`'s own parser, then the
    batch's `shared` options, the row's `segmenter` column winning. A target row without a
    slice lets the agent find it when the batch says `--find-slice`."""
    from .. import segment

    parser = argparse.ArgumentParser(prog="manifest row", add_help=False)
    segment.add_parser(parser.add_subparsers(dest="command"))
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            args = parser.parse_args(["segment", *segment_argv(row, output, record_folder)])
    except SystemExit:  # argparse has said why on stderr: keep its last line, which names the option
        reason = messages.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        raise PromptError(reason) from None
    for name in shared.every_row + (shared.target_rows if args.target else ()):
        if name == "segmenter" and args.segmenter:
            continue
        setattr(args, name, getattr(options, name))
    args.find_slice = bool(options.find_slice and args.target and args.slice is None)
    return args


def _texts(row: dict) -> dict[str, str]:
    return {str(column): str(value).strip() for column, value in row.items() if value is not None and str(value).strip()}
