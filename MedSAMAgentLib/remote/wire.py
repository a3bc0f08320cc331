"""What travels between a client and a MedSAM-Agent server, and how.

- A volume travels as voxels and geometry only (no file header, no DICOM tags, no names),
  named by the SHA-256 of a canonical encoding of both. On the wire it is a framed blob:
  magic, header length, JSON header, then the voxels byte-shuffled (all first bytes, then
  all second bytes, ...) and compressed with zstd; shuffling groups the slowly varying high
  bytes of CT and MR voxels, which zstd then packs much better.
- Masks (a slice's, or an earlier result on the volume's grid) travel bit-packed and
  zstd-compressed; a result carries only the box of slices, rows and columns that hold the
  object.
- Requests are JSON; results are a framed blob like volumes.

numpy, zstandard and the standard library only: importing this module loads no torch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import numpy as np

from ..agent.records import AgentRecord
from ..engine.interface import SegmentationOutcome, SegmentationRequest
from ..errors import MedSAMAgentError
from ..io.checks import usable_voxels
from ..io.volumes import Geometry, Volume
from ..prompts import Box, Point, SlicePrompts

API_VERSION = 2  # 2: prompts on further slices (prompts_at) and updates of an earlier result (previous, settled)
API_VERSION_HEADER = "X-MedSAM-Agent-API"
VOLUME_HEADER = "X-MedSAM-Agent-Volume"  # on every request of a job, for proxies that route by volume
VOLUME_MAGIC = b"MSAGV1"
RESULT_MAGIC = b"MSAGR1"
COMPRESSION_LEVEL = 3
VOXEL_TYPES = ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8")
_LENGTH = struct.Struct("<I")
MAX_HEADER_BYTES = 64 << 20


class CorruptDataError(MedSAMAgentError):
    """Bytes that do not decode: truncated, damaged, or not this format."""


class DigestMismatchError(MedSAMAgentError):
    """A volume whose content does not match the SHA-256 it was sent under."""


# -- volumes ------------------------------------------------------------------------------
def _little_endian(array: np.ndarray) -> np.ndarray:
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    return np.ascontiguousarray(array, dtype=dtype)


def volume_header(volume: Volume) -> dict:
    """The geometry and voxel layout that, with the voxels, name a volume."""
    geometry = volume.geometry
    return {
        "shape": [int(n) for n in volume.array.shape],
        "dtype": _little_endian(volume.array[:0]).dtype.str,
        "spacing": [float(v) for v in geometry.spacing],
        "origin": [float(v) for v in geometry.origin],
        "direction": [float(v) for v in geometry.direction],
        "modality": volume.modality,
    }


def _canonical(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _digest(header: dict, voxels: np.ndarray) -> str:
    digest = hashlib.sha256(_canonical(header))
    digest.update(b"\0")
    digest.update(memoryview(voxels).cast("B"))
    return digest.hexdigest()


def volume_digest(volume: Volume) -> str:
    """SHA-256 of the volume's canonical header and little-endian voxels."""
    return _digest(volume_header(volume), _little_endian(volume.array))


def encode_volume(volume: Volume) -> tuple[str, bytes]:
    """(digest, framed compressed blob)."""
    import zstandard

    header = volume_header(volume)
    voxels = _little_endian(volume.array)
    digest = _digest(header, voxels)
    shuffled = voxels.reshape(-1).view(np.uint8).reshape(-1, voxels.itemsize).T.tobytes()
    packed = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, threads=-1).compress(shuffled)
    return digest, _frame(VOLUME_MAGIC, {**header, "sha256": digest}, packed)


