#!/usr/bin/env python3
"""Test helper: floods an HTTP listener on 127.0.0.1 with idle and slowloris connections.

  flood.py PORT STATUS_FILE [--idle N] [--slow N] [--seconds S] [--max-connects N] [--rate R]

Opens N idle connections (they connect and never send a byte) and N slowloris connections (a
request line, then one header byte every 2 s, never the blank line that ends the headers). A
connection the server closes is opened again, as a real attacker would, at up to R a second
(so the budget lasts the test), until --max-connects connections were made in all. Everything
stops after --seconds. STATUS_FILE is rewritten
(atomically) twice a second: "connects=N open=N closed_by_server=N refused=N". Loopback only.
"""
import argparse
import collections
import errno
import os
import selectors
import socket
import time

HOST = "127.0.0.1"  # never anything else: test traffic stays on this machine


class Conn:
    def __init__(self, slow):
        self.slow = slow
        self.sock = None
        self.connected = False
        self.next_byte = 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("status")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--slow", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--max-connects", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=500)
    a = ap.parse_args()

    sel = selectors.DefaultSelector()
    stats = {"connects": 0, "open": 0, "closed_by_server": 0, "refused": 0}
    end = time.monotonic() + a.seconds
    conns = [Conn(False) for _ in range(a.idle)] + [Conn(True) for _ in range(a.slow)]

    def start(c):
        if stats["connects"] >= a.max_connects:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((HOST, a.port))
        if rc not in (0, errno.EINPROGRESS):
            stats["refused"] += 1
            s.close()
            return
        stats["connects"] += 1
        c.sock, c.connected = s, False
        sel.register(s, selectors.EVENT_WRITE, c)

    def drop(c, by_server):
        sel.unregister(c.sock)
        c.sock.close()
        c.sock = None
        if c.connected:
            stats["open"] -= 1
        if by_server:
            stats["closed_by_server"] += 1

    def write_status():
        tmp = a.status + ".tmp"
        with open(tmp, "w") as f:
            f.write(" ".join(f"{k}={v}" for k, v in stats.items()) + "\n")
        os.replace(tmp, a.status)

    for c in conns:
        start(c)
    waiting = collections.deque()  # closed by the server, to be opened again
    tokens, last_refill = 0.0, time.monotonic()
    last_status = 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        tokens = min(a.rate, tokens + (now - last_refill) * a.rate)
        last_refill = now
        while waiting and tokens >= 1:
            tokens -= 1
            start(waiting.popleft())
        for key, ev in sel.select(timeout=0.2):
            c = key.data
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    stats["refused"] += 1
                    drop(c, False)
                    waiting.append(c)
                    continue
                c.connected = True
                stats["open"] += 1
                sel.modify(c.sock, selectors.EVENT_READ, c)
                if c.slow:
                    try:
                        c.sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    except OSError:
                        pass
                    c.next_byte = now + 2
                continue
            # Readable: the server closed it (or answered, which a slowloris never lets it do).
            try:
                data = c.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                drop(c, True)
                waiting.append(c)
        now = time.monotonic()
        for c in conns:
            if c.slow and c.sock and c.connected and now >= c.next_byte:
                try:
                    c.sock.send(b"a")
                except OSError:
                    pass
                c.next_byte = now + 2
        if now - last_status >= 0.5:
            write_status()
            last_status = now
    write_status()


if __name__ == "__main__":
    main()
