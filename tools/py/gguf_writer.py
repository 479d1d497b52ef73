"""Minimal GGUF v3 writer for engram's tooling (training export, golden fixtures).

Written from the GGUF specification: little-endian header (magic, version,
tensor count, metadata count), metadata key/values, tensor infos, then the
tensor data section aligned to `general.alignment` (32 by default).

Tensor shapes are given in PyTorch/numpy order (outermost first); GGUF stores
dimensions innermost first, so they are reversed on write.
"""

import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# Metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

# Tensor types (ggml ids) this writer can emit directly from numpy arrays.
GGML_F32 = 0
GGML_F16 = 1
GGML_BF16 = 30

_SCALAR_FMT = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h",
    T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?",
    T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}


def _pack_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    """Collects metadata and tensors, then writes one file with `write(path)`."""

    def __init__(self):
        self.kv = []  # (key, type, value, elem_type)
        self.tensors = []  # (name, shape, ggml_type, raw bytes)

    # -- metadata -------------------------------------------------------
    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value, None))

    def add_string(self, key, value):
        self.add(key, T_STRING, value)

    def add_u32(self, key, value):
        self.add(key, T_UINT32, int(value))

    def add_i32(self, key, value):
        self.add(key, T_INT32, int(value))

    def add_f32(self, key, value):
        self.add(key, T_FLOAT32, float(value))

    def add_bool(self, key, value):
        self.add(key, T_BOOL, bool(value))

    def add_array(self, key, elem_type, values):
        self.kv.append((key, T_ARRAY, list(values), elem_type))

    # -- tensors --------------------------------------------------------
    def add_tensor(self, name, array, ggml_type=GGML_F32):
        """Add a numpy array; F32/F16/BF16 are converted here."""
        a = np.ascontiguousarray(array)
        if ggml_type == GGML_F32:
            raw = a.astype("<f4").tobytes()
        elif ggml_type == GGML_F16:
            raw = a.astype("<f2").tobytes()
        elif ggml_type == GGML_BF16:
            f = a.astype("<f4")
            u = f.view("<u4").astype(np.uint64)
            # round to nearest even, as PyTorch does
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
            raw = u.tobytes()
        else:
            raise ValueError(f"add_tensor: unsupported ggml type {ggml_type}; use add_raw_tensor")
        self.tensors.append((name, tuple(a.shape), ggml_type, raw))

    def add_raw_tensor(self, name, shape, ggml_type, raw):
        """Add already-encoded bytes (e.g. quantized blocks) with a torch-order shape."""
        self.tensors.append((name, tuple(shape), ggml_type, bytes(raw)))

    # -- output ---------------------------------------------------------
    def _pack_value(self, vtype, value, elem_type):
        if vtype == T_STRING:
            return _pack_string(value)
        if vtype == T_ARRAY:
            out = [struct.pack("<IQ", elem_type, len(value))]
            if elem_type == T_STRING:
                out.extend(_pack_string(v) for v in value)
            else:
                fmt = _SCALAR_FMT[elem_type]
                out.append(b"".join(struct.pack(fmt, v) for v in value))
            return b"".join(out)
        return struct.pack(_SCALAR_FMT[vtype], value)

    def write(self, path):
        header = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, vtype, value, elem_type in self.kv:
            header.append(_pack_string(key))
            header.append(struct.pack("<I", vtype))
            header.append(self._pack_value(vtype, value, elem_type))
        offset = 0
        offsets = []
        for name, shape, gtype, raw in self.tensors:
            offsets.append(offset)
            dims = list(reversed(shape))
            header.append(_pack_string(name))
            header.append(struct.pack("<I", len(dims)))
            header.append(struct.pack(f"<{len(dims)}Q", *dims))
            header.append(struct.pack("<IQ", gtype, offset))
            offset += len(raw)
            offset = (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        head = b"".join(header)
        pad = (-len(head)) % ALIGNMENT
        with open(path, "wb") as f:
            f.write(head)
            f.write(b"\0" * pad)
            for (name, shape, gtype, raw), off in zip(self.tensors, offsets):
                f.write(raw)
                f.write(b"\0" * ((-len(raw)) % ALIGNMENT))
