"""pyconv.save / pyconv.load: state dicts (name -> array) in .npz or .safetensors files.

A flat mapping of names to arrays is stored as such (np.load and any safetensors reader see
the names). Anything else made of dicts, lists, tuples, strings, numbers, None and arrays (an
optimizer's state_dict, a checkpoint {"model": ..., "optimizer": ..., "epoch": 3}) is stored as
its arrays plus a JSON description of the structure, and load rebuilds it.

Neither format can carry code: .npz members are written and read with allow_pickle=False,
.safetensors is a JSON header plus raw little-endian bytes, written and parsed here with
numpy and json only. Every malformed, truncated or hostile file raises ValueError naming
what is wrong; nothing is executed and nothing larger than the file's own data is allocated.
"""
import collections
import io
import json
import os
import struct
import zipfile

import numpy as np

# safetensors dtype codes <-> numpy dtypes ("BF16" is read by widening to float32)
_ST_TO_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
             "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_NP_TO_ST = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _ST_TO_NP.items()}
_ITEMSIZE = {k: np.dtype(v).itemsize for k, v in _ST_TO_NP.items()}
_ITEMSIZE["BF16"] = 2
_MAX_HEADER = 100 * 1024 * 1024


def _to_numpy(name, value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):       # pyconv or torch tensor
        value = value.detach().cpu()
        value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    elif hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        value = value.get()
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf" or arr.dtype.itemsize > 8:
        raise TypeError(f"pyconv.save: value for key {name!r} must be a numeric array, got dtype {arr.dtype}")
    return arr


_TREE = "__pyconv_tree__"
_SCALARS = (bool, int, float, str, type(None))


def _is_arraylike(v):
    return (isinstance(v, (np.ndarray, np.generic)) or hasattr(v, "__cuda_array_interface__")
            or (hasattr(v, "detach") and hasattr(v, "cpu")))


def _is_flat(obj):
    return hasattr(obj, "items") and all(isinstance(k, str) and _is_arraylike(v) for k, v in obj.items())


def _encode_tree(obj, arrays, depth=0):
    if depth > 100:
        raise ValueError("pyconv.save: structure nested more than 100 levels deep")
    if _is_arraylike(obj):
        arrays[f"a{len(arrays)}"] = _to_numpy(f"a{len(arrays)}", obj)
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, _SCALARS):
        return obj
    if hasattr(obj, "items"):
        items = []
        for k, v in obj.items():
            if not isinstance(k, _SCALARS) or (isinstance(k, float) and not np.isfinite(k)):
                raise TypeError(f"pyconv.save: dict keys must be str, int, float, bool or None, got {k!r}")
            items.append([k, _encode_tree(v, arrays, depth + 1)])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode_tree(v, arrays, depth + 1) for v in obj]}
    if isinstance(obj, list):
        return [_encode_tree(v, arrays, depth + 1) for v in obj]
    raise TypeError(f"pyconv.save: cannot store an object of type {type(obj).__name__} "
                    f"(arrays, dicts, lists, tuples, str, numbers and None only)")


def _decode_tree(node, arrays, bad, depth=0):
    if depth > 100:
        raise bad("structure nested too deeply")
    if isinstance(node, _SCALARS):
        return node
    if isinstance(node, list):
        return [_decode_tree(v, arrays, bad, depth + 1) for v in node]
    if isinstance(node, dict) and len(node) == 1:
        (tag, val), = node.items()
        if tag == "__array__" and isinstance(val, int) and not isinstance(val, bool) and f"a{val}" in arrays:
            return arrays[f"a{val}"]
        if tag == "__float__" and val in ("inf", "-inf", "nan"):
            return float(val)
        if tag == "__tuple__" and isinstance(val, list):
            return tuple(_decode_tree(v, arrays, bad, depth + 1) for v in val)
        if tag == "__dict__" and isinstance(val, list) and all(
                isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], _SCALARS) for kv in val):
            return {k: _decode_tree(v, arrays, bad, depth + 1) for k, v in val}
    raise bad(f"unexpected structure node {str(node)[:80]!r}")


def _check_mapping(obj):
    if not _is_flat(obj):
        arrays = collections.OrderedDict()
        tree = _encode_tree(obj, arrays)
        arrays[_TREE] = np.frombuffer(json.dumps(tree).encode("utf-8"), dtype=np.uint8)
        return arrays
    out = collections.OrderedDict()
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"pyconv.save: keys must be strings, got {k!r}")
        if k in ("__metadata__", _TREE):
            raise ValueError(f"pyconv.save: {k!r} is reserved and cannot be used as a key")
        out[k] = _to_numpy(k, v)
    return out


def _is_safetensors_path(path):
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(".safetensors")


