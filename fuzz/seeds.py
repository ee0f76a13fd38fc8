#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/ (small hand-made inputs).
Run from the repository root: python3 fuzz/seeds.py. The wire format is the one of
docs/DESIGN.md (src/codec.h) on a 64-bit little-endian build: one tag byte per element,
native 8-byte lua_Integer, lua_Number, size_t and pointers; frame headers of 1 byte
(payload < 255) or 0xff + size_t."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

T_NIL, T_BOOL, T_BYTE, T_INT, T_FLOAT, T_STR8, T_STR, T_LUDATA, T_CFUNC, T_NEGZERO = range(10)
T_TABLE8, T_TABLE = 0x0A, 0x0B
T_ARRAY = 0xCA


def size_t(n):
    return struct.pack("<Q", n)


def header(n):
    return bytes([n]) if n < 255 else b"\xff" + size_t(n)


def el_int(i):
    if 0 <= i <= 255:
        return bytes([T_BYTE, i])
    return bytes([T_INT]) + struct.pack("<q", i)


def el_str(s):
    if len(s) <= 255:
        return bytes([T_STR8, len(s)]) + s
    return bytes([T_STR]) + size_t(len(s)) + s


def el_float(x):
    return bytes([T_FLOAT]) + struct.pack("<d", x)


def el_array(t, size, data):
    count = len(data) // size if size else 0
    return bytes([T_ARRAY, t, size]) + size_t(count) + data


def el_table(values, pairs, long=False):
    """values: encoded array elements; pairs: (key, value) encoded elements."""
    na, nh = len(values), len(pairs)
    if na <= 255 and nh <= 255 and not long:
        head = bytes([T_TABLE8, na, nh])
    else:
        head = bytes([T_TABLE]) + size_t(na) + size_t(nh)
    return head + b"".join(values) + b"".join(k + v for k, v in pairs)


def nested(depth):
    t = el_table([], [])
    for _ in range(depth - 1):
        t = el_table([t], [])
    return t


NIL = bytes([T_NIL])
FALSE, TRUE = bytes([T_BOOL, 0]), bytes([T_BOOL, 1])
LUDATA = bytes([T_LUDATA]) + struct.pack("<Q", 0x1234)
CFUNC = bytes([T_CFUNC]) + struct.pack("<Q", 0)

