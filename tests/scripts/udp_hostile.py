#!/usr/bin/env python3
"""Hostile UDP peers for tests/scripts/udp_hostile.sh (raw sockets: run as root, loopback only).

  udp_hostile.py spoof SRC_PORT DST_PORT [COUNT [SRC_ADDR]]
                                                  COUNT datagrams (default 1) from
                                                  SRC_ADDR (127.0.0.1):SRC_PORT to
                                                  127.0.0.1:DST_PORT, written whole with
                                                  IP_HDRINCL
  udp_hostile.py lowport PORT DST_PORT            a real socket on 127.0.0.1:PORT (< 1024)
                                                  sends; prints whether anything came back
  udp_hostile.py client DST_PORT                  100 datagrams of 0..1,472 bytes, each
                                                  echoed exact (a legitimate client)
Each check prints a line and exits 1 on failure.
"""
import os
import random
import socket
import struct
import sys


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def spoof(src_port, dst_port, count, src_addr="127.0.0.1"):
    """IPv4 + UDP written by hand: the source is whatever we say (on loopback Linux delivers
    even a multicast or broadcast source)."""
    src = socket.inet_aton(src_addr)
    dst = socket.inet_aton("127.0.0.1")
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for i in range(count):
        payload = b"spoofed loop %d" % i
        ulen = 8 + len(payload)
        pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_UDP, ulen)
        udp = struct.pack("!HHHH", src_port, dst_port, ulen, 0) + payload
        csum = checksum(pseudo + udp) or 0xFFFF
        udp = struct.pack("!HHHH", src_port, dst_port, ulen, csum) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, os.getpid() & 0xFFFF, 0, 64,
                         socket.IPPROTO_UDP, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        raw.sendto(ip + udp, ("127.0.0.1", 0))
    print(f"spoofed {count} datagram(s) {src_addr}:{src_port} -> 127.0.0.1:{dst_port}")


def lowport(port, dst_port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.settimeout(1.5)
    s.sendto(b"reflect me", ("127.0.0.1", dst_port))
    try:
        got = s.recv(2000)
        fail(f"port {port} was answered: {got!r}")
    except socket.timeout:
        print(f"port {port}: no answer in 1.5 s")


def client(dst_port):
    rng = random.Random(23)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    for i in range(100):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 1473)))
        s.sendto(data, ("127.0.0.1", dst_port))
        got = s.recv(70000)
        if got != data:
            fail(f"datagram {i}: {len(got)} bytes back differ ({len(data)} sent)")
    print("client: 100 datagrams echoed exact")


def main():
    cmd = sys.argv[1]
    if cmd == "spoof":
        spoof(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1,
              sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1")
    elif cmd == "lowport":
        lowport(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "client":
        client(int(sys.argv[2]))
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
