#!/usr/bin/env python3
"""Native UDP peers for tests/scripts/udp_peers.sh (plain Python sockets, nobody here wrote
the other side's code).

  udp_peer.py exact HOST PORT         2,000 datagrams of 0..1,472 bytes from 8 sockets, exact
  udp_peer.py largest HOST PORT       one 65,507-byte datagram whole, then empty ones
  udp_peer.py closed HOST PORT        echoes to closed ports, then the endpoint still answers
  udp_peer.py burst HOST PORT N       N datagrams without reading; prints how many came back
  udp_peer.py server PORTFILE [drop]  a UDP echo server (drop: answers nothing)
Each check prints a line and exits 1 on failure.
"""
import os
import random
import socket
import sys
import time


def sock(timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(timeout)
    return s


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def exact(host, port):
    rng = random.Random(18)
    socks = [sock() for _ in range(8)]
    total = resent = nbytes = 0
    for seq in range(250):
        want = []
        for i, s in enumerate(socks):
            n = rng.randrange(0, 1473)
            data = (seq.to_bytes(4, "little") + i.to_bytes(4, "little") + os.urandom(n))[:n]
            want.append(data)
            s.sendto(data, (host, port))
            nbytes += n
        for i, s in enumerate(socks):
            for attempt in range(4):
                try:
                    got = s.recv(70000)
                    break
                except socket.timeout:
                    resent += 1
                    s.sendto(want[i], (host, port))
            else:
                fail(f"socket {i} datagram {seq}: no echo after 3 tries")
            if got != want[i]:
                fail(f"socket {i} datagram {seq}: {len(got)} bytes back differ ({len(want[i])} sent)")
            total += 1
    print(f"{total} datagrams, {nbytes} bytes from 8 sockets echoed exact ({resent} sent again)")


def largest(host, port):
    s = sock(5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    data = os.urandom(65507)
    s.sendto(data, (host, port))
    got = s.recv(70000)
    if got != data:
        fail(f"65507 bytes sent, {len(got)} back (or different)")
    for _ in range(3):
        s.sendto(b"", (host, port))
        if s.recv(70000) != b"":
            fail("an empty datagram came back non-empty")
    print("65507-byte datagram echoed whole; 3 empty datagrams echoed empty")


def closed(host, port):
    for r in range(20):
        g = sock()
        g.sendto(b"gone before the echo", (host, port))
        g.close()
    s = sock(3)
    for r in range(5):
        s.sendto(b"still there?", (host, port))
        if s.recv(100) != b"still there?":
            fail("the endpoint stopped answering after echoes to closed ports")
    print("20 echoes to closed ports, then 5 echoes still answered")


def burst(host, port, n):
    s = sock(2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    payload = b"b" * 1000
    for i in range(n):
        s.sendto(i.to_bytes(4, "little") + payload, (host, port))
    back = 0
    try:
        while True:
            d = s.recv(2000)
            if len(d) != 1004 or d[4:] != payload:
                fail("a burst echo differs")
            back += 1
    except socket.timeout:
        pass
    print(f"burst: {n} sent, {back} came back")


def server(portfile, drop):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    while True:
        d, a = s.recvfrom(70000)
        if not drop:
            s.sendto(d, a)


def main():
    cmd = sys.argv[1]
    if cmd == "server":
        server(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "drop")
        return
    host, port = sys.argv[2], int(sys.argv[3])
    if cmd == "exact":
        exact(host, port)
    elif cmd == "largest":
        largest(host, port)
    elif cmd == "closed":
        closed(host, port)
    elif cmd == "burst":
        burst(host, port, int(sys.argv[4]))
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
