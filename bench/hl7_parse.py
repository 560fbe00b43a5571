#!/usr/bin/env python3
"""Compare HL7 v2 parsing in Sluice with peers, on the same input, in one run.

  bench/hl7_parse.py [--count N] [--reps R] [--apy-count K] [--apy-reps R2] [--skip-build]

Run from anywhere; paths are relative to the repository root. Steps:

1. Generate N messages with `python3 ../shared/bench/synth.py hl7 --count N --seed 1`
   (newline framing: segments end with CR, messages with CR LF). If ../shared is missing, the
   bundled examples/hl7/feed-2024-01-15.hl7 is repeated to N messages instead, and a notice
   says so (the numbers are then not comparable with docs/benchmarks.md).
2. `cargo build --release` (the `sluice` CLI) and bench/rust-peer (outside the workspace:
   Sluice's codec without JSON output, and the `hl7-parser` crate).
3. Create bench/.venv and `pip install hl7 hl7apy` there if it does not exist yet.
4. Time each parser R times; report the median. Two times per parser:
   - wall: the whole process (start-up, interpreter imports, file read, parse, output);
   - loop: the parse loop only, as measured by the process itself (not available for the
     `sluice parse` CLI, which also builds and writes one JSON line per message).
   hl7apy is slow (~100 messages/s here), so it parses only the first K messages of the same
   file (default 2000); its figures are compared per message.
5. Print a Markdown table with messages/s and ratios (peer time per message / Sluice time per
   message; > 1 means the peer is slower).

Nothing is asserted: this measures.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
WORK = os.path.join(BENCH, "work")
VENV_PY = os.path.join(BENCH, ".venv", "bin", "python")
SYNTH = os.path.normpath(os.path.join(ROOT, "..", "shared", "bench", "synth.py"))
FEED = os.path.join(ROOT, "examples", "hl7", "feed-2024-01-15.hl7")
PEER_DIR = os.path.join(BENCH, "rust-peer")
PEER_BIN = os.path.join(PEER_DIR, "target", "release", "hl7-peer")
SLUICE_BIN = os.path.join(ROOT, "target", "release", "sluice")
HAVE_TIME = os.access("/usr/bin/time", os.X_OK)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def generate(count, path):
    """Writes `count` messages to `path`; returns a description of where they came from."""
    if os.path.exists(SYNTH):
        subprocess.run([sys.executable, SYNTH, "hl7", "--count", str(count), "--seed", "1", path], check=True)
        return "python3 ../shared/bench/synth.py hl7 --count %d --seed 1" % count
    log("NOTICE: %s is missing (no ../shared checkout); repeating %s to %d messages instead."
        " These numbers are NOT comparable with docs/benchmarks.md." % (SYNTH, FEED, count))
    with open(FEED, "rb") as f:
        seeds = [m for m in f.read().split(b"\n") if m.strip()]
    with open(path, "wb") as f:
        for i in range(count):
            f.write(seeds[i % len(seeds)] + b"\n")
    return "examples/hl7/feed-2024-01-15.hl7 repeated to %d messages (fallback)" % count


def head(src, dst, k):
    with open(src, "rb") as f, open(dst, "wb") as out:
        for i, line in enumerate(f):
            if i >= k:
                break
            out.write(line)


def run_once(cmd, capture):
    """Runs `cmd`; returns (wall seconds, peak RSS KiB or None, exit code, stdout if `capture`).

    Peak RSS comes from `/usr/bin/time -f %M` when it exists. (The rusage of a child forked
    straight from this Python process would start at this process's own RSS, because Linux
    carries the high-water mark across fork and exec.)
    """
    with tempfile.TemporaryFile() as cap, open(os.devnull, "wb") as null, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        wrapped = (["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd) if HAVE_TIME else cmd
        started = time.perf_counter()
        code = subprocess.run(wrapped, stdout=cap if capture else null).returncode
        wall = time.perf_counter() - started
        cap.seek(0)
        text = cap.read().decode("utf-8", "replace")
        rss = rss_file.read().strip().splitlines()
    return wall, int(rss[-1]) if HAVE_TIME and rss else None, code, text


def measure(name, cmd, reps, messages, to_devnull=False):
    walls, loops, rss = [], [], []
    ok = failed = None
    extra = ""
    for r in range(reps):
        wall, maxrss, code, text = run_once(cmd, capture=not to_devnull)
        if code != 0:
            log("  %s exited with %d" % (name, code))
        walls.append(wall)
        rss.append(maxrss)
        if not to_devnull:
            fields = text.strip().split()
            ok, failed, loops_s = int(fields[0]), int(fields[1]), float(fields[2])
            loops.append(loops_s)
            extra = " ".join(fields[3:])
        log("  %s rep %d: wall %.3f s%s" % (name, r + 1, wall, (", loop %.3f s" % loops[-1]) if loops else ""))
    return {
        "name": name,
        "messages": messages,
        "wall": statistics.median(walls),
        "loop": statistics.median(loops) if loops else None,
        "rss": max(rss) if None not in rss else None,
        "ok": ok,
        "failed": failed,
        "extra": extra,
    }


def ensure_venv():
    if os.path.exists(VENV_PY):
        return True
    log("creating bench/.venv and installing hl7, hl7apy ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", os.path.join(BENCH, ".venv")], check=True)
        subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "hl7", "hl7apy"], check=True)
        return True
    except (subprocess.CalledProcessError, OSError) as e:
        log("SKIP Python peers: could not set up bench/.venv (%s)" % e)
        return False


def versions(have_venv):
    v = {"rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
         "python": platform.python_version()}
    if have_venv:
        code = "import importlib.metadata as m, platform; print(platform.python_version(), m.version('hl7'), m.version('hl7apy'))"
        py, hl7v, apyv = subprocess.run([VENV_PY, "-c", code], capture_output=True, text=True).stdout.split()
        v.update({"venv python": py, "hl7 (python-hl7)": hl7v, "hl7apy": apyv})
    lock = os.path.join(PEER_DIR, "Cargo.lock")
    if os.path.exists(lock):
        text = open(lock).read()
        i = text.find('name = "hl7-parser"')
        if i >= 0:
            v["hl7-parser (crate)"] = text[i:].split("\n")[1].split('"')[1]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--apy-count", type=int, default=2000)
    ap.add_argument("--apy-reps", type=int, default=3)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()

    os.makedirs(WORK, exist_ok=True)
    data = os.path.join(WORK, "hl7-%d.hl7" % args.count)
    source = generate(args.count, data)
    apy_n = min(args.apy_count, args.count)
    apy_data = os.path.join(WORK, "hl7-%d-head%d.hl7" % (args.count, apy_n))
    head(data, apy_data, apy_n)

    if not args.skip_build:
        log("building sluice (cargo build --release) ...")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        log("building bench/rust-peer ...")
        peer = subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                               os.path.join(PEER_DIR, "Cargo.toml")])
        if peer.returncode != 0:
            log("SKIP Rust peers: bench/rust-peer did not build")
    have_peer = os.path.exists(PEER_BIN)
    have_venv = ensure_venv()

    rows = []
    log("sluice parse CLI ...")
    cli = measure("sluice parse --format hl7v2 (JSON out)", [SLUICE_BIN, "parse", "--format", "hl7v2", data],
                  args.reps, args.count, to_devnull=True)
    # Count the JSON lines once (outside the timed runs) so the table shows ok/failed honestly.
    lines = subprocess.run([SLUICE_BIN, "parse", "--format", "hl7v2", data], capture_output=True).stdout.count(b"\n")
    cli["ok"], cli["failed"] = lines, args.count - lines
    rows.append(cli)
    if have_peer:
        rows.append(measure("sluice codec: MessageSplitter + parse_message, no JSON",
                            [PEER_BIN, "sluice", data], args.reps, args.count))
        rows.append(measure("sluice codec: parse_message on \\n-split lines, no JSON",
                            [PEER_BIN, "sluice-lines", data], args.reps, args.count))
        rows.append(measure("hl7-parser (Rust crate)", [PEER_BIN, "hl7-parser", data], args.reps, args.count))
    if have_venv:
        peers_py = os.path.join(BENCH, "peers.py")
        rows.append(measure("python-hl7 hl7.parse", [VENV_PY, peers_py, "hl7", data], args.reps, args.count))
        rows.append(measure("hl7apy parse_message (tolerant, find_groups=False)",
                            [VENV_PY, peers_py, "hl7apy", apy_data], args.apy_reps, apy_n))

    base_wall = cli["wall"] / cli["messages"]
    base_loop = next((r["loop"] / r["messages"] for r in rows if r["name"].startswith("sluice codec: Message")), None)

    print()
    print("Input: %d messages, %.1f MB, from `%s`; median of %d runs (hl7apy: first %d messages, %d runs)."
          % (args.count, os.path.getsize(data) / 1e6, source, args.reps, apy_n, args.apy_reps))
    print("Ratios are peer time per message / Sluice time per message (> 1: the peer is slower).")
    print()
    print("| parser | messages | ok | failed | wall s (median) | msgs/s (wall) | loop s (median) | msgs/s (loop) "
          "| peak RSS MiB | wall ratio vs `sluice parse` | loop ratio vs Sluice codec |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["messages"]
        loop = r["loop"]
        print("| %s | %d | %s | %s%s | %.3f | %.0f | %s | %s | %s | %.2f | %s |" % (
            r["name"], n, r["ok"], r["failed"], (" (%s)" % r["extra"]) if r["extra"] else "",
            r["wall"], n / r["wall"],
            "%.3f" % loop if loop is not None else "n/a",
            "%.0f" % (n / loop) if loop else "n/a",
            "%.1f" % (r["rss"] / 1024) if r["rss"] else "n/a", (r["wall"] / n) / base_wall,
            "%.2f" % ((loop / n) / base_loop) if loop is not None and base_loop else "n/a"))
    print()
    for k, v in versions(have_venv).items():
        print("- %s: %s" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
