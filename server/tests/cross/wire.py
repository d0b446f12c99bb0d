"""A tiny ZooKeeper wire client: a session handshake and create, byte by byte.

For checks that must see exactly what a server does with a connection (a reply,
or the connection closed), which a full client library hides behind its
reconnects; and for bench/failover's writers. Every call is bounded by the
socket's timeout.
"""

import socket
import struct


def frame(body):
    return struct.pack(">i", len(body)) + body


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_frame(sock):
    head = recv_exact(sock, 4)
    return recv_exact(sock, struct.unpack(">i", head)[0])


def ustring(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def session(addr, timeout=2.0, session_id=0, password=b"\0" * 16, last_zxid=0):
    """Opens (or, given its id and password, reopens) a session on addr:
    (socket, session id, password) once the handshake is answered."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    req = (struct.pack(">iqiq", 0, last_zxid, 30000, session_id)
           + struct.pack(">i", len(password)) + password + b"\0")
    sock.sendall(frame(req))
    resp = read_frame(sock)
    sid = struct.unpack(">q", resp[8:16])[0]
    if sid == 0:
        sock.close()
        raise ConnectionError("session refused")
    plen = struct.unpack(">i", resp[16:20])[0]
    return sock, sid, resp[20:20 + plen]


def connect(addr, timeout=2.0):
    """A new session on addr; the socket once the handshake is answered."""
    return session(addr, timeout)[0]


def reply_error(sock, xid):
    """The error code of the reply to xid (notifications and others skipped)."""
    while True:
        reply = read_frame(sock)
        rxid, _zxid, err = struct.unpack(">iqi", reply[:16])
        if rxid == xid:
            return err


def close_session(sock, xid):
    """Asks to close the session (closeSession, opcode -11); the reply's error code."""
    sock.sendall(frame(struct.pack(">ii", xid, -11)))
    return reply_error(sock, xid)


def create(sock, xid, path):
    """Creates path (persistent, open ACL); the reply's error code."""
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + ustring("world") + ustring("anyone")
    body = struct.pack(">ii", xid, 1) + ustring(path) + struct.pack(">i", 0) + acl + struct.pack(">i", 0)
    sock.sendall(frame(body))
    return reply_error(sock, xid)
