"""A pickle reader that builds data and never runs code from the file.

NVIDIA's network pickles carry their networks' Python source and, read with plain
`pickle`, execute it; any pickle can also name an arbitrary callable (`os.system`, ...)
in a `__reduce__`. This unpickler resolves only an explicit allowlist of globals, each
mapped to a function of ours that checks its arguments; everything else is refused with
`UnsafeCheckpointError` before it can be called. Persistent NVIDIA objects become inert
`PersistentObject` records (class name, constructor keywords, parameters) whose embedded
source is kept as text and never executed.
"""

import argparse
import collections
import io
import math
import os
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from photodrag.errors import BadCheckpointError, UnsafeCheckpointError


class EasyDict(dict):
    """Stand-in for dnnlib's EasyDict: a plain dict that also allows attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class PersistentObject:
    """An object pickled by NVIDIA's `torch_utils.persistence`, rebuilt as data only."""
    class_name: str
    state: Dict[str, Any]
    module_src: str = field(default='', repr=False)     # never executed

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get('_init_args') or ())

    @property
    def init_kwargs(self) -> Dict[str, Any]:
        return dict(self.state.get('_init_kwargs') or {})

    @property
    def children(self) -> Dict[str, 'PersistentObject']:
        return dict(self.state.get('_modules') or {})


class TFNetwork:
    """Stand-in for dnnlib.tflib.network.Network: keeps the pickled state as a dict."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise BadCheckpointError('TensorFlow network state is not a dict')
        self.state = state


def _reconstruct_persistent(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get('type') != 'class':
        raise BadCheckpointError('malformed persistent object in NVIDIA pickle')
    name, state = meta.get('class_name'), meta.get('state')
    if not isinstance(name, str) or not isinstance(state, dict):
        raise BadCheckpointError('malformed persistent object in NVIDIA pickle (no class name or state)')
    src = meta.get('module_src')
    return PersistentObject(class_name=name, state=dict(state), module_src=src if isinstance(src, str) else '')


def _load_storage_bytes(data: Any):
    # Storages inside a plain pickle are nested torch.save archives; torch's weights-only
    # loader reads them without running anything.
    if not isinstance(data, (bytes, bytearray)):
        raise BadCheckpointError('malformed tensor storage in pickle')
    try:
        storage = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location='cpu')
    except Exception as e:
        raise BadCheckpointError(f'corrupt tensor storage in pickle ({short(e, 160)})') from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise BadCheckpointError('tensor storage in pickle did not decode to a storage')
    return storage


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None) -> torch.Tensor:
    if not isinstance(storage, torch.TypedStorage):
        raise BadCheckpointError('tensor in pickle does not point at a typed storage')
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise BadCheckpointError(f'tensor in pickle has an invalid layout (size {size}, stride {stride})')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)     # TypedStorage is what old pickles hold
        dtype, untyped = storage.dtype, storage._untyped_storage
    available = untyped.nbytes() // torch.empty((), dtype=dtype).element_size()
    numel = math.prod(size)
    if numel > min(MAX_TENSOR_ELEMENTS, max(available, 1)):
        raise BadCheckpointError(f'tensor in pickle claims {numel:,} elements in a storage of {available:,} '
                                 '(a crafted or corrupt file?)')
    if all(s > 0 for s in size):
        needed = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1
        if needed > available:
            raise BadCheckpointError(f'tensor in pickle reaches past its storage ({needed} > {available} '
                                     'elements); the file is corrupt')
    t = torch.empty((0,), dtype=dtype)
    t.set_(untyped, offset, size, stride)
    return t


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise BadCheckpointError('parameter in pickle holds no tensor')
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


class _TypeName:
    """A class a pickle names only as an argument (`torch.Tensor` to `_rebuild_from_type_v2`,
    `numpy.ndarray` to `_reconstruct`): never callable, so `torch.Tensor(20000, 20000)` or
    `numpy.ndarray((40000, 40000))` in a pickle allocates nothing."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(f'pickle asks to call {self.name}({short(bounded_repr(args), 60)}) directly; '
                                    'checkpoints only rebuild tensors and arrays from their stored bytes')

    def __repr__(self):
        return self.name


