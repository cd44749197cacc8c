#!/usr/bin/env python3
"""seeds.py TARGET DIR: writes the seed corpus of a fuzz target into DIR. `bodies`: the values of
the property and integration tests (odd and plain), each with a few flag bytes (see
fuzz_targets/bodies.rs), and a few multi-record inputs."""
import os
import sys

VALUES = [
    b'{"n":1}',
    b'"\xff\xfe"',
    b'{\n  "pretty": [\n    1\n  ]\n}',
    b'{\r\n  "crlf": true\r\n}\r\n',
    rb'{"lone":"\ud800"}',
    rb'"\ud83d\ude00"',
    b'\xef\xbb\xbf{"bom":1}',
    b'{"a":1}{"b":2}',
    b'',
    b'01',
    b'NaN',
    b'[1,2,',
    '{"u":"a\u2028b"}'.encode(),
    b'plain text',
    b'\x00\xff',
    b'null',
    b'  [true, false, null, -1.5e3, "x"]  ',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"z":1}}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data":"\\ud800"}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data_base64":"AAE="}',
]
FLAGS = [0x00, 0x04, 0x08, 0x11, 0x24, 0x46, 0x80]


def main(out):
    os.makedirs(out, exist_ok=True)
    n = 0
    for value in VALUES:
        for flags in FLAGS:
            with open(os.path.join(out, f"seed-{n:03}"), "wb") as f:
                f.write(bytes([flags]) + value)
            n += 1
    mixed = b"\n--\n".join(bytes([FLAGS[i % len(FLAGS)]]) + v for i, v in enumerate(VALUES[:8]))
    with open(os.path.join(out, f"seed-{n:03}"), "wb") as f:
        f.write(mixed)
    print(f"{n + 1} seeds in {out}")


SEEDS = {"bodies": main}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SEEDS:
        sys.exit(f"usage: seeds.py {{{','.join(SEEDS)}}} DIR")
    SEEDS[sys.argv[1]](sys.argv[2])