def save(state_dict, path, format=None):
    """Writes a mapping of names to arrays (or a nested structure, see above) to `path` (a path or a
    writable binary file).
    format: "npz" or "safetensors"; by default safetensors when the name ends in .safetensors."""
    arrays = _check_mapping(state_dict)
    fmt = format or ("safetensors" if _is_safetensors_path(path) else "npz")
    if fmt not in ("npz", "safetensors"):
        raise ValueError(f"pyconv.save: format expects 'npz' or 'safetensors', got {format!r}")
    data = _safetensors_bytes(arrays) if fmt == "safetensors" else _npz_bytes(arrays)
    if hasattr(path, "write"):
        path.write(data)
        return
    with open(path, "wb") as f:
        f.write(data)


def load(path, format=None):
    """Reads a file written by pyconv.save (or any .npz without object arrays, or any .safetensors
    file); returns an OrderedDict of numpy arrays. The format is recognised from the content."""
    if hasattr(path, "read"):
        data, where = path.read(), "file object"
    else:
        where = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("pyconv.load: expects a binary file")
    fmt = format or ("npz" if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06" else "safetensors")
    if fmt == "npz":
        out = _load_npz(data, where)
    elif fmt == "safetensors":
        out = _load_safetensors(data, where)
    else:
        raise ValueError(f"pyconv.load: format expects 'npz' or 'safetensors', got {format!r}")
    if _TREE not in out:
        return out

    def bad(msg):
        return ValueError(f"pyconv.load: {where} has an invalid structure description: {msg}")
    raw = out.pop(_TREE)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise bad("not a byte string")
    try:
        tree = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"not valid JSON ({e})") from None
    return _decode_tree(tree, out, bad)


# ----------------------------------------------------------------------------- npz

def _npz_bytes(arrays):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, a in arrays.items():
            with zf.open(k + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(a, order="C"), allow_pickle=False)
    return buf.getvalue()


def _load_npz(data, where):
    def bad(msg):
        return ValueError(f"pyconv.load: {where} is not a valid .npz state dict: {msg}")

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        raise bad(f"unreadable zip archive ({e})") from None
    out = collections.OrderedDict()
    with zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise bad(f"member {name!r} is not a .npy array")
            key = name[:-4]
            if key in out:
                raise bad(f"duplicate key {key!r}")
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    if dtype.hasobject or dtype.kind not in "biuf":
                        raise ValueError(f"dtype {dtype} is not a numeric dtype")
                    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"header declares {nbytes} bytes of data but the member holds "
                                         f"{info.file_size}")
                with zf.open(info) as f:
                    arr = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError, TypeError) as e:
                raise bad(f"array {key!r}: {e}") from None
            out[key] = arr
    return out


# ----------------------------------------------------------------------------- safetensors

def _safetensors_bytes(arrays):
    header, chunks, offset = {}, [], 0
    for k, a in arrays.items():
        dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        code = _NP_TO_ST.get(dt)
        if code is None:
            raise TypeError(f"pyconv.save: dtype {a.dtype} of key {k!r} has no safetensors code")
        raw = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[k] = {"dtype": code, "shape": [int(s) for s in a.shape], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r} in the header")
        d[k] = v
    return d


def _load_safetensors(data, where):
    def bad(msg):
        return ValueError(f"pyconv.load: {where} is not a valid .safetensors file: {msg}")

    if len(data) < 8:
        raise bad(f"file is {len(data)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER:
        raise bad(f"header length {n} exceeds the {_MAX_HEADER}-byte limit")
    if 8 + n > len(data):
        raise bad(f"header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        text = bytes(data[8:8 + n]).decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    body = memoryview(data)[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                                for k, v in meta.items())):
        raise bad("__metadata__ must map strings to strings")
    spans = []
    for k, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {k!r} must have exactly dtype, shape and data_offsets")
        code, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if code not in _ITEMSIZE:
            raise bad(f"entry {k!r} has unsupported dtype {code!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in shape):
            raise bad(f"entry {k!r} has an invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= len(body)):
            raise bad(f"entry {k!r} has data_offsets {offs!r} outside the {len(body)}-byte data buffer")
        nbytes = int(np.prod(shape, dtype=object)) * _ITEMSIZE[code]
        if offs[1] - offs[0] != nbytes:
            raise bad(f"entry {k!r} of dtype {code} and shape {shape} needs {nbytes} bytes, "
                      f"data_offsets give {offs[1] - offs[0]}")
        spans.append((offs[0], offs[1], k))
    end = 0
    for b, e, k in sorted(spans):
        if b != end:
            raise bad(f"entry {k!r} starts at byte {b}, expected {end} (overlapping or gapped data)")
        end = e
    if end != len(body):
        raise bad(f"data buffer is {len(body)} bytes but the entries cover {end}")
    out = collections.OrderedDict()
    for k, e in header.items():
        b, f = e["data_offsets"]
        code = e["dtype"]
        raw = body[b:f]
        if code == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_ST_TO_NP[code]).astype(np.dtype(_ST_TO_NP[code]).newbyteorder("="))
        out[k] = arr.reshape(e["shape"]).copy()
    return out
