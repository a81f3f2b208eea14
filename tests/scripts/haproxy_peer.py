#!/usr/bin/python3
"""Native clients for tests/scripts/haproxy_peers.sh (run by /usr/bin/python3: the metrics
check needs Debian's python3-prometheus-client, installed for the system interpreter).

  freeports N                 N free loopback TCP ports, one a line
  echo HOST PORT N            N connections through HOST:PORT, each echoes 1..64 KiB exact
  perip PORT SRC N            N connections held from SRC, one line each: served or refused
  forged PORT SRC             from SRC, a forged PROXY line must come back as data
  metrics ADMIN_PORT          GET /metrics parsed by prometheus_client: key=value lines
  http ADMIN_PORT KIND        a hostile request (post, garbage, big, unknown, version):
                              prints the answer's status line (or "closed")
  slow ADMIN_PORT             sends a head a byte a second; prints what ended it
  readyz ADMIN_PORT           prints the status code of GET /readyz
  load PORT SECONDS OUT       short connections (connect, echo, close) for SECONDS from
                              rotating sources 127.0.0.20-59; writes "ok N failed M" to OUT
  stat SOCKET                 HAProxy's "show stat": one "server status" line per server
"""
import http.client
import os
import random
import socket
import sys
import time


def admin_get(admin, path, timeout):
    """GET path from the admin endpoint on loopback: (status, Content-Type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def connect(port, src=None, host="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((host, port))
    return s


def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(min(65536, n - len(got)))
        if not b:
            break
        got += b
    return bytes(got)


def echo_once(port, size, rng, src=None):
    data = bytes(rng.getrandbits(8) for _ in range(size))
    s = connect(port, src)
    try:
        s.sendall(data)
        back = recv_exact(s, len(data))
    finally:
        s.close()
    return back == data


def cmd_freeports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
        s.close()


def cmd_echo(host, port, n):
    rng = random.Random(7)
    for i in range(int(n)):
        size = rng.choice([1, 100, 1460, 4096, 65536])
        if not echo_once(int(port), size, rng):
            print(f"echo {i} of {size} bytes: not exact")
            sys.exit(1)
    print(f"echo: {n} connections exact")


def cmd_perip(port, src, n):
    held = []
    for i in range(int(n)):
        s = connect(int(port), src)
        msg = f"from {src} #{i}\n".encode()
        try:
            s.sendall(msg)
            back = recv_exact(s, len(msg))
            print("served" if back == msg else "refused")
        except OSError:
            print("refused")
        held.append(s)
    # Held open until stdin closes, so the counts stay while the shell checks another source.
    sys.stdout.flush()
    sys.stdin.read()
    for s in held:
        s.close()


def cmd_forged(port, src):
    line = b"PROXY TCP4 10.1.2.3 127.0.0.1 1111 2222\r\n"
    s = connect(int(port), src)
    s.sendall(line + b"after\n")
    back = recv_exact(s, len(line) + 6)
    s.close()
    if back != line + b"after\n":
        print(f"forged line: came back as {back!r}")
        sys.exit(1)
    print("forged PROXY line echoed back as data")


def cmd_metrics(admin):
    from prometheus_client.parser import text_string_to_metric_families

    _, ctype, body = admin_get(admin, "/metrics", 5)
    text = body.decode()
    if not ctype.startswith("text/plain; version=0.0.4"):
        print(f"Content-Type {ctype!r}")
        sys.exit(1)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print(f"{s.name}{'{' + label + '}' if label else ''}={s.value:.0f}")


HOSTILE = {
    "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
    "garbage": bytes(random.Random(3).getrandbits(8) for _ in range(200)).replace(b"\n", b"") + b"\n",
    "big": b"GET /metrics HTTP/1.1\r\nX: " + b"0" * 9000 + b"\r\n\r\n",
    "unknown": b"GET /nothing HTTP/1.1\r\n\r\n",
    "version": b"GET /metrics HTTP/2.0\r\n\r\n",
}


def cmd_http(admin, kind):
    s = connect(int(admin))
    try:
        s.sendall(HOSTILE[kind])
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    s.close()
    print(data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed")


def cmd_slow(admin):
    s = connect(int(admin), timeout=20)
    t0 = time.time()
    req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 100
    ended = "no answer"
    for b in req:
        try:
            s.sendall(bytes([b]))
        except OSError:
            ended = "reset"
            break
        s.settimeout(1.0)
        try:
            data = s.recv(4096)
            ended = data.split(b"\r\n", 1)[0].decode() if data else "closed"
            break
        except socket.timeout:
            continue
        except OSError:
            ended = "reset"
            break
    print(f"{ended} after {time.time() - t0:.1f} s")


def cmd_readyz(admin):
    try:
        print(admin_get(admin, "/readyz", 3)[0])
    except (OSError, http.client.HTTPException):
        print("down")


def cmd_load(port, seconds, out):
    rng = random.Random(11)
    ok = failed = 0
    errors = {}
    end = time.time() + float(seconds)
    i = 0
    while time.time() < end:
        src = f"127.0.0.{20 + i % 40}"
        i += 1
        try:
            if echo_once(int(port), rng.choice([10, 200, 1400]), rng, src):
                ok += 1
            else:
                failed += 1
                errors["not exact"] = errors.get("not exact", 0) + 1
        except OSError as e:
            failed += 1
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    with open(out, "w") as f:
        f.write(f"ok {ok} failed {failed} {errors}\n")


def cmd_stat(sock_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(sock_path)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        f = dict(zip(head, line.split(",")))
        if f.get("svname") not in (None, "", "FRONTEND", "BACKEND"):
            print(f["svname"], f["status"])


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
