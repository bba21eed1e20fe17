#!/usr/bin/python3
"""dsbytes.py FILE - print the MD5 of a DICOM file's data set bytes (everything
after the preamble and File Meta Information), so tests can prove that the hub
keeps the bytes it received, whatever meta header it wrote."""
import hashlib
import struct
import sys

LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"}


def dataset_offset(data):
    if len(data) < 132 or data[128:132] != b"DICM":
        return 0
    off = 132
    while off + 8 <= len(data):
        group, _elem = struct.unpack_from("<HH", data, off)
        if group != 0x0002:
            break
        vr = data[off + 4:off + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, off + 8)
            off += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, off + 6)
            off += 8 + length
    return off


with open(sys.argv[1], "rb") as f:
    raw = f.read()
body = raw[dataset_offset(raw):]
if len(body) % 2:
    body += b"\0"  # PDVs are even; senders pad odd data sets
print(hashlib.md5(body).hexdigest())
