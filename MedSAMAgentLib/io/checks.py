"""The input rules, in one place for the command line, the server and the Slicer module.

- Files: every volume file is checked for completeness before ITK reads it, because ITK
  reads a truncated NIfTI (and some truncated MetaImage and NRRD files) without a word and
  fills the missing voxels with zeros. The header gives how many bytes of voxels must
  follow; raw data must be that long, compressed data must decompress to that length
  and end with an intact stream (gzip's CRC, zlib's and bzip2's end markers).
- Voxels: NaN and infinite voxels are replaced, never segmented as they are. NaN marks
  "no data" (outside a scan's field of view, after a registration): it becomes the lowest
  finite value of the volume, i.e. background; -inf and +inf become the lowest and highest
  finite values. A note says how many voxels were replaced. A volume with no finite voxel,
  or with one value everywhere, is refused.
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputImageError

_BLOCK = 1 << 22
_NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"), 8),
}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4,
               "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


# -- files ----------------------------------------------------------------------------------
def check_file_complete(path: Path) -> None:
    """Raise InputImageError when a NIfTI, NRRD/NHDR or MHA/MHD file (or the data file its
    header names) holds fewer voxel bytes than its header declares, or is damaged."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_metaimage(path)


def _truncated(path: Path, found: int, expected: int, what: str = "voxel data") -> InputImageError:
    return InputImageError(
        f"{path.name} is truncated: its header declares {expected} bytes of {what}, the file holds {found}; "
        "copy or export it again"
    )


def _check_nifti(path: Path) -> None:
    import nibabel

    try:
        image = nibabel.load(str(path))
    except Exception as error:  # nibabel raises several types for damaged headers
        raise InputImageError(f"cannot read {path.name}: the file is corrupt or not a NIfTI image ({_reason(error)})") from None
    header = image.header
    expected = int(image.dataobj.offset) + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    if path.name.lower().endswith(".gz"):
        found = _decompressed_length(path, _gzip_blocks(path))
    else:
        found = path.stat().st_size
    if found < expected:
        raise _truncated(path, found, expected, "header and voxel data")


def _check_nrrd(path: Path) -> None:
    fields, data_offset = _nrrd_header(path)
    sizes = [int(v) for v in fields.get("sizes", "").split()]
    item = _NRRD_TYPES.get(fields.get("type", "").strip().lower())
    encoding = fields.get("encoding", "raw").strip().lower()
    if not sizes or item is None or encoding in ("ascii", "text", "txt", "hex"):
        return  # ITK refuses what it cannot read; text encodings have no byte count to check
    expected = int(np.prod(sizes)) * item
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.split()[0].upper() == "LIST" or "%" in data_file:
            return  # one volume over several files: ITK reads and checks each
        source = path.parent / data_file.strip()
        if not source.is_file():
            raise InputImageError(f"{path.name} names its voxel data file {data_file.strip()}, which is missing")
        offset = 0
    else:
        source, offset = path, data_offset
    line_skip = int(fields.get("line skip", fields.get("lineskip", "0")))
    byte_skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
    if line_skip:
        with open(source, "rb") as handle:
            handle.seek(offset)
            for _ in range(line_skip):
                handle.readline()
            offset = handle.tell()
    if encoding == "raw":
        available = source.stat().st_size - offset - max(byte_skip, 0)
        if available < expected:
            raise _truncated(source, max(available, 0), expected)
        return
    blocks = {"gzip": _gzip_blocks, "gz": _gzip_blocks, "bzip2": _bzip2_blocks, "bz2": _bzip2_blocks}.get(encoding)
    if blocks is not None:
        found = _decompressed_length(source, blocks(source, offset)) - max(byte_skip, 0)
        if found < expected:
            raise _truncated(source, max(found, 0), expected, "decompressed voxel data")


def _nrrd_header(path: Path) -> tuple[dict[str, str], int]:
    """NRRD fields (lower-case names) and where attached data starts."""
    fields: dict[str, str] = {}
    with open(path, "rb") as handle:
        magic = handle.readline()
        if not magic.startswith(b"NRRD"):
            raise InputImageError(f"cannot read {path.name}: the file is corrupt or not a NRRD image (no NRRD magic line)")
        for raw in iter(handle.readline, b""):
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            if line.startswith("#") or ":=" in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        return fields, handle.tell()


