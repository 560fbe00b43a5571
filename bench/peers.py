#!/usr/bin/env python3
"""Parse every message of an HL7 v2 file with a Python peer; used by bench/hl7_parse.sh.

  peers.py hl7|hl7apy FILE

Messages are split on "\\n" (synth.py's newline framing: segments end with "\\r", messages
with "\\r\\n"), exactly as bench/rust-peer splits them. Prints one line:
  ok failed parse_seconds [reason=count ...]
where parse_seconds covers the parse loop only (imports and file read excluded).
"""
import collections
import sys
import time


def main(argv):
    if len(argv) != 3 or argv[1] not in ("hl7", "hl7apy"):
        sys.stderr.write(__doc__)
        return 2
    parser, path = argv[1], argv[2]
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    messages = [m.rstrip("\r") for m in text.split("\n") if m.strip()]

    if parser == "hl7":
        import hl7

        def parse(m):
            return hl7.parse(m)
    else:
        from hl7apy.consts import VALIDATION_LEVEL
        from hl7apy.parser import parse_message

        def parse(m):
            return parse_message(m, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)

    ok = 0
    reasons = collections.Counter()
    started = time.perf_counter()
    for m in messages:
        try:
            parse(m)
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
