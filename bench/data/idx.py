"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzip) and write.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values in C order. Only the unsigned-byte type (``0x08``) is used by
these datasets, and only it is supported.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from rvqvae.errors import UserError

UBYTE_TYPE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The uint8 array stored in the IDX file at ``path`` (gzip-compressed or raw).

    Raises :class:`UserError` naming the file when it is not a well-formed unsigned-byte IDX
    file: bad magic number, unsupported type, or a payload whose length disagrees with the
    header's dimensions.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise UserError(
                f"{path} is a damaged gzip file ({error}); delete it and fetch it again"
            ) from None
    return parse_idx(data, source=str(path))


def parse_idx(data: bytes, *, source: str = "IDX data") -> np.ndarray:
    """Decode the bytes of an uncompressed IDX file; ``source`` names it in error messages."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(
            f"{source} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})"
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code != UBYTE_TYPE:
        raise UserError(
            f"{source} holds IDX type 0x{dtype_code:02x}; only unsigned bytes (0x08) are supported"
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise UserError(
            f"{source} has a truncated IDX header ({ndim} dimensions, {len(data)} bytes)"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise UserError(
            f"{source} is truncated or padded: header says {'x'.join(map(str, shape))} = "
            f"{expected} bytes, file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when ``compress``); returns the path."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx supports uint8 arrays only, got {array.dtype}")
    payload = bytes([0, 0, UBYTE_TYPE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path