def _check_metaimage(path: Path) -> None:
    fields: dict[str, str] = {}
    with open(path, "rb") as handle:
        for raw in iter(handle.readline, b""):
            key, separator, value = raw.decode("latin-1").partition("=")
            if not separator:
                raise InputImageError(f"cannot read {path.name}: the file is corrupt or not a MetaImage (line {raw[:40]!r})")
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break
        data_offset = handle.tell()
    data_file = fields.get("elementdatafile", "")
    item = _META_TYPES.get(fields.get("elementtype", "").upper())
    dimensions = [int(v) for v in fields.get("dimsize", "").split()]
    if not data_file or item is None or not dimensions:
        raise InputImageError(f"cannot read {path.name}: its header lacks ElementDataFile, ElementType or DimSize")
    if data_file.split()[0].upper() == "LIST" or len(data_file.split()) > 1:
        return  # one volume over several files: ITK reads and checks each
    expected = int(np.prod(dimensions)) * int(fields.get("elementnumberofchannels", "1")) * item
    if data_file.upper() == "LOCAL":
        source, offset = path, data_offset
    else:
        source, offset = path.parent / data_file, 0
        if not source.is_file():
            raise InputImageError(f"{path.name} names its voxel data file {data_file}, which is missing")
    header_size = int(fields.get("headersize", "0"))
    if fields.get("compresseddata", "false").lower() == "true":
        found = _decompressed_length(source, _zlib_blocks(source, offset + max(header_size, 0)))
        if found < expected:
            raise _truncated(source, found, expected, "decompressed voxel data")
        return
    available = source.stat().st_size - offset - max(header_size, 0)
    if available < expected:
        raise _truncated(source, max(available, 0), expected)


def _decompressed_length(path: Path, blocks: Iterator[bytes]) -> int:
    total = 0
    try:
        for block in blocks:
            total += len(block)
    except (EOFError, OSError, zlib.error, ValueError) as error:
        raise InputImageError(f"{path.name} is truncated or damaged: its compressed data {_reason(error)}; copy or export it again") from None
    return total


def _gzip_blocks(path: Path, offset: int = 0) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        raw.seek(offset)
        with gzip.GzipFile(fileobj=raw) as stream:
            yield from iter(lambda: stream.read(_BLOCK), b"")


def _bzip2_blocks(path: Path, offset: int) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        raw.seek(offset)
        with bz2.BZ2File(raw) as stream:
            yield from iter(lambda: stream.read(_BLOCK), b"")


def _zlib_blocks(path: Path, offset: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    with open(path, "rb") as raw:
        raw.seek(offset)
        for block in iter(lambda: raw.read(_BLOCK), b""):
            yield inflater.decompress(block)
            if inflater.eof:
                return
    if not inflater.eof:
        raise EOFError("ends before its end-of-stream marker")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[-1] if text else error.__class__.__name__).rstrip(".")


# -- voxels ---------------------------------------------------------------------------------
def usable_voxels(array: np.ndarray, name: str, log: Callable[[str], None] | None = print) -> np.ndarray:
    """The voxels to segment: NaN and infinite values replaced as the module docstring
    states (a copy; `array` is never changed), after refusing an empty or constant volume."""
    if array.size == 0:
        raise InputImageError(f"{name} has no voxels")
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            array = _replace_non_finite(array, finite, name, log)
    low, high = array.min(), array.max()
    if low == high:
        raise InputImageError(f"{name} is empty: every voxel has the value {low}")
    return array


def _replace_non_finite(array: np.ndarray, finite: np.ndarray, name: str, log) -> np.ndarray:
    if not finite.any():
        raise InputImageError(f"{name} holds no finite voxel (all NaN or infinite)")
    low, high = array[finite].min(), array[finite].max()
    counts = {"NaN": int(np.isnan(array).sum()), "-inf": int(np.isneginf(array).sum()), "+inf": int(np.isposinf(array).sum())}
    replaced = np.nan_to_num(array, nan=low, neginf=low, posinf=high)
    if log is not None:
        found = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        log(f"note: {name} has {found} voxels; NaN and -inf were set to its lowest finite value ({low:g}), +inf to its highest ({high:g})")
    return replaced
