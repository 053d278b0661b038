"""Read a legacy (pre-1.6, non-zip) PyTorch `.pth` state dict into numpy arrays without PyTorch.

Layout of such a file, as written by `torch.save(..., _use_new_zipfile_serialization=False)`:

1. three small pickles: the magic number, the protocol version (1001) and a sys-info dict;
2. the object pickle (here a state dict), whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset,
   size, stride, ...)` calls and whose storages are *persistent ids*
   `('storage', storage_type, key, location, numel[, view_metadata])`;
3. a pickle listing the storage keys in the order their data follows;
4. for each key: the element count (int64 little-endian), then the raw little-endian element bytes.

Unpickling normally imports and calls anything a file names, so a `.pth` from elsewhere could run code. The
unpickler here admits only the tensor-rebuild functions (replaced by harmless stand-ins that record their
arguments), the storage type names (mapped to numpy dtypes) and `collections.OrderedDict`; any other global
raises `UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage type name -> numpy dtype (little-endian, as the legacy format stores it)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The file references a global outside the allow-list (it could run code if unpickled normally)."""


@dataclass(frozen=True)
class StorageType:
    """Stand-in for `torch.FloatStorage` & co.: only carries the numpy dtype."""

    name: str
    dtype: np.dtype


@dataclass
class LazyStorage:
    """A storage named by the object pickle; its bytes are read after the pickle (they follow it in the file)."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None  # 1-D, filled by load_legacy_state_dict


@dataclass
class LazyStorageView:
    """A legacy view into a root storage (`view_metadata = (view_key, offset, size)`)."""

    root: LazyStorage
    offset: int
    numel: int

    @property
    def dtype(self) -> np.dtype:
        return self.root.dtype


@dataclass
class LazyTensor:
    """What `_rebuild_tensor[_v2]` returned: a strided view into a storage, built once the storage is read."""

    storage: LazyStorage | LazyStorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        storage = self.storage
        base_offset = 0
        if isinstance(storage, LazyStorageView):
            base_offset, root_numel, storage = storage.offset, storage.numel, storage.root
        else:
            root_numel = storage.numel
        if storage.data is None:
            raise ValueError(f"storage {storage.key!r} has no data in the file")
        flat = storage.data[base_offset : base_offset + root_numel]
        size, stride = tuple(int(s) for s in self.size), tuple(int(s) for s in self.stride)
        if len(size) != len(stride) or any(s < 0 for s in stride) or self.offset < 0:
            raise ValueError(f"bad tensor geometry: size={size} stride={stride} offset={self.offset}")
        if 0 in size:
            return np.zeros(size, dtype=storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise ValueError(
                f"tensor (offset {self.offset}, size {size}, stride {stride}) runs past the end "
                f"of its storage of {flat.size} elements"
            )
        if stride == _contiguous_strides(size):
            count = int(np.prod(size, dtype=np.int64))
            return flat[self.offset : self.offset + count].reshape(size).copy()
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=size, strides=tuple(s * item for s in stride), writeable=False
        )
        return view.copy()


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(size):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _rebuild_tensor(storage, storage_offset, size, stride) -> LazyTensor:
    if not isinstance(storage, (LazyStorage, LazyStorageView)):
        raise ValueError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    return LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
) -> LazyTensor:
    return _rebuild_tensor(storage, storage_offset, size, stride)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only plain data, OrderedDicts, storage references and tensor-rebuild calls."""

    def __init__(self, file, *, allow_storages: bool = True):
        super().__init__(file)
        self.allow_storages = allow_storages
        self.storages: dict[str, LazyStorage] = {}

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: only tensors, storages "
                f"and OrderedDict are allowed in a state dict"
            ) from None

    def persistent_load(self, pid):
        if not self.allow_storages:
            raise pickle.UnpicklingError("unexpected persistent id in a header pickle")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(f"persistent id names {storage_type!r:.80}, not a storage type")
        key, numel = str(key), int(numel)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = LazyStorage(key, storage_type.dtype, numel)
        elif storage.dtype != storage_type.dtype:
            raise pickle.UnpicklingError(f"storage {key!r} referenced with two dtypes")
        if view_metadata is None:
            return storage
        _view_key, offset, size = view_metadata
        return LazyStorageView(storage, int(offset), int(size))


def _load_plain(f) -> object:
    return RestrictedUnpickler(f, allow_storages=False).load()


def load_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The state dict in a legacy-format `.pth` file as `{name: numpy array}`, in the file's (OrderedDict) order.

    Raises `ValueError` for a zip-format (torch >= 1.6) file or anything that does not follow the legacy
    layout, and `UnsafePickleError` (a `ValueError`) for a pickle naming a global outside the allow-list.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":
        raise ValueError(f"{path}: zip-format (torch >= 1.6) checkpoint; only the legacy format is supported")
    if raw[:1] != b"\x80":
        raise ValueError(f"{path}: not a legacy PyTorch checkpoint (does not start with a pickle)")
    f = io.BytesIO(raw)
    try:
        magic = _load_plain(f)
        if magic != MAGIC_NUMBER:
            raise ValueError(f"{path}: not a legacy PyTorch checkpoint (magic number {magic!r:.40})")
        version = _load_plain(f)
        if version != PROTOCOL_VERSION:
            raise ValueError(f"{path}: unsupported legacy checkpoint protocol version {version!r:.40}")
        sys_info = _load_plain(f)
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise ValueError(f"{path}: only little-endian checkpoints are supported (sys info {sys_info!r:.80})")
        unpickler = RestrictedUnpickler(f)
        obj = unpickler.load()
        keys = _load_plain(f)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path}: not a readable legacy PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: the checkpoint holds a {type(obj).__name__}, not a state dict")
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(unpickler.storages):
        raise ValueError(f"{path}: storage key list does not match the storages the state dict references")

    pos = f.tell()
    for key in map(str, keys):
        storage = unpickler.storages[key]
        if pos + 8 > len(raw):
            raise ValueError(f"{path}: truncated before storage {key!r}")
        numel = int(np.frombuffer(raw, dtype="<i8", count=1, offset=pos)[0])
        if numel != storage.numel:
            raise ValueError(f"{path}: storage {key!r} has {numel} elements in the data, {storage.numel} in the pickle")
        pos += 8
        nbytes = numel * storage.dtype.itemsize
        if pos + nbytes > len(raw):
            raise ValueError(f"{path}: truncated inside storage {key!r}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype, count=numel, offset=pos)
        pos += nbytes
    if pos != len(raw):
        raise ValueError(f"{path}: {len(raw) - pos} unexpected bytes after the last storage")

    state: dict[str, np.ndarray] = collections.OrderedDict()
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, LazyTensor):
            raise ValueError(f"{path}: entry {name!r:.60} is a {type(value).__name__}, not a tensor")
        state[name] = value.materialize().astype(value.storage.dtype.newbyteorder("="), copy=False)
    return state
