#!/usr/bin/env python3
"""Times the HL7 v2 parsers of bench/hl7.sh on one file and prints the report (Markdown).

  bench/hl7_bench.py DATA APY_DATA ESCAPES REPS APY_REPS SOURCE_DESCRIPTION

Called by bench/hl7.sh, which generates the inputs, builds bench/rust-peer and creates
bench/.venv. For each parser and task (B1 parse only; B2 parse + the 8 fields with escapes
decoded, written as JSON lines) it runs the parser REPS times and reports the median of the
parse-loop time each process measures itself, and the peak RSS (`/usr/bin/time -f %M`).
hl7apy runs on APY_DATA (the first messages of DATA) because of its speed. Every B2 output is
compared, line by line and as JSON values, with Sluice's; mismatches are counted per field.
ESCAPES holds a few hand-written messages with escape sequences in the B2 fields (the
synthetic data has none there): every parser's B2 values for it are printed side by side.

Measures, asserts nothing.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(BENCH, "work")
VENV_PY = os.path.join(BENCH, ".venv", "bin", "python")
PEER_BIN = os.path.join(BENCH, "rust-peer", "target", "release", "hl7-peer")
PEERS_PY = os.path.join(BENCH, "peers.py")
HAVE_TIME = os.access("/usr/bin/time", os.X_OK)

# (label, command prefix, uses the hl7apy subset)
PARSERS = [
    ("Sluice `view::MessageView` (lazy)", [PEER_BIN, "sluice-view"], False),
    ("Sluice `codec::parse_message` (full tree)", [PEER_BIN, "sluice-tree"], False),
    ("`hl7-parser` 0.3.0 (Rust)", [PEER_BIN, "hl7-parser"], False),
    ("`rust-hl7` 0.5.0 (Rust)", [PEER_BIN, "rust-hl7"], False),
    ("python-hl7 `hl7.parse`", [VENV_PY, PEERS_PY, "hl7"], False),
    ("hl7apy `parse_message` (tolerant, no groups)", [VENV_PY, PEERS_PY, "hl7apy"], True),
]
SLUICE = PARSERS[0][0]
RUST_PEERS = [PARSERS[2][0], PARSERS[3][0]]
PYTHON_HL7 = PARSERS[4][0]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_once(cmd):
    """(loop seconds, ok, failed, extra, peak RSS KiB or None)."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        wrapped = (["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd) if HAVE_TIME else cmd
        res = subprocess.run(wrapped, capture_output=True, text=True)
        rss = rss_file.read().strip().splitlines()
    if res.returncode != 0:
        log("  %s exited with %d: %s" % (cmd, res.returncode, res.stderr.strip()[-300:]))
        return None
    # The last line: `rust-hl7` prints debugging lines of its own to stdout (hex escapes).
    fields = (res.stdout.strip().splitlines() or [""])[-1].split()
    return float(fields[2]), int(fields[0]), int(fields[1]), " ".join(fields[3:]), \
        (int(rss[-1]) if HAVE_TIME and rss else None)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def mismatches(reference, other, lines):
    """Per-field count of differing values over the first `lines` lines, plus missing lines."""
    per_field = {}
    for a, b in zip(reference[:lines], other[:lines]):
        for k in a:
            if a[k] != b.get(k):
                per_field[k] = per_field.get(k, 0) + 1
    missing = lines - min(lines, len(reference), len(other))
    return per_field, missing


