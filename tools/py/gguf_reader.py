"""Minimal GGUF (v2/v3) reader for engram's Python tooling.

Written from the GGUF specification. Returns metadata as a dict and tensors as numpy
arrays in PyTorch order (outermost dimension first, i.e. GGUF's ne reversed).
Supports F32, F16 and BF16 tensors (enough for engram-tiny and the golden fixtures).

    r = GGUFReader("models/engram-tiny.gguf")
    r.metadata["llama.block_count"]; r.tensor("token_embd.weight")  # np.float32 [n_vocab, n_embd]
"""
import struct

import numpy as np

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
T_STRING, T_ARRAY = 8, 9
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30


class GGUFReader:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic = self.buf[:4]
        if magic != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file (magic {magic!r})")
        self.pos = 4
        self.version = self._u(4, "<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: unsupported GGUF version {self.version}")
        n_tensors = self._u(8, "<Q")
        n_kv = self._u(8, "<Q")
        self.metadata = {}
        self.types = {}
        for _ in range(n_kv):
            key = self._str()
            vt = self._u(4, "<I")
            self.types[key] = vt
            self.metadata[key] = self._value(vt)
        self.tensor_info = {}
        self.tensor_order = []
        for _ in range(n_tensors):
            name = self._str()
            nd = self._u(4, "<I")
            ne = list(struct.unpack_from(f"<{nd}Q", self.buf, self.pos))
            self.pos += 8 * nd
            gtype = self._u(4, "<I")
            off = self._u(8, "<Q")
            self.tensor_info[name] = (ne, gtype, off)
            self.tensor_order.append(name)
        align = int(self.metadata.get("general.alignment", 32))
        self.data_start = (self.pos + align - 1) // align * align

    def _u(self, n, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return v

    def _str(self):
        n = self._u(8, "<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _value(self, vt):
        if vt == T_STRING:
            return self._str()
        if vt == T_ARRAY:
            et = self._u(4, "<I")
            n = self._u(8, "<Q")
            if et == T_STRING:
                return [self._str() for _ in range(n)]
            fmt = _SCALAR[et]
            size = struct.calcsize(fmt)
            vals = list(struct.unpack_from("<" + fmt[1:] * n, self.buf, self.pos)) if n else []
            self.pos += size * n
            return vals
        fmt = _SCALAR[vt]
        return self._u(struct.calcsize(fmt), fmt)

    def tensor(self, name):
        """float32 numpy array in PyTorch order"""
        ne, gtype, off = self.tensor_info[name]
        n = int(np.prod(ne))
        start = self.data_start + off
        shape = tuple(reversed(ne))
        if gtype == GGML_F32:
            a = np.frombuffer(self.buf, dtype="<f4", count=n, offset=start)
        elif gtype == GGML_F16:
            a = np.frombuffer(self.buf, dtype="<f2", count=n, offset=start).astype(np.float32)
        elif gtype == GGML_BF16:
            u = np.frombuffer(self.buf, dtype="<u2", count=n, offset=start).astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            raise ValueError(f"tensor {name}: ggml type {gtype} not supported by this reader")
        return a.reshape(shape).astype(np.float32)