MESSAGES = {
    "empty": b"",
    "nil": NIL,
    "bools": TRUE + FALSE,
    "ints": el_int(0) + el_int(255) + el_int(256) + el_int(-1) + el_int(2**53) + el_int(-2**63),
    "floats": el_float(0.5) + el_float(float("nan")) + el_float(float("-inf")) + el_float(-0.0)
    + bytes([T_NEGZERO, 0]),
    "strings": el_str(b"") + el_str(b"hello") + el_str(b"x" * 255) + el_str(b"y" * 256) + el_str(b"z" * 300),
    "binary": el_str(bytes(range(256))),
    "ptrs": LUDATA + CFUNC,
    "arrays": el_array(1, 1, b"\x01\x02\x03") + el_array(9, 8, struct.pack("<2d", 1.5, -2)) + el_array(5, 4, b""),
    "mixed": NIL + el_int(42) + el_str(b"m") + TRUE + el_float(3.25),
    "table-record": el_table([], [(el_str(b"id"), el_int(1)), (el_str(b"name"), el_str(b"x")),
                                  (el_str(b"tags"), el_table([el_str(b"a"), el_str(b"b")], [])),
                                  (el_str(b"pos"), el_table([], [(el_str(b"x"), el_float(1.5)),
                                                                 (el_str(b"y"), el_int(2))]))]),
    "table-mixed": el_table([el_int(7), el_str(b""), TRUE], [(TRUE, FALSE), (el_float(2.5), el_str(b"f")),
                                                    (el_table([], []), el_table([el_int(1)], [])),
                                                    (el_int(-5), el_array(1, 1, b"\x01"))]) + el_int(9),
    "table-long": el_table([el_int(i % 256) for i in range(300)], []),
    "table-depth-100": nested(100),
}
MALFORMED = {
    "bad-tag": b"\x0c",
    "short-str": bytes([T_STR8, 5]) + b"ab",
    "long-str-len": bytes([T_STR]) + size_t(2**64 - 1),
    "str-not-canonical": bytes([T_STR]) + size_t(3) + b"abc",
    "int-not-canonical": bytes([T_INT]) + struct.pack("<q", 7),
    "bool-2": bytes([T_BOOL, 2]),
    "float-cut": bytes([T_FLOAT, 0, 0]),
    "array-overflow": bytes([T_ARRAY, 1, 255]) + size_t(2**64 - 1),
    "array-zero-size": bytes([T_ARRAY, 1, 0]) + size_t(5),
    "table-depth-101": nested(101),
    "table-huge-count": bytes([T_TABLE]) + size_t(2**62) + size_t(0) + el_int(1),
    "table-long-not-canonical": el_table([el_int(1)], [], long=True),
    "table-nil-key": el_table([], [(NIL, el_int(1))]),
    "table-nil-value": el_table([NIL], []),
    "table-nan-key": el_table([], [(el_float(float("nan")), el_int(1))]),
    "table-array-key": el_table([el_int(5)], [(el_int(1), el_int(1))]),
    "table-float-array-key": el_table([el_int(5)], [(el_float(1.0), el_int(1))]),
    "table-cut": el_table([el_int(1), el_int(2)], [])[:-1],
}


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, msg in list(MESSAGES.items()) + list(MALFORMED.items()):
        write("fuzz_codec", name, msg)
    # frames as a queue holds them
    write("fuzz_codec", "frames", b"".join(header(len(m)) + m for m in MESSAGES.values()))

    # fuzz_reader: [nops][ops...][payload]; op >> 5: 0 next(), 1 next(nil), 2 bad carray,
    # 3 bad string, 4-7 next(count[op & 7]) with counts 1, 0, 2, 5, 1e9, -3, inf, 2.5
    ops_sets = [b"", b"\x00", b"\x82\x83\x84\x86", b"\x40\x60\x80\x81\x85\x87"]
    for i, (name, msg) in enumerate(MESSAGES.items()):
        ops = ops_sets[i % len(ops_sets)]
        write("fuzz_reader", name, bytes([len(ops)]) + ops + msg)

    # fuzz_roundtrip: [cfg][tag + data]...; cfg & 7 picks the size, (cfg >> 3) % 5 the grow
    rt = {
        "all-kinds-grow2": bytes([4 << 3 | 6]) + b"\x00\x01\x11\x02\x05\x22\xfb"
        + b"\x03" + struct.pack("<q", -5) + b"\x04" + struct.pack("<d", 2.5)
        + b"\x05\x05hello" + b"\x06" + struct.pack("<Q", 7) + b"\x07" + struct.pack("<Q", 9)
        + b"\x08\x03\x04\x02" + b"abcdefgh",
        "fixed-small": bytes([0 << 3 | 3]) + b"\x05\x0ahelloworld" + b"\x05\x03abc" * 4,
        "grow-half": bytes([1 << 3 | 1]) + b"\x15\x02\x05" + b"q" * 80,
        "edges": bytes([4 << 3 | 5]) + b"\x02\x00\x12\x00\x22\x00\x62\x00\x72\x00",
    }
    for name, data in rt.items():
        write("fuzz_roundtrip", name, data)

    # fuzz_ops: op bytes (see fuzz/ops.lua: op = byte % 24) with their argument bytes
    ops = {
        "buffer-fifo": bytes([0, 1, 7, 0, 5, 0, 7, 0, 9, 0, 12, 0, 12, 0, 23]),
        "listener-rr": bytes([2, 0, 3, 0, 0, 3, 0, 0, 7, 0, 3, 0, 7, 1, 4, 0, 7, 0, 3, 0, 18, 0, 0, 18, 0, 0, 18, 0, 0, 23]),
        "orphan": bytes([2, 0, 3, 0, 0, 7, 0, 0, 5, 0, 6, 0, 0, 18, 0, 0, 18, 0, 0]),
        "abort": bytes([0, 1, 7, 0, 5, 0, 21, 1, 7, 0, 7, 0, 12, 0, 21, 0, 12, 0, 16, 0, 1, 7, 0, 5, 0]),
        "close": bytes([2, 0, 3, 0, 0, 7, 0, 4, 0, 20, 0, 0, 7, 0, 4, 0, 18, 0, 15, 0, 0, 0]),
        "fixed": bytes([0, 1, 7, 0, 40, 0, 7, 0, 40, 0, 11, 0, 60, 0, 14, 0]),
        "names": bytes([0, 0, 0, 0, 5, 0, 5, 4, 2, 0, 0, 3, 0, 3]),
    }
    for name, data in ops.items():
        write("fuzz_ops", name, data)


if __name__ == "__main__":
    main()