def decode_volume(blob: bytes, expected_digest: str, max_voxel_bytes: int) -> Volume:
    """The volume in `blob`; raises CorruptDataError or DigestMismatchError."""
    import zstandard

    header, payload = _unframe(blob, VOLUME_MAGIC, "volume")
    try:
        shape = tuple(int(n) for n in header["shape"])
        dtype = np.dtype(header["dtype"])
        geometry = Geometry(
            size=(shape[2], shape[1], shape[0]),
            spacing=tuple(float(v) for v in header["spacing"]),
            origin=tuple(float(v) for v in header["origin"]),
            direction=tuple(float(v) for v in header["direction"]),
        )
        modality = str(header["modality"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise CorruptDataError(f"the volume header is malformed ({error.__class__.__name__}: {error})") from None
    if header["dtype"] not in VOXEL_TYPES or len(shape) != 3 or min(shape) < 1 or len(geometry.direction) != 9:
        raise CorruptDataError(f"the volume header describes no 3D scalar volume (shape {list(shape)}, type {header['dtype']})")
    size = int(np.prod(shape)) * dtype.itemsize
    if size > max_voxel_bytes:
        raise CorruptDataError(f"the volume holds {size} bytes of voxels, more than the {max_voxel_bytes} this server accepts")
    try:
        shuffled = zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
    except zstandard.ZstdError as error:
        raise CorruptDataError(f"the voxels do not decompress ({error}); the upload is truncated or damaged") from None
    if len(shuffled) != size:
        raise CorruptDataError(f"the voxels decompress to {len(shuffled)} bytes, not the {size} the header gives")
    voxels = np.frombuffer(shuffled, np.uint8).reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(shape)
    header = {key: header[key] for key in ("shape", "dtype", "spacing", "origin", "direction", "modality")}
    digest = _digest(header, voxels)
    if digest != expected_digest:
        raise DigestMismatchError(f"the volume's content has SHA-256 {digest[:12]}..., not {expected_digest[:12]}... as it was sent")
    # The input rules a local run applies (NaN and infinite voxels, a constant volume); the
    # client has applied them already, so its notes were shown where the user sees them.
    voxels = usable_voxels(voxels, f"volume {digest[:12]}", log=None)
    return Volume(array=voxels, geometry=geometry, modality=modality, description=f"volume {digest[:12]}")


# -- masks --------------------------------------------------------------------------------
def encode_mask(mask: np.ndarray) -> dict:
    return {"shape": [int(n) for n in mask.shape], "bits": base64.b64encode(_packed(mask)).decode("ascii")}


def decode_mask(data: dict, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The mask in `data`; with `shape`, refused unless it has that shape (checked before
    anything is unpacked)."""
    import zstandard

    try:
        declared = tuple(int(n) for n in data["shape"])
        if shape is not None and declared != tuple(shape):
            raise CorruptDataError(f"a mask has shape {list(declared)}, expected {list(shape)}")
        return _unpacked(base64.b64decode(data["bits"], validate=True), declared)
    except (KeyError, TypeError, ValueError, zstandard.ZstdError) as error:
        raise CorruptDataError(f"a mask does not decode ({error.__class__.__name__}: {error})") from None


# -- requests -----------------------------------------------------------------------------
def request_to_json(request: SegmentationRequest, digest: str) -> dict:
    return {
        "volume": digest,
        "view": request.view,
        "window": request.window,
        "key_slice": request.key_slice,
        "target": request.target,
        "prompts": None if request.prompts is None else _prompts_to_json(request.prompts),
        "prompts_at": {str(index): _prompts_to_json(prompts) for index, prompts in request.prompts_at.items()},
        "key_mask": None if request.key_mask is None else encode_mask(request.key_mask),
        "locked": {str(index): encode_mask(mask) for index, mask in request.locked.items()},
        "previous": None if request.previous is None else encode_mask(request.previous),
        "settled": [int(index) for index in request.settled],
        "slice_range": None if request.slice_range is None else [int(v) for v in request.slice_range],
        "seeded_components_only": request.seeded_components_only,
        "segmenter": request.segmenter,
        "recheck_every": request.recheck_every,
    }


def request_from_json(body: dict, volume: Volume) -> SegmentationRequest:
    """The request in a validated job body, on `volume`; masks must fit its slices."""
    from ..orientation import SlicePlane

    plane = SlicePlane.for_view(volume.geometry, body["view"])
    prompts, key_mask, previous = body.get("prompts"), body.get("key_mask"), body.get("previous")
    return SegmentationRequest(
        volume=volume,
        view=body["view"],
        window=body.get("window"),
        key_slice=body.get("key_slice"),
        target=body.get("target") or "",
        prompts=None if prompts is None else _prompts_from_json(prompts),
        prompts_at={int(index): _prompts_from_json(at) for index, at in (body.get("prompts_at") or {}).items()},
        key_mask=None if key_mask is None else decode_mask(key_mask, plane.image_shape),
        locked={int(index): decode_mask(mask, plane.image_shape) for index, mask in (body.get("locked") or {}).items()},
        previous=None if previous is None else decode_mask(previous, volume.array.shape),
        settled=tuple(int(index) for index in body.get("settled") or ()),
        slice_range=None if body.get("slice_range") is None else tuple(body["slice_range"]),
        seeded_components_only=body.get("seeded_components_only", True),
        segmenter=body.get("segmenter"),
        recheck_every=body.get("recheck_every"),
    )


def _prompts_to_json(prompts: SlicePrompts) -> dict:
    return {
        "box": None if prompts.box is None else prompts.box.as_list(),
        "points": [{"x": float(p.x), "y": float(p.y), "positive": bool(p.positive)} for p in prompts.points],
    }


def _prompts_from_json(data: dict) -> SlicePrompts:
    box = data.get("box")
    return SlicePrompts(
        box=None if box is None else Box(*box),
        points=tuple(Point(p["x"], p["y"], p["positive"]) for p in data.get("points", [])),
    )


# -- results ------------------------------------------------------------------------------
def encode_outcome(outcome: SegmentationOutcome) -> bytes:
    """The outcome, its mask cropped to the box that holds the object."""
    mask = outcome.mask
    crop = _extent(mask)
    inside = mask[tuple(slice(low, high + 1) for low, high in crop)] if crop else np.zeros((0, 0, 0), bool)
    header = {
        "shape": [int(n) for n in mask.shape],
        "crop": crop,
        "view": outcome.view,
        "key_slice": int(outcome.key_slice),
        "window": outcome.window,
        "seconds": float(outcome.seconds),
        "corrections": [int(index) for index in outcome.corrections],
        "records": [record.as_json() for record in outcome.records],
    }
    return _frame(RESULT_MAGIC, header, _packed(inside))


def decode_outcome(blob: bytes) -> SegmentationOutcome:
    import zstandard

    header, payload = _unframe(blob, RESULT_MAGIC, "result")
    try:
        mask = np.zeros(tuple(header["shape"]), bool)
        if header["crop"]:
            box = tuple(slice(low, high + 1) for low, high in header["crop"])
            mask[box] = _unpacked(payload, mask[box].shape)
        return SegmentationOutcome(
            mask=mask,
            view=header["view"],
            key_slice=int(header["key_slice"]),
            window=header["window"],
            seconds=float(header["seconds"]),
            records=[AgentRecord.from_json(record) for record in header["records"]],
            corrections=list(header["corrections"]),
        )
    except (KeyError, TypeError, ValueError, zstandard.ZstdError) as error:
        raise CorruptDataError(f"the server's result does not decode ({error.__class__.__name__}: {error})") from None


def _packed(mask: np.ndarray) -> bytes:
    """A boolean array as zstd-compressed packed bits (its shape travels separately)."""
    import zstandard

    return zstandard.compress(np.packbits(np.asarray(mask, dtype=bool), axis=None).tobytes())


def _unpacked(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    import zstandard

    count = int(np.prod(shape))
    bits = zstandard.ZstdDecompressor().decompress(data, max_output_size=(count + 7) // 8)
    return np.unpackbits(np.frombuffer(bits, np.uint8), count=count).reshape(shape).astype(bool)


def _extent(mask: np.ndarray) -> list[list[int]] | None:
    if not mask.any():
        return None
    extent = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        extent.append([int(present[0]), int(present[-1])])
    return extent


# -- framing ------------------------------------------------------------------------------
def _frame(magic: bytes, header: dict, payload: bytes) -> bytes:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    return magic + _LENGTH.pack(len(encoded)) + encoded + payload


def _unframe(blob: bytes, magic: bytes, what: str) -> tuple[dict, bytes]:
    start = len(magic) + _LENGTH.size
    if len(blob) < start or blob[: len(magic)] != magic:
        raise CorruptDataError(f"this is not a MedSAM-Agent {what} (wrong or missing magic bytes)")
    (length,) = _LENGTH.unpack_from(blob, len(magic))
    if length > MAX_HEADER_BYTES or start + length > len(blob):
        raise CorruptDataError(f"the {what} is truncated: its header runs past the end")
    try:
        header = json.loads(blob[start : start + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptDataError(f"the {what}'s header is not JSON") from None
    if not isinstance(header, dict):
        raise CorruptDataError(f"the {what}'s header is not a JSON object")
    return header, blob[start + length :]