_TENSOR, _PARAMETER, _NDARRAY = _TypeName('torch.Tensor'), _TypeName('torch.nn.Parameter'), _TypeName('numpy.ndarray')


def _rebuild_from_type_v2(func, new_type, args, state):
    if func is not _rebuild_tensor or new_type not in (_TENSOR, _PARAMETER) or not isinstance(args, tuple):
        raise UnsafeCheckpointError(f'pickle asks to rebuild a tensor of type {short(repr(new_type), 60)} with '
                                    f'{short(repr(func), 60)}')
    t = func(*args)
    return torch.nn.Parameter(t) if new_type is _PARAMETER else t


def _encode_latin1(text, encoding='latin1'):
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafeCheckpointError(f'pickle asks to encode with {encoding!r}')
    return text.encode('latin1')


# No tensor of a StyleGAN2 has more elements than this (FFHQ-1024's largest has 2.4 M); a
# file that declares more, or whose tensor claims more elements than its storage holds
# (stride 0: one number posing as a huge array), is refused before anything is allocated.
MAX_TENSOR_ELEMENTS = 1 << 28


def _numpy_reconstruct(subtype, shape, dtype_code):
    if subtype is not _NDARRAY:
        raise UnsafeCheckpointError(f'pickle asks to build a numpy array of type {short(repr(subtype), 60)}')
    # numpy pickles an empty array here and fills it in __setstate__ (which checks the data's length)
    if not (isinstance(shape, tuple) and len(shape) <= 8 and all(isinstance(n, int) and 0 <= n for n in shape)
            and int(np.prod(shape, dtype=object)) <= 1):
        raise BadCheckpointError(f'numpy array in pickle declares shape {short(shape)} before its data')
    if not isinstance(dtype_code, (str, bytes)) or np.dtype(dtype_code).hasobject:
        raise UnsafeCheckpointError('pickle asks for a numpy array of Python objects')
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _bytearray(data=b'', encoding=None):
    # pickles write bytearray(b'...') as bytearray(text, 'latin-1'); bytearray(3_000_000_000)
    # would allocate 3 GB of zeros from a 32-byte file
    if isinstance(data, str) and encoding in ('latin1', 'latin-1'):
        return bytearray(data, 'latin-1')
    if isinstance(data, (bytes, bytearray)) and encoding is None:
        return bytearray(data)
    raise BadCheckpointError(f'pickle asks for a bytearray of {type(data).__name__} {short(data, 30)}, '
                             'which no checkpoint does')


_CLASSES_FOR_RECONSTRUCTOR = (EasyDict, TFNetwork, argparse.Namespace)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafeCheckpointError(f'pickle asks for a numpy scalar of type {dtype!r}')
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _copyreg_reconstructor(cls, base, state):
    if cls not in _CLASSES_FOR_RECONSTRUCTOR or base not in (object, dict):
        raise UnsafeCheckpointError(f'pickle asks to reconstruct {cls!r}')
    obj = base.__new__(cls)
    if base is dict and state is not None:
        dict.__init__(obj, state)
    return obj


def _device(*args):
    return torch.device(*args)


