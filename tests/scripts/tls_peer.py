#!/usr/bin/env python3
"""tls_peer.py: native TLS peers (Python's ssl module, OpenSSL underneath) for the TLS tests.

  tls_peer.py client HOST PORT --ca FILE [--bytes N] [--seed S] [--name NAME]
                     [--cert CHAIN --key KEY]
      Connects with TLS (certificate checked against FILE and NAME), sends N random bytes in
      random splits from one thread while another reads the echo, checks it byte for byte,
      then closes with close_notify and expects the server's close_notify. Prints
      "tls-peer client: N bytes exact, <version> <cipher>" and exits 0, or says what differed.
  tls_peer.py server --cert FILE --key FILE --port-file FILE [--errors FILE]
                     [--client-ca FILE [--require]]
      A TLS echo server on 127.0.0.1 (port written to the file once it listens); one thread
      per connection; answers close_notify with its own. Runs until killed. --errors: each
      failed handshake's error (the alert the client sent, as OpenSSL names it) is appended.
  tls_peer.py hello-only HOST PORT
      Sends a ClientHello, then stops speaking; prints how long until the server closed.
  tls_peer.py renegotiate HOST PORT
      openssl s_client -tls1_2: a line echoed, then "R" (a renegotiation request). Prints
      "tls-peer renegotiate: answered after S s: <openssl's last line>", or that nothing came
      within 15 s (exit 1).
  tls_peer.py wait-close HOST PORT --ca FILE
      TLS 1.2 client: a line echoed, then "ready" printed, then waits (60 s at most) for the
      server to close; exits 0 with "close_notify from the server after S s" when unwrap()
      completes (the server's close_notify came), 1 otherwise.
"""
import argparse
import os
import random
import select
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time


def client(args):
    # One thread, non-blocking: an OpenSSL connection must not be read and written from two
    # threads at once. Sends go out in random pieces while the echo is read as it comes.
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    rng = random.Random(args.seed)
    payload = rng.randbytes(args.bytes)
    raw = socket.create_connection((args.host, args.port), timeout=60)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=args.name)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    got = bytearray()
    pos, piece = 0, 0
    while len(got) < len(payload):
        if not sel.select(timeout=60):
            print(f"tls-peer client: nothing for 60 s at {len(got)} of {len(payload)} echoed")
            return 1
        try:
            while True:  # everything readable now, including what OpenSSL holds
                chunk = s.recv(65536)
                if not chunk:
                    print(f"tls-peer client: the server closed at {len(got)} of {len(payload)}")
                    return 1
                got += chunk
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if pos < len(payload):
            if piece == 0:  # a retried write must be the same one (OpenSSL's rule)
                piece = min(len(payload) - pos,
                            rng.choice((1, 7, 100, 1000, 4096, 16384, 60000)))
            try:
                pos += s.send(payload[pos:pos + piece])
                piece = 0
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            if pos == len(payload):
                sel.modify(s, selectors.EVENT_READ)
    if bytes(got) != payload:
        first = next(i for i in range(len(payload)) if got[i] != payload[i])
        print(f"tls-peer client: echo differs at byte {first}")
        return 1
    version, cipher = s.version(), s.cipher()[0]
    # close_notify both ways: unwrap sends ours and waits for the server's.
    s.setblocking(True)
    s.settimeout(30)
    try:
        s.unwrap()
    except (ssl.SSLError, OSError) as e:
        print(f"tls-peer client: no close_notify from the server: {e}")
        return 1
    print(f"tls-peer client: {len(payload)} bytes exact, {version} {cipher}, "
          "close_notify both ways")
    return 0


def server(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:  # a certificate request: optional or required
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if args.require else ssl.CERT_OPTIONAL
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.replace(tmp, args.port_file)

    def serve(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # echo at once (no Nagle)
        try:
            s = ctx.wrap_socket(conn, server_side=True)
            while True:
                data = s.recv(65536)
                if not data:
                    break
                s.sendall(data)
            try:
                s.unwrap()
            except (ssl.SSLError, OSError):
                pass
        except (ssl.SSLError, OSError) as e:
            if args.errors:
                with open(args.errors, "a") as f:
                    f.write(f"{e}\n")
        finally:
            conn.close()

    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def hello_only(args):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = socket.create_connection((args.host, args.port), timeout=60)
    s.sendall(outgoing.read())
    t0 = time.monotonic()
    try:
        while s.recv(65536):  # the ServerHello and what follows; then nothing more from us
            pass
    except OSError:
        pass
    print(f"tls-peer hello-only: closed by the server after {time.monotonic() - t0:.1f} s")
    return 0


def renegotiate(args):
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"{args.host}:{args.port}",
                          "-tls1_2", "-servername", "localhost"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf = bytearray()

    def read_until(pred, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([p.stdout], [], [], 0.05)
            if r:
                d = p.stdout.read1(65536)
                if not d:
                    return False
                buf.extend(d)
                if pred():
                    return True
        return False

    try:
        if not read_until(lambda: b"Verify return code" in buf and buf.endswith(b"---\n"), 20):
            print("tls-peer renegotiate: no handshake:", bytes(buf[-300:]))
            return 1
        p.stdin.write(b"line before R\n")
        p.stdin.flush()
        if not read_until(lambda: buf.count(b"line before R") >= 1, 10):
            print("tls-peer renegotiate: no echo before R")
            return 1
        t0 = time.monotonic()
        p.stdin.write(b"R\n")
        p.stdin.flush()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            print(f"tls-peer renegotiate: no answer within 15 s: {bytes(buf[-200:])}")
            return 1
        took = time.monotonic() - t0
        read_until(lambda: False, 0.2)
        last = [l for l in buf.decode(errors="replace").splitlines() if l.strip()][-1]
        print(f"tls-peer renegotiate: answered after {took:.3f} s: {last}")
        return 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def wait_close(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection((args.host, args.port), timeout=60)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"before the close\n")
    got = b""
    while b"before the close\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            print("tls-peer wait-close: closed before the echo")
            return 1
        got += chunk
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        while s.recv(4096):  # b"" once the server's close_notify came
            pass
        s.unwrap()
    except (ssl.SSLError, OSError) as e:
        print(f"tls-peer wait-close: no close_notify from the server: {e!r}")
        return 1
    print(f"tls-peer wait-close: close_notify from the server after {time.monotonic() - t0:.1f} s")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--ca", required=True)
    c.add_argument("--bytes", type=int, default=1 << 20)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--name", default="localhost")
    c.add_argument("--cert", help="a client certificate (chain) to present")
    c.add_argument("--key")
    s = sub.add_parser("server")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--port-file", required=True)
    s.add_argument("--errors")
    s.add_argument("--client-ca", help="ask for a client certificate chaining to this CA")
    s.add_argument("--require", action="store_true", help="with --client-ca: require it")
    h = sub.add_parser("hello-only")
    h.add_argument("host")
    h.add_argument("port", type=int)
    r = sub.add_parser("renegotiate")
    r.add_argument("host")
    r.add_argument("port", type=int)
    w = sub.add_parser("wait-close")
    w.add_argument("host")
    w.add_argument("port", type=int)
    w.add_argument("--ca", required=True)
    args = p.parse_args()
    return {"client": client, "server": server, "hello-only": hello_only,
            "renegotiate": renegotiate, "wait-close": wait_close}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
