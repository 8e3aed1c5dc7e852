"""Reading and writing `.safetensors` files (Hugging Face's documented format) without a dependency.

Format: 8 bytes, little-endian u64 N; N bytes of a UTF-8 JSON object
`{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`;
then the tensors' raw little-endian bytes, `data_offsets` counting from the first byte after
the header. When the `safetensors` package is importable, `load_file` uses it; otherwise this
module's reader, which memory-maps the file (copy-on-write: pages are read from the file on
demand and nothing is copied unless written), so a multi-GB shard costs no extra memory
beyond what the caller keeps.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch

# safetensors dtype -> (numpy dtype read from the file, torch dtype it becomes, bytes per element)
# BF16 has no numpy dtype: its 16-bit patterns are read as int16 and reinterpreted by torch.
DTYPES: dict[str, tuple[str, torch.dtype]] = {
    "F64": ("<f8", torch.float64),
    "F32": ("<f4", torch.float32),
    "F16": ("<f2", torch.float16),
    "BF16": ("<i2", torch.bfloat16),
    "I64": ("<i8", torch.int64),
    "I32": ("<i4", torch.int32),
    "I16": ("<i2", torch.int16),
    "I8": ("i1", torch.int8),
    "U8": ("u1", torch.uint8),
    "BOOL": ("?", torch.bool),
}
TORCH_TO_ST = {t: name for name, (_, t) in DTYPES.items()}
MAX_HEADER = 100_000_000  # the reference implementation's limit


class SafetensorsError(ValueError):
    pass


def read_header(path: Path | str) -> tuple[dict, dict[str, dict], int]:
    """-> (metadata, {name: {dtype, shape, data_offsets}}, byte offset of the data section).
    Checks every entry: known dtype, shape of non-negative ints, offsets inside the file and
    consistent with dtype x shape."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise SafetensorsError(f"{path}: not a safetensors file (header length {n}, file {size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsError(f"{path}: header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    start, data_size = 8 + n, size - 8 - n
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise SafetensorsError(f"{path}: tensor {name!r}: entry needs dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has dtype {dtype}, which calmtk does not read "
                                   f"(supported: {', '.join(DTYPES)})")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise SafetensorsError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets {offsets!r} outside the "
                                   f"{data_size}-byte data section (truncated file?)")
        want = math.prod(shape) * np.dtype(DTYPES[dtype][0]).itemsize  # Python ints: no overflow
        if offsets[1] - offsets[0] != want:
            raise SafetensorsError(f"{path}: tensor {name!r}: {offsets[1] - offsets[0]} bytes for "
                                   f"{dtype} {shape} (expected {want})")
    # as the reference implementation requires: the tensors tile the data section exactly
    at = 0
    for name, entry in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        if entry["data_offsets"][0] != at:
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets {entry['data_offsets']} "
                                   f"{'overlap' if entry['data_offsets'][0] < at else 'leave a gap after'} "
                                   f"byte {at} (tensors must tile the data section)")
        at = entry["data_offsets"][1]
    if at != data_size:
        raise SafetensorsError(f"{path}: {data_size - at} bytes after the last tensor (not a safetensors file)")
    return metadata, header, start


def read_numpy(path: Path | str) -> dict[str, np.ndarray]:
    """Every tensor as a numpy array; BF16 widened to float32 (bits << 16). Memory-mapped
    (copy-on-write) for all but BF16, which is converted into new memory."""
    _, header, start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="c") if header else None
    out = {}
    for name, entry in header.items():
        out[name] = _array(mm, start, entry)
        if entry["dtype"] == "BF16":
            out[name] = (out[name].view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "BOOL":  # any non-zero byte is true
            out[name] = out[name].view(np.uint8) != 0
    return out


def _array(mm: np.memmap, start: int, entry: dict) -> np.ndarray:
    b, e = entry["data_offsets"]
    arr = mm[start + b : start + e].view(np.dtype(DTYPES[entry["dtype"]][0])).reshape(entry["shape"])
    if not arr.flags.aligned:  # a writer that did not align its data: copy into aligned memory
        arr = arr.copy()
    return arr


def read_torch(path: Path | str) -> dict[str, torch.Tensor]:
    """Every tensor as a torch tensor of its own dtype (BF16 stays bfloat16), backed by a
    copy-on-write memory map of the file: no copy is made until the caller copies."""
    _, header, start = read_header(path)
    if not header:
        return {}
    mm = np.memmap(path, dtype=np.uint8, mode="c")
    out = {}
    for name, entry in header.items():
        arr = _array(mm, start, entry)
        if entry["dtype"] == "BOOL":  # any non-zero byte is true (torch assumes 0 or 1)
            arr = arr.view(np.uint8) != 0
        if arr.size == 0:
            t = torch.empty(entry["shape"], dtype=DTYPES[entry["dtype"]][1])
        else:
            t = torch.from_numpy(arr)
            if entry["dtype"] == "BF16":
                t = t.view(torch.bfloat16)
        out[name] = t
    return out


def package_available() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def load_file(path: Path | str, use_package: bool | None = None) -> dict[str, torch.Tensor]:
    """The tensors of one `.safetensors` file on the CPU: with the `safetensors` package when it
    is importable (unless use_package=False), else with read_torch. Header errors are reported
    by this module's checks either way."""
    if use_package is None:
        use_package = package_available()
    read_header(path)
    if use_package:
        from safetensors.torch import load_file as st_load
        return st_load(str(path), device="cpu")
    return read_torch(path)


def save_file(tensors: dict[str, torch.Tensor], path: Path | str, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` in the documented layout: header padded with spaces to a multiple of 8,
    tensors ordered by element size (largest first, as the reference writer does, so every
    tensor's data stays aligned) then name, each written straight from its memory."""
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    at = 0
    arrays = []
    for name in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in TORCH_TO_ST:
            raise SafetensorsError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name here")
        dt = TORCH_TO_ST[t.dtype]
        arr = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        n = arr.nbytes
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [at, at + n]}
        arrays.append(arr)
        at += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for arr in arrays:
            if arr.size:
                f.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