# Globals that NVIDIA, TensorFlow-era and torch pickles use, and what we build for each.
ALLOWED: Dict[Tuple[str, str], Any] = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'bytearray'): _bytearray,
    ('copyreg', '_reconstructor'): _copyreg_reconstructor,
    ('_codecs', 'encode'): _encode_latin1,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): _TENSOR,
    ('torch.nn.parameter', 'Parameter'): _PARAMETER,
    ('torch.storage', '_load_from_bytes'): _load_storage_bytes,
    ('torch', 'device'): _device,
    ('torch', 'Size'): torch.Size,
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('dnnlib', 'EasyDict'): EasyDict,
    ('dnnlib.tflib.network', 'Network'): TFNetwork,
    ('numpy', 'ndarray'): _NDARRAY,
    ('numpy', 'dtype'): np.dtype,
    ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
}
for _name in ('float16', 'bfloat16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool'):
    ALLOWED[('torch', _name)] = getattr(torch, _name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler over `ALLOWED`; `source` names the file in error messages."""

    def __init__(self, file, source: str = 'checkpoint'):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        target = ALLOWED.get((module, name))
        if target is None:
            raise UnsafeCheckpointError(
                f'{self.source} asks to use {module}.{name}, which a checkpoint has no business with '
                f'(checkpoints hold weights and settings, not code). It was refused and nothing in '
                f'the file ran. If you trust its origin, re-save it with its own code as a state dict.')
        return target

    def persistent_load(self, pid):
        raise BadCheckpointError(f'{self.source} is a torch.save archive, not a plain pickle')


# What the opcode scan (`scan_pickle`) allows before anything is built. A StyleGAN2 pickle
# (FFHQ-1024, 364 MB) has about 5 000 memo entries, nests 12 deep and expands to 60 000 nodes.
MAX_MEMO = 1 << 22                  # memo entries (and any memo index)
MAX_NESTING = 200                   # containers inside containers
MAX_EXPANDED_NODES = 50_000_000     # objects, counting every reference to a shared one again
MAX_EXPANDED_BYTES_OVER = 1 << 28   # bytes counted that way beyond the file's own size


class _Cell:
    """What the scan knows of one object on the pickle's stack: how many objects and bytes it
    would be, expanded as a tree (a shared object counted at each reference), and how deep."""
    __slots__ = ('nodes', 'size', 'depth')

    def __init__(self, nodes: int = 1, size: int = 0, depth: int = 0):
        self.nodes, self.size, self.depth = nodes, size, depth

    def take(self, items) -> '_Cell':
        for c in items:
            self.nodes += c.nodes
            self.size += c.size
            self.depth = max(self.depth, c.depth + 1)
        return self


_MARK = object()
_TO_MARK_BUILDS = {'TUPLE', 'LIST', 'DICT', 'FROZENSET', 'INST', 'OBJ'}
_TO_MARK_ADDS = {'APPENDS', 'SETITEMS', 'ADDITEMS'}
_N_TUPLE = {'TUPLE1': 1, 'TUPLE2': 2, 'TUPLE3': 3}
_EMPTY = {'EMPTY_LIST', 'EMPTY_DICT', 'EMPTY_TUPLE', 'EMPTY_SET'}


def scan_pickle(f, source: str = 'the pickle', file_size: Optional[int] = None) -> None:
    """Walk the pickle's opcode stream in `f` without building anything, and refuse (one line,
    `BadCheckpointError`) a stream that would hang or exhaust memory when built: memo indices
    beyond what was stored or beyond MAX_MEMO, containers nested over MAX_NESTING, objects that
    expand (each reference to a shared object counted again: what hashing a tuple key, a repr
    or numpy's conversion of nested lists costs) to over MAX_EXPANDED_NODES, or to far more
    bytes than the file holds, and opcodes no checkpoint uses (extension registry, out-of-band
    buffers). Declared lengths are checked against the bytes present by the reading itself."""
    import pickletools
    budget = (file_size or 0) + MAX_EXPANDED_BYTES_OVER
    stack: list = []
    memo: Dict[int, _Cell] = {}

    def fail(why: str):
        raise BadCheckpointError(f'{source} {why} (a crafted or corrupt file?); nothing was built from it')

    def pop_to_mark():
        items = []
        while stack:
            top = stack.pop()
            if top is _MARK:
                return items
            items.append(top)
        fail('pops to a mark it never set')

    def pop():
        if not stack or stack[-1] is _MARK:
            fail('pops an object that is not there')
        return stack.pop()

    def top():
        if not stack or stack[-1] is _MARK:
            fail('adds to an object that is not there')
        return stack[-1]

    def check(cell: _Cell) -> _Cell:
        if cell.nodes > MAX_EXPANDED_NODES:
            fail(f'builds an object of over {MAX_EXPANDED_NODES:,} parts, counting shared parts at each use')
        if cell.size > budget:
            fail(f'builds objects of {cell.size:,} bytes from a {file_size or 0:,}-byte file, counting shared '
                 'parts at each use')
        if cell.depth > MAX_NESTING:
            fail(f'nests containers over {MAX_NESTING} deep')
        return cell

    try:
        for op, arg, _ in pickletools.genops(f):
            name = op.name
            if name in ('PROTO', 'FRAME', 'STOP'):
                continue
            if name in ('EXT1', 'EXT2', 'EXT4', 'NEXT_BUFFER', 'READONLY_BUFFER'):
                fail(f'uses the {name} opcode, which no checkpoint does')
            if name == 'MARK':
                stack.append(_MARK)
            elif name in ('PUT', 'BINPUT', 'LONG_BINPUT', 'MEMOIZE'):
                index = len(memo) if name == 'MEMOIZE' else int(arg)
                if index >= MAX_MEMO or index > 2 * len(memo) + 1024:
                    fail(f'stores memo entry {index:,} after {len(memo):,}')
                memo[index] = top()
            elif name in ('GET', 'BINGET', 'LONG_BINGET'):
                cell = memo.get(int(arg))
                if cell is None:
                    fail(f'reads memo entry {int(arg):,}, which it never stored')
                stack.append(cell)
            elif name in _TO_MARK_BUILDS:
                stack.append(check(_Cell().take(pop_to_mark())))
            elif name in _N_TUPLE:
                stack.append(check(_Cell().take([pop() for _ in range(_N_TUPLE[name])])))
            elif name in _EMPTY:
                stack.append(_Cell())
            elif name in _TO_MARK_ADDS:
                items = pop_to_mark()
                check(top().take(items))
            elif name in ('APPEND', 'BUILD'):
                item = pop()
                check(top().take([item]))
            elif name == 'SETITEM':
                value, key = pop(), pop()
                check(top().take([key, value]))
            elif name in ('REDUCE', 'NEWOBJ'):
                args, _callable = pop(), pop()
                stack.append(check(_Cell().take([args])))
            elif name == 'NEWOBJ_EX':
                kwargs, args, _cls = pop(), pop(), pop()
                stack.append(check(_Cell().take([args, kwargs])))
            elif name == 'STACK_GLOBAL':
                pop(), pop()
                stack.append(_Cell())
            elif name == 'BINPERSID':
                pop()
                stack.append(_Cell())
            elif name == 'POP':
                if stack:
                    stack.pop()
            elif name == 'POP_MARK':
                pop_to_mark()
            elif name == 'DUP':
                stack.append(top())
            else:                           # a constant, a global, a persistent id
                size = len(arg) if isinstance(arg, (bytes, bytearray, str)) else 8
                stack.append(check(_Cell(1, size)))
    except BadCheckpointError:
        raise
    except (ValueError, EOFError, OverflowError, MemoryError, UnicodeDecodeError) as e:
        raise BadCheckpointError(f'{source} is truncated or corrupt: {short(e, 160)}') from None


def restricted_load(f, source: str = 'checkpoint') -> Any:
    """Read one pickle from the binary file `f` with `RestrictedUnpickler`, once `scan_pickle`
    has found nothing in its opcodes that would hang or exhaust memory."""
    start = f.tell()
    try:
        size = os.fstat(f.fileno()).st_size - start
    except (AttributeError, OSError, io.UnsupportedOperation):
        size = None
    scan_pickle(f, source, size)
    f.seek(start)
    try:
        return RestrictedUnpickler(f, source).load()
    except (UnsafeCheckpointError, BadCheckpointError):
        raise
    except RecursionError:
        raise BadCheckpointError(f'{source} nests its objects too deeply for any checkpoint (a crafted '
                                 'file?)') from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, OverflowError, MemoryError, UnicodeDecodeError) as e:
        raise BadCheckpointError(f'{source} is truncated or corrupt: {type(e).__name__}: {short(e, 160)}') from None


MAX_MODULES = 10_000        # a StyleGAN2 generator has a few hundred
MAX_DEPTH = 64


def module_tensors(obj: PersistentObject, prefix: str = '') -> Dict[str, torch.Tensor]:
    """All parameters and buffers of a persistent module tree, by dotted name.

    Walked without recursion, each module once: a crafted pickle whose modules share children
    (a DAG: exponential for a naive walk) or contain themselves (a cycle) is refused in
    milliseconds, as is one nested or sized beyond any real network."""
    out: Dict[str, torch.Tensor] = {}
    seen = set()
    todo = [(obj, prefix, 0)]
    while todo:
        node, where, depth = todo.pop()
        if id(node) in seen:
            raise BadCheckpointError(f'the network in the pickle is not a tree: {short(where.rstrip("."))} is reached '
                                     'twice (a crafted file?)')
        seen.add(id(node))
        if len(seen) > MAX_MODULES or depth > MAX_DEPTH:
            raise BadCheckpointError(f'the network in the pickle has over {MAX_MODULES} modules or is nested over '
                                     f'{MAX_DEPTH} deep; no generator is (a crafted file?)')
        for group in ('_parameters', '_buffers'):
            entries = node.state.get(group) or {}
            if not isinstance(entries, Mapping):
                raise BadCheckpointError(f'malformed {group} in {short(node.class_name)}')
            for name, value in entries.items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise BadCheckpointError(f'{short(where + str(name))} in the pickle is not a tensor')
                out[where + str(name)] = value
        children = node.state.get('_modules') or {}
        if not isinstance(children, Mapping):
            raise BadCheckpointError(f'malformed _modules in {short(node.class_name)}')
        for name, child in reversed(list(children.items())):
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise BadCheckpointError(f'sub-module {short(where + str(name))} ({type(child).__name__}) is not one '
                                         'of NVIDIA\'s persistent network classes')
            todo.append((child, f'{where}{name}.', depth + 1))
    return out


def bounded_repr(value: Any, limit: int = 80) -> str:
    """`value`'s repr with every container cut short and nesting limited: its cost is bounded
    whatever a file made it (a shared list nested 60 deep has an exponential plain repr)."""
    import reprlib
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset, r.maxfrozenset = 3, 6, 6, 4, 4, 4
    r.maxstring, r.maxother, r.maxlong = limit, limit, 40
    try:
        return r.repr(value)
    except Exception:        # noqa: BLE001 - a value from a file must not break the error that reports it
        return f'<{type(value).__name__}>'



def short(text: Any, limit: int = 80) -> str:
    """`text` as quoted in an error message: at most `limit` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def some_keys(mapping: Mapping, limit: int = 8) -> str:
    """A few of a mapping's keys, each shortened, for an error message of bounded length."""
    keys = []
    for i, k in enumerate(mapping):
        if i == limit:
            keys.append(f'... ({len(mapping) - limit} more)')
            break
        keys.append(short(k, 40))
    return ', '.join(keys) if keys else 'nothing'


def finite_or_raise(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights with NaN or infinity: they would only ever render garbage."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BadCheckpointError(f'{source}: {name} contains NaN or infinite values')



def check_tensors(tensors: Mapping[Any, Any], source: str, what: str = 'weights') -> Dict[str, torch.Tensor]:
    """`tensors` as a dict of real tensors, or a one-line error: every key a short string,
    every value a tensor no larger than its own storage (stride-0 tricks) or any network's."""
    if not isinstance(tensors, Mapping):
        raise BadCheckpointError(f'{source}: {what} are {type(tensors).__name__}, not a dict of tensors')
    if len(tensors) > MAX_MODULES * 4:
        raise BadCheckpointError(f'{source}: {what} hold {len(tensors):,} entries; no generator has that many')
    out = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or len(name) > 200:
            raise BadCheckpointError(f'{source}: {what} have a key that is not a short name ({short(name, 40)})')
        if not isinstance(t, torch.Tensor):
            raise BadCheckpointError(f'{source}: {short(name)} in {what} is {type(t).__name__}, not a tensor')
        storage = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        if t.numel() > MAX_TENSOR_ELEMENTS or (t.numel() > 1 and t.numel() > storage):
            raise BadCheckpointError(f'{source}: {short(name)} claims {t.numel():,} elements in a storage of '
                                     f'{storage:,} (a crafted or corrupt file?)')
        out[name] = t
    return out
