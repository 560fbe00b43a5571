#!/usr/bin/env python3
"""MLLP load generator for bench/mllp_throughput.sh: sends every message of FILE to a listener
over CONNS concurrent connections (messages dealt round robin), each connection sending one
message and waiting for its ACK before the next, as MLLP senders do.

  mllp_feed.py HOST PORT FILE CONNS

Messages are split on "\\n" (synth.py framing: segments end with "\\r", messages with "\\r\\n").
Prints one line: messages acks_AA acks_other seconds (wall time from first send to last ACK).
Plain sockets, no third-party code: the peer under test is Sluice, not this script.
"""
import socket
import sys
import threading
import time

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


def worker(host, port, messages, counts, lock):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    aa = other = 0
    for m in messages:
        s.sendall(VT + m + FS + CR)
        while FS + CR not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed before an ACK")
            buf += chunk
        ack, buf = buf.split(FS + CR, 1)
        if b"\rMSA|AA|" in ack or b"\rMSA|CA|" in ack:
            aa += 1
        else:
            other += 1
    s.close()
    with lock:
        counts[0] += aa
        counts[1] += other


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    host, port, path, conns = argv[1], int(argv[2]), argv[3], int(argv[4])
    with open(path, "rb") as f:
        messages = [m.rstrip(b"\r") for m in f.read().split(b"\n") if m.strip()]
    shares = [messages[i::conns] for i in range(conns)]
    counts, lock = [0, 0], threading.Lock()
    threads = [threading.Thread(target=worker, args=(host, port, share, counts, lock)) for share in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(len(messages), counts[0], counts[1], f"{elapsed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
