#!/usr/bin/env python3
"""SCRAM authentications per second against a SASL listener: each authentication is a new TCP
connection doing SaslHandshake v1 and the two SaslAuthenticate v2 round trips of SCRAM, from
`THREADS` threads at once. The client's salted password is computed once (Python's hashlib), so
the figure is the broker's cost: one HMAC chain and a stored-key check per authentication, plus a
thread and a connection.

Usage: .venv/bin/python scripts/bench-scram.py HOST:PORT USER PASSWORD SALT_B64 ITERATIONS
       [MECHANISM] [SECONDS] [THREADS]
Prints `N auths in S s: R auths/s`. The user must exist with that salt (scripts/bench makes it
with AdminClient). Nothing here asserts anything."""

import base64
import hashlib
import hmac
import os
import socket
import struct
import sys
import threading
import time


def frame(api_key: int, version: int, correlation_id: int, body: bytes, flexible: bool) -> bytes:
    client_id = b"bench-scram"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    message = header + body
    return struct.pack(">i", len(message)) + message


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)


def uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7


def authenticate_bytes(sock: socket.socket, cid: int, token: bytes) -> bytes:
    """SaslAuthenticate v2 (flexible): sends `token`, returns the server's auth bytes."""
    body = uvarint(len(token) + 1) + token + b"\x00"
    sock.sendall(frame(36, 2, cid, body, True))
    resp = read_frame(sock)
    at = 4 + 1  # correlation id, header tags
    (error,) = struct.unpack(">h", resp[at : at + 2])
    at += 2
    if error:
        raise RuntimeError(f"SaslAuthenticate error {error}")
    msg_len, at = read_uvarint(resp, at)
    at += max(msg_len - 1, 0)
    auth_len, at = read_uvarint(resp, at)
    return resp[at : at + auth_len - 1]


def one_auth(addr, user: bytes, salted: bytes, digest, mechanism: bytes) -> None:
    with socket.create_connection(addr) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(frame(17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism, False))
        read_frame(sock)
        nonce = base64.b64encode(os.urandom(18))
        bare = b"n=" + user + b",r=" + nonce
        server_first = authenticate_bytes(sock, 2, b"n,," + bare)
        attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
        without_proof = b"c=biws,r=" + attrs[b"r"]
        auth_message = bare + b"," + server_first + b"," + without_proof
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        signature = hmac.new(stored_key, auth_message, digest).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = authenticate_bytes(sock, 3, without_proof + b",p=" + base64.b64encode(proof))
        if not final.startswith(b"v="):
            raise RuntimeError(f"unexpected server-final {final!r}")


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    user, password = sys.argv[2].encode(), sys.argv[3].encode()
    salt, iterations = base64.b64decode(sys.argv[4]), int(sys.argv[5])
    mechanism = (sys.argv[6] if len(sys.argv) > 6 else "SCRAM-SHA-512").encode()
    seconds = float(sys.argv[7]) if len(sys.argv) > 7 else 10.0
    threads = int(sys.argv[8]) if len(sys.argv) > 8 else 4
    name = "sha512" if mechanism.endswith(b"512") else "sha256"
    digest = getattr(hashlib, name)
    salted = hashlib.pbkdf2_hmac(name, password, salt, iterations)
    addr = (host, int(port))
    one_auth(addr, user, salted, digest, mechanism)  # fails loudly on a wrong setup
    count = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            one_auth(addr, user, salted, digest, mechanism)
            count[i] += 1

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    total = sum(count)
    print(f"{total} auths in {elapsed:.1f} s: {total / elapsed:.0f} auths/s")


if __name__ == "__main__":
    main()
