#!/usr/bin/env python3
"""The Python side of bench/hl7.sh: python-hl7 and hl7apy doing B1 and B2.

  peers.py hl7|hl7apy b1|b2 FILE [OUT]

Messages are split on "\\n" (synth.py's newline framing: segments end with "\\r", messages
with "\\r\\n"), exactly as bench/rust-peer splits them for the Rust peers.

- b1: parse every message.
- b2: parse and extract MSH-9.1, MSH-9.2, MSH-10, PID-3.1, PID-5.1, PID-5.2, PID-7, PID-8
  (first repetition, first subcomponent, "" when missing), writing one JSON object a line to
  OUT. python-hl7's `extract_field` decodes escape sequences; hl7apy has no decoder, so its
  values are the raw (escaped) text, and its outputs differ wherever an escape occurs.

Prints one line: `ok failed loop_seconds [reason=count ...]`; the loop covers parsing (and for
b2 extracting and writing), not the imports or reading the file.
"""
import collections
import json
import sys
import time

# Same order and keys as B2_FIELDS in bench/feed.rs: (key, segment, field, component).
B2_FIELDS = [
    ("msh9_1", "MSH", 9, 1),
    ("msh9_2", "MSH", 9, 2),
    ("msh10", "MSH", 10, 1),
    ("pid3_1", "PID", 3, 1),
    ("pid5_1", "PID", 5, 1),
    ("pid5_2", "PID", 5, 2),
    ("pid7", "PID", 7, 1),
    ("pid8", "PID", 8, 1),
]


def hl7_parser():
    import hl7

    def extract(m):
        out = {}
        for key, seg, field, comp in B2_FIELDS:
            try:
                out[key] = m.extract_field(seg, 1, field, 1, comp, 1)
            except (KeyError, IndexError):
                out[key] = ""
        return out

    return hl7.parse, extract


def hl7apy_parser():
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    def parse(m):
        return parse_message(m, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)

    def extract(m):
        comp_sep, sub_sep = m.encoding_chars["COMPONENT"], m.encoding_chars["SUBCOMPONENT"]
        segments = {}
        for s in m.children:
            segments.setdefault(s.name, s)
        out = {}
        for key, seg, field, comp in B2_FIELDS:
            value = ""
            s = segments.get(seg)
            wanted = "%s_%d" % (seg, field)
            # The first repetition of the field, as hl7apy re-encodes it (escapes kept).
            f = next((c for c in s.children if c.name == wanted), None) if s is not None else None
            if f is not None:
                comps = f.to_er7().split(comp_sep)
                value = comps[comp - 1].split(sub_sep)[0] if comp <= len(comps) else ""
            out[key] = value
        return out

    return parse, extract


def main(argv):
    if len(argv) < 4 or argv[1] not in ("hl7", "hl7apy") or argv[2] not in ("b1", "b2"):
        sys.stderr.write(__doc__)
        return 2
    parser, task, path = argv[1], argv[2], argv[3]
    out_path = argv[4] if len(argv) > 4 else "/dev/null"
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    messages = [m.rstrip("\r") for m in text.split("\n") if m.strip()]
    parse, extract = hl7_parser() if parser == "hl7" else hl7apy_parser()

    ok = 0
    reasons = collections.Counter()
    with open(out_path, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        for m in messages:
            try:
                parsed = parse(m)
                if task == "b2":
                    out.write(json.dumps(extract(parsed), ensure_ascii=False, separators=(",", ":")) + "\n")
                ok += 1
            except Exception as e:  # count and report every rejection, never hide it
                reasons[type(e).__name__] += 1
        secs = time.perf_counter() - started
    failed = sum(reasons.values())
    extra = " ".join("%s=%d" % kv for kv in sorted(reasons.items()))
    print(("%d %d %.6f %s" % (ok, failed, secs, extra)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
