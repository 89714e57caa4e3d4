"""Reading PyTorch checkpoints (`torch.save` of a state dict) into numpy, without torch.

Why it exists: the weight-carrying wheels ship `.pth` / `.pt` files, and torch on these
machines means several GB of CUDA wheels; a state dict is only named arrays, so the build reads
them itself. Both of torch's formats are read: the zip archive (`archive/data.pkl` plus one
file per storage, torch >= 1.6) and the legacy stream (magic number, protocol, system info,
the pickle, its storage keys, then each storage's bytes prefixed by its element count).

The unpickler is restricted: it resolves only the handful of globals a state dict refers to
(OrderedDict, the storage classes, `_rebuild_tensor_v2`, `_rebuild_parameter`), so a checkpoint
cannot run code; anything else is an ExportError naming the global.
"""

from __future__ import annotations

import collections
import io
import pickle  # restricted below: only the globals a state dict uses resolve
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from plugins.onnx.export.errors import ExportError

__all__ = ["load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES: dict[str, type[np.generic]] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: type[np.generic]


@dataclass(slots=True)
class _Storage:
    """A flat buffer a tensor views; filled once its bytes have been read."""

    key: str
    dtype: type[np.generic]
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    materialised: list[np.ndarray] = field(default_factory=list)

    def array(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ExportError(f"checkpoint storage {self.storage.key} was never read")
        if not self.shape:
            return np.array(flat[self.offset])
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.shape,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(
    storage: _Storage, offset: int, size: Any, stride: Any, *_rest: Any
) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(stride))


def _rebuild_parameter(data: _TensorRef, *_rest: Any) -> _TensorRef:
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storage: Callable[[tuple[Any, ...]], _Storage]) -> None:
        super().__init__(file)
        self._storage = storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        raise ExportError(f"checkpoint refers to {module}.{name}, which a state dict never needs")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise ExportError(f"checkpoint holds an unexpected persistent id {pid!r:.80}")
        return self._storage(pid[1:])


def _storage_of(
    seen: dict[str, _Storage],
) -> Callable[[tuple[Any, ...]], _Storage]:
    def make(data: tuple[Any, ...]) -> _Storage:
        storage_type, key, _location, numel = data[:4]
        if not isinstance(storage_type, _StorageType):
            raise ExportError(f"checkpoint storage of unsupported type {storage_type!r:.80}")
        key = str(key)
        if key not in seen:
            seen[key] = _Storage(key, storage_type.dtype, int(numel))
        return seen[key]

    return make


def _materialise(value: Any) -> Any:
    if isinstance(value, _TensorRef):
        return value.array()
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    return value


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ExportError(f"{path.name}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        seen: dict[str, _Storage] = {}
        result = _Unpickler(io.BytesIO(archive.read(pickles[0])), _storage_of(seen)).load()
        for storage in seen.values():
            raw = archive.read(f"{prefix}data/{storage.key}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
    return result


def _load_legacy(path: Path) -> Any:
    with path.open("rb") as file:
        # Several pickles follow each other in one stream: each is read by its own unpickler.
        if _Header(file).load() != _LEGACY_MAGIC:
            raise ExportError(f"{path.name} is neither a zip nor a legacy torch checkpoint")
        _Header(file).load()  # protocol version
        _Header(file).load()  # system info (endianness, type sizes)
        seen: dict[str, _Storage] = {}
        result = _Unpickler(file, _storage_of(seen)).load()
        keys = _Header(file).load()
        for key in keys:
            storage = seen[str(key)]
            count = int.from_bytes(file.read(8), "little")
            itemsize = np.dtype(storage.dtype).itemsize
            raw = file.read(count * itemsize)
            if len(raw) != count * itemsize:
                raise ExportError(f"{path.name}: storage {key} is truncated")
            storage.data = np.frombuffer(raw, dtype=storage.dtype, count=count)
    return result


class _Header(pickle.Unpickler):
    """The legacy format's plain pickles (magic, protocol, system info, keys): no globals."""

    def find_class(self, module: str, name: str) -> Any:
        raise ExportError(f"checkpoint header refers to {module}.{name}")


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a `torch.save`d state dict (either format), as numpy arrays.

    A checkpoint holding `{"state_dict": {...}}` or `{"model": {...}}` yields the inner dict.
    """
    loaded = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    state = _materialise(loaded)
    if isinstance(state, dict):
        for wrapper in ("state_dict", "model"):
            inner = state.get(wrapper)
            if isinstance(inner, dict) and len(state) <= 3:
                state = inner
                break
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ExportError(f"{path.name} does not hold a state dict of tensors")
    return {str(k): v for k, v in state.items()}