def main(argv):
    data, apy_data, escapes, reps, apy_reps, source = argv[1:7]
    reps, apy_reps = int(reps), int(apy_reps)
    count = lambda p: sum(1 for line in open(p, "rb") if line.strip())
    n, apy_n = count(data), count(apy_data)
    have_py = os.path.exists(VENV_PY)

    rows = []
    outputs = {}
    for task in ("b1", "b2"):
        for label, cmd, subset in PARSERS:
            if cmd[0] == VENV_PY and not have_py:
                continue
            inp = apy_data if subset else data
            out = os.path.join(WORK, "b2-%s.jsonl" % cmd[-1]) if task == "b2" else "/dev/null"
            runs = []
            for r in range(apy_reps if subset else reps):
                got = run_once(cmd + [task, inp, out])
                if got:
                    runs.append(got)
                    log("  %s %s rep %d: loop %.3f s" % (label, task, r + 1, got[0]))
            if not runs:
                continue
            loop = statistics.median(r[0] for r in runs)
            rss = [r[4] for r in runs if r[4] is not None]
            rows.append({"task": task, "label": label, "n": apy_n if subset else n, "ok": runs[-1][1],
                         "failed": runs[-1][2], "extra": runs[-1][3], "loop": loop,
                         "rss": max(rss) if rss else None})
            if task == "b2":
                outputs[label] = out

    per_msg = {(r["task"], r["label"]): r["loop"] / r["n"] for r in rows}
    print()
    print("Input: %d messages, %.1f MB, from `%s`. Loop time = median of %d runs (hl7apy: first %d messages, "
          "%d runs). Ratio = peer time per message / Sluice view time per message (> 1: the peer is slower)."
          % (n, os.path.getsize(data) / 1e6, source, reps, apy_n, apy_reps))
    print()
    print("| task | parser | messages | ok | failed | loop s (median) | msgs/s | peak RSS MiB | ratio vs Sluice | B2 output vs Sluice |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    reference = read_jsonl(outputs[SLUICE]) if SLUICE in outputs else None
    for r in rows:
        base = per_msg.get((r["task"], SLUICE))
        cmp = ""
        if r["task"] == "b2" and reference is not None and r["label"] != SLUICE:
            per_field, missing = mismatches(reference, read_jsonl(outputs[r["label"]]), r["n"])
            cmp = "equal" if not per_field and not missing else \
                "differs: " + ", ".join("%s x%d" % kv for kv in sorted(per_field.items())) + \
                (" (%d lines missing)" % missing if missing else "")
        print("| %s | %s | %d | %d | %d%s | %.3f | %.0f | %s | %s | %s |" % (
            r["task"].upper(), r["label"], r["n"], r["ok"], r["failed"], (" (%s)" % r["extra"]) if r["extra"] else "",
            r["loop"], r["n"] / r["loop"] if r["loop"] else float("inf"),
            "%.1f" % (r["rss"] / 1024) if r["rss"] else "n/a",
            "%.2f" % (per_msg[(r["task"], r["label"])] / base) if base else "n/a", cmp))

    # The targets of issue 3, stated plainly.
    b2 = lambda label: per_msg.get(("b2", label))
    if b2(SLUICE):
        print()
        if b2(PYTHON_HL7):
            print("- B2 target 1: Sluice is %.0fx python-hl7 (target: at least 100x)." % (b2(PYTHON_HL7) / b2(SLUICE)))
        fastest = min((b2(l), l) for l in RUST_PEERS if b2(l))
        print("- B2 target 2: Sluice is %.1fx the fastest Rust crate, %s (target: at least 3x)."
              % (fastest[0] / b2(SLUICE), fastest[1]))

    # Escape handling, side by side.
    print()
    print("Escape check (`%s`, B2 values that differ between parsers):" % os.path.relpath(escapes, os.path.dirname(BENCH)))
    print()
    values = {}
    for label, cmd, _ in PARSERS:
        if cmd[0] == VENV_PY and not have_py:
            continue
        out = os.path.join(WORK, "esc-%s.jsonl" % cmd[-1])
        if run_once(cmd + ["b2", escapes, out]):
            values[label] = read_jsonl(out)
    labels = list(values)
    print("| message | field | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for i, ref in enumerate(values.get(SLUICE, [])):
        for k in ref:
            got = [values[l][i].get(k) if i < len(values[l]) else None for l in labels]
            if len({json.dumps(g) for g in got}) > 1:
                cells = ("`%s`" % json.dumps(g)[1:-1].replace("|", "\\|") for g in got)
                print("| %d | %s | %s |" % (i + 1, k, " | ".join(cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
