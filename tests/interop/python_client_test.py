#!/usr/bin/python3
"""Interop test: herald's uid_push_server against Python's `websockets` (Debian python3-websockets 10.4).

Usage: /usr/bin/python3 python_client_test.py PATH/TO/uid_push_server

Every scenario starts its own server on a free port and stops it afterwards; only the
processes started here (kept by Popen handle) are ever killed. Every message a client
receives is checked against what that client was expected to get: exactly once, intact.
"Nothing else arrived" is proven with a sentinel sent afterwards that must be the very next
message. Protocol-level failures (bad UTF-8, unmasked frames, fragmentation) use a small
raw-socket client that writes frames by hand.

Prints "N passed, M failed" and exits non-zero on any failure.
"""
import asyncio
import base64
import collections
import hashlib
import os
import random
import select
import signal
import socket
import string
import struct
import subprocess
import sys
import time
import traceback
import zlib

import websockets

STEP_TIMEOUT = 5.0        # any single await (recv, send, connect, close)
SCENARIO_TIMEOUT = 25.0   # a whole scenario
STARTUP_TIMEOUT = 10.0    # until the server prints its "listening" line
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SERVER_BINARY = None
STARTED = []  # every Popen this script created
# Extra arguments for every server this script starts, e.g. HERALD_SERVER_ARGS="--threads 2".
EXTRA_SERVER_ARGS = os.environ.get("HERALD_SERVER_ARGS", "").split()


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def short(m, limit=80):
    r = repr(m)
    return r if len(r) <= limit else "%s...(%d chars/bytes)" % (r[:limit], len(m))


# ---------------------------------------------------------------- server processes

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra_args):
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None

    def start(self):
        last_error = None
        for _ in range(3):  # a free port may be taken between probing and binding
            port = free_port()
            proc = subprocess.Popen(
                [SERVER_BINARY, "--address", "127.0.0.1", "--port", str(port)] + self.extra_args + EXTRA_SERVER_ARGS,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None)
            STARTED.append(proc)
            expected = "uid_push_server listening on 127.0.0.1:%d" % port
            line = self._read_line(proc, STARTUP_TIMEOUT)
            if line is not None and line.strip().startswith(expected):
                self.proc, self.port = proc, port
                return self
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            last_error = "server did not report listening (got %r, exit=%r)" % (line, proc.poll())
            stop_process(proc)
        raise TestFailure(last_error)

    @staticmethod
    def _read_line(proc, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode("utf-8", "replace")
        return buf.decode("utf-8", "replace") if buf else None

    @property
    def uri(self):
        return "ws://127.0.0.1:%d/" % self.port

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)


def stop_process(proc):
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc.stdout:
        proc.stdout.close()


# ---------------------------------------------------------------- websockets clients

async def timed(aw, what, timeout=STEP_TIMEOUT):
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise TestFailure("timed out after %.1fs: %s" % (timeout, what)) from None


class Client:
    """A websockets connection that records and checks everything it receives."""

    def __init__(self, name, ws):
        self.name = name
        self.ws = ws
        self.received = []

    @classmethod
    async def connect(cls, server, name, compression="deflate"):
        # compression="deflate" is websockets 10.x's default: it offers permessage-deflate.
        ws = await timed(websockets.connect(server.uri, open_timeout=STEP_TIMEOUT, close_timeout=2,
                                            ping_interval=None, max_size=4 * 1024 * 1024,
                                            compression=compression),
                         "%s connecting" % name)
        return cls(name, ws)

    def extensions(self):
        """The names of the extensions agreed at the handshake."""
        return [e.name for e in self.ws.extensions]

    async def send(self, m):
        await timed(self.ws.send(m), "%s sending %s" % (self.name, short(m)))

    async def recv(self):
        try:
            m = await timed(self.ws.recv(), "%s waiting for a message" % self.name)
        except websockets.ConnectionClosed as e:
            raise TestFailure("%s: connection closed while a message was expected (%s)"
                              % (self.name, describe_close(e))) from None
        self.received.append(m)
        return m

    async def expect(self, *messages):
        """The next messages are exactly these, in this order."""
        for want in messages:
            got = await self.recv()
            check(got == want, "%s: expected %s, received %s" % (self.name, short(want), short(got)))

    async def expect_unordered(self, messages):
        """The next len(messages) messages are exactly this multiset (senders race each other)."""
        want = collections.Counter(messages)
        got = collections.Counter()
        for _ in range(len(messages)):
            m = await self.recv()
            got[m] += 1
            check(got[m] <= want[m], "%s: unexpected or duplicated message %s (expected %s)"
                  % (self.name, short(m), sorted(short(x) for x in want)))
        check(got == want, "%s: received %s, expected %s" % (self.name, dict(got), dict(want)))

    async def expect_close(self, code, reason=None, timeout=STEP_TIMEOUT):
        """The server closes with `code` (and `reason`) and sends nothing before that."""
        try:
            m = await timed(self.ws.recv(), "%s waiting for close %d" % (self.name, code), timeout)
            raise TestFailure("%s: expected close %d, received message %s" % (self.name, code, short(m)))
        except websockets.ConnectionClosed as e:
            rcvd = e.rcvd
            check(rcvd is not None, "%s: expected close %d, connection dropped without a close frame (%s)"
                  % (self.name, code, describe_close(e)))
            check(rcvd.code == code, "%s: expected close code %d, got %d %r"
                  % (self.name, code, rcvd.code, rcvd.reason))
            if reason is not None:
                check(rcvd.reason == reason, "%s: expected close reason %r, got %r"
                      % (self.name, reason, rcvd.reason))

    async def close(self):
        try:
            await timed(self.ws.close(), "%s closing" % self.name)
        except TestFailure:
            raise
        except Exception:
            pass


def describe_close(e):
    if e.rcvd is None:
        return "no close frame received"
    return "close %d %r" % (e.rcvd.code, e.rcvd.reason)


async def login(server, uid, name=None, compression="deflate"):
    c = await Client.connect(server, name or uid, compression)
    await c.send(uid)
    await c.expect("login successful, your uid is " + uid)
    return c


_sentinel_counter = [0]


async def expect_quiet(clients, via=None):
    """Broadcasts a sentinel; for every client it must be the very next message (so nothing
    unexpected was queued before it)."""
    _sentinel_counter[0] += 1
    sentinel = "sentinel #%d %08x" % (_sentinel_counter[0], random.getrandbits(32))
    await (via or clients[0]).send("all:" + sentinel)
    for c in clients:
        await c.expect(sentinel)


def random_printable(n, rng):
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    return "".join(rng.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------- raw-socket client

class RawClient:
    """Writes WebSocket frames by hand, for what a well-behaved library will not send."""

    def __init__(self, reader, writer, extensions=""):
        self.reader = reader
        self.writer = writer
        self.extensions = extensions  # the server's Sec-WebSocket-Extensions answer
        self.last_rsv1 = False        # RSV1 (compressed) on the last frame read

    @classmethod
    async def connect(cls, server, extensions=None):
        """`extensions`: a Sec-WebSocket-Extensions offer to make."""
        reader, writer = await timed(asyncio.open_connection("127.0.0.1", server.port), "raw connect")
        key = base64.b64encode(os.urandom(16)).decode()
        offer = "Sec-WebSocket-Extensions: %s\r\n" % extensions if extensions else ""
        writer.write(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (server.port, key, offer)).encode())
        await timed(writer.drain(), "raw handshake write")
        head = await timed(reader.readuntil(b"\r\n\r\n"), "raw handshake response")
        lines = head.decode("latin-1").split("\r\n")
        check(lines[0].startswith("HTTP/1.1 101"), "raw handshake: expected 101, got %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        check(headers.get("sec-websocket-accept") == accept,
              "raw handshake: bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
        return cls(reader, writer, headers.get("sec-websocket-extensions", ""))

    async def send_frame(self, opcode, payload, fin=True, masked=True, rsv1=False):
        header = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
        n = len(payload)
        mask_bit = 0x80 if masked else 0
        if n < 126:
            header += bytes([mask_bit | n])
        elif n < 65536:
            header += bytes([mask_bit | 126]) + struct.pack("!H", n)
        else:
            header += bytes([mask_bit | 127]) + struct.pack("!Q", n)
        if masked:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.writer.write(header + payload)
        await timed(self.writer.drain(), "raw frame write")

    async def read_frame(self):
        """-> (fin, opcode, payload); a server frame must not be masked."""
        b0, b1 = await timed(self.reader.readexactly(2), "raw frame header")
        check(not (b1 & 0x80), "server sent a masked frame")
        self.last_rsv1 = bool(b0 & 0x40)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await timed(self.reader.readexactly(2), "raw frame length"))[0]
        elif n == 127:
            n = struct.unpack("!Q", await timed(self.reader.readexactly(8), "raw frame length"))[0]
        payload = await timed(self.reader.readexactly(n), "raw frame payload") if n else b""
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def read_message(self):
        """Next complete data message -> (opcode, payload); answers nothing, fails on close."""
        opcode, data = None, b""
        while True:
            fin, op, payload = await self.read_frame()
            if op == 0x8:
                raise TestFailure("raw: expected a message, got close %s" % parse_close(payload)[0])
            if op in (0x9, 0xA):
                continue
            if opcode is None:
                opcode = op
            data += payload
            if fin:
                return opcode, data

    async def expect_text(self, want):
        op, data = await self.read_message()
        check(op == 0x1, "raw: expected a text message, got opcode %d" % op)
        check(data.decode("utf-8") == want, "raw: expected %s, received %s" % (short(want), short(data)))

    async def expect_close(self, code):
        """Next frame is a close with `code` (data frames before it fail); answers it and
        expects the server to end the TCP connection."""
        while True:
            fin, op, payload = await self.read_frame()
            if op in (0x9, 0xA):
                continue
            check(op == 0x8, "raw: expected close %d, received opcode %d frame %s" % (code, op, short(payload)))
            got, reason = parse_close(payload)
            check(got == code, "raw: expected close code %d, got %s %r" % (code, got, reason))
            break
        try:
            await self.send_frame(0x8, struct.pack("!H", code))
        except (ConnectionError, OSError):
            pass  # the server may already have closed the TCP connection
        try:
            rest = await timed(self.reader.read(), "raw: server closing TCP after close handshake")
        except (ConnectionError, OSError):
            rest = b""
        check(rest == b"", "raw: data after the close frame: %s" % short(rest))

    def abort(self):
        self.writer.transport.abort()


def parse_close(payload):
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


async def raw_login(server, uid, extensions=None):
    r = await RawClient.connect(server, extensions)
    await r.send_frame(0x1, uid.encode())
    await r.expect_text("login successful, your uid is " + uid)
    return r


# ---------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(*server_args):
    def wrap(fn):
        SCENARIOS.append((fn.__name__, server_args, fn))
        return fn
    return wrap


@scenario()
async def login_reply(srv, clients):
    for uid in ["alice", "Zoë 🚀", "x", "u" * 128]:
        c = await login(srv, uid)
        clients.append(c)
    await expect_quiet(clients)


@scenario()
async def unicast_reaches_exactly_the_uid_sessions(srv, clients):
    a1 = await login(srv, "alice", "alice#1")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    carol = await login(srv, "carol")
    clients += [a1, a2, bob, carol]
    by_uid = {"alice": [a1, a2], "bob": [bob], "carol": [carol]}
    expected = {c: [] for c in clients}
    # Every session sends one message to each uid (and one to a uid nobody has).
    for sender in clients:
        for uid, sessions in by_uid.items():
            body = "hello %s from %s" % (uid, sender.name)
            await sender.send("%s:%s" % (uid, body))
            for s in sessions:
                expected[s].append(body)
        await sender.send("nobody:lost message from %s" % sender.name)
    for c in clients:
        await c.expect_unordered(expected[c])
    await expect_quiet(clients, via=bob)
    # One unicast to alice only: bob and carol must not see it (sentinel comes next for them).
    await carol.send("alice:just for alice")
    await a1.expect("just for alice")
    await a2.expect("just for alice")
    await expect_quiet(clients, via=carol)


@scenario()
async def closed_session_is_unbound(srv, clients):
    a1 = await login(srv, "alice", "alice#1")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    clients += [a2, bob]
    await a1.close()
    await bob.send("alice:after device 1 left")
    await a2.expect("after device 1 left")
    await expect_quiet(clients, via=bob)
    await a2.close()
    clients.remove(a2)
    await bob.send("alice:nobody home")
    await expect_quiet(clients, via=bob)
    a3 = await login(srv, "alice", "alice#3")
    clients.append(a3)
    await bob.send("alice:welcome back")
    await a3.expect("welcome back")
    await expect_quiet(clients, via=bob)


@scenario()
async def colons_in_message_kept(srv, clients):
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients += [alice, bob]
    bodies = ["a:b", "::", "http://example.com:8080/x?y=1:2", ":", "all:not a broadcast", "bob:nested"]
    for b in bodies:
        await alice.send("bob:" + b)
    await bob.expect(*bodies)
    await alice.send("all:x:y:z")
    await alice.expect("x:y:z")
    await bob.expect("x:y:z")
    await alice.send("alice:")  # empty body is still a message
    await alice.expect("")
    await expect_quiet(clients)


@scenario()
async def broadcast_exactly_once(srv, clients):
    a1 = await login(srv, "alice", "alice#1")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    carol = await login(srv, "carol")
    lurker = await Client.connect(srv, "not-logged-in")
    clients += [a1, a2, bob, carol]
    bodies = []
    for sender in clients:
        body = "broadcast from %s" % sender.name
        bodies.append(body)
        await sender.send("all:" + body)
    for c in clients:
        await c.expect_unordered(bodies)
    await expect_quiet(clients)
    # The connection that never logged in got none of it: its first message is the login reply.
    await lurker.send("dave")
    await lurker.expect("login successful, your uid is dave")
    clients.append(lurker)
    await bob.send("all:now dave too")
    for c in clients:
        await c.expect("now dave too")
    await expect_quiet(clients, via=lurker)


@scenario()
async def error_reply_without_colon(srv, clients):
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients += [alice, bob]
    for m in ["hello", "no colon here", "   ", "x" * 1000]:
        await alice.send(m)
        await alice.expect("error: expected <uid>:<message>")
    await alice.send("bob:still works")
    await bob.expect("still works")
    await expect_quiet(clients)


@scenario()
async def large_message_intact(srv, clients):
    rng = random.Random(1234)
    alice = await login(srv, "alice")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    clients += [alice, a2, bob]
    body = random_printable(100 * 1024, rng)
    await bob.send("alice:" + body)
    await alice.expect(body)
    await a2.expect(body)
    body2 = random_printable(100 * 1024, rng)
    await alice.send("all:" + body2)
    for c in clients:
        await c.expect(body2)
    await expect_quiet(clients)


@scenario("--max-message", "65536")
async def limit_boundary_accepted(srv, clients):
    alice = await login(srv, "alice")
    clients.append(alice)
    body = "b" * (65536 - len("alice:"))
    await alice.send("alice:" + body)  # exactly --max-message bytes
    await alice.expect(body)
    await expect_quiet(clients)


@scenario("--max-message", "65536")
async def limit_applies_per_message(srv, clients):
    # Two messages of 40000 bytes each: each is under the 65536 limit on its own.
    alice = await login(srv, "alice")
    clients.append(alice)
    for i in range(3):
        body = str(i) * (40000 - len("alice:"))
        await alice.send("alice:" + body)
        try:
            await alice.expect(body)
        except TestFailure as e:
            raise TestFailure("40000-byte message #%d of a series: %s" % (i + 1, e)) from None
    await expect_quiet(clients)


@scenario("--max-message", "65536")
async def close_1009_too_big(srv, clients):
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients.append(bob)
    await alice.send("bob:" + "x" * (70000 - len("bob:")))
    await alice.expect_close(1009)
    await expect_quiet(clients)  # bob got nothing of it and the server still serves
    # Too big as the very first (login) message, too.
    c = await Client.connect(srv, "big-login")
    await c.send("y" * 70000)
    await c.expect_close(1009)


@scenario()
async def close_1007_invalid_utf8(srv, clients):
    bob = await login(srv, "bob")
    clients.append(bob)
    r = await raw_login(srv, "mallory")
    await r.send_frame(0x1, b"bob:\xff\xfe bad")
    await r.expect_close(1007)
    # Truncated multi-byte sequence at the end, split across fragments.
    r = await raw_login(srv, "mallory")
    await r.send_frame(0x1, b"bob:ok \xe2\x82", fin=False)
    await r.send_frame(0x0, b"", fin=True)
    await r.expect_close(1007)
    # As the login message.
    r = await RawClient.connect(srv)
    await r.send_frame(0x1, b"\xc3\x28")
    await r.expect_close(1007)
    await expect_quiet(clients)


@scenario()
async def fragmented_utf8_reassembled(srv, clients):
    bob = await login(srv, "bob")
    clients.append(bob)
    r = await raw_login(srv, "frag")
    text = "bob:héllo €uro 🚀 done".encode()
    cut1, cut2 = text.index("€".encode()) + 1, text.index("🚀".encode()) + 2  # inside code points
    await r.send_frame(0x1, text[:cut1], fin=False)
    await r.send_frame(0x9, b"ping in the middle")  # control frame between fragments
    await r.send_frame(0x0, text[cut1:cut2], fin=False)
    await r.send_frame(0x0, text[cut2:], fin=True)
    fin, op, payload = await r.read_frame()
    check(op == 0xA and payload == b"ping in the middle",
          "raw: expected pong echoing the ping, got opcode %d %s" % (op, short(payload)))
    await bob.expect("héllo €uro 🚀 done")
    await expect_quiet(clients)
    r.abort()


@scenario()
async def close_1002_unmasked_frame(srv, clients):
    bob = await login(srv, "bob")
    clients.append(bob)
    r = await raw_login(srv, "mallory")
    await r.send_frame(0x1, b"bob:unmasked", masked=False)
    await r.expect_close(1002)
    r = await RawClient.connect(srv)
    await r.send_frame(0x1, b"mallory", masked=False)
    await r.expect_close(1002)
    await expect_quiet(clients)  # bob got nothing


_METRICS_PORT = free_port()


def read_metrics(port):
    """GET /metrics from the server's metrics port: {name{labels}: value}."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=STEP_TIMEOUT) as r:
        check(r.status == 200, "metrics status %d" % r.status)
        check(r.headers.get("Content-Type", "").startswith("text/plain"), "metrics content type")
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = int(value)
        return out


@scenario("--metrics-port", str(_METRICS_PORT))
async def metrics_after_scripted_run(srv, clients):
    a = await login(srv, "alice")
    b1 = await login(srv, "bob", "bob#1")
    b2 = await login(srv, "bob", "bob#2")
    clients += [a, b1, b2]
    bad = await Client.connect(srv, "refused")
    await bad.send("all")
    await bad.expect_close(1008, "uid 'all' is reserved")
    await a.send("bob:12345")
    await b1.expect("12345")
    await b2.expect("12345")
    await b1.send("all:xyz")
    for c in (a, b1, b2):
        await c.expect("xyz")
    loop = asyncio.get_running_loop()
    m = await loop.run_in_executor(None, read_metrics, _METRICS_PORT)
    want = {
        "herald_sessions": 3,
        "herald_uids": 2,
        "herald_logins_total": 3,
        "herald_logins_refused_total": 1,
        "herald_messages_in_total": 6,     # 4 first messages + 2 commands
        "herald_messages_out_total": 8,    # 3 login replies + 2 unicast + 3 broadcast
        'herald_closes_total{class="policy"}': 1,
        "herald_queued_bytes": 0,
    }
    for k, v in want.items():
        check(m.get(k) == v, "metric %s = %r, expected %r" % (k, m.get(k), v))
    await a.ws.close()
    await timed(a.ws.wait_closed(), "alice close")
    clients.remove(a)
    for _ in range(100):
        m = await loop.run_in_executor(None, read_metrics, _METRICS_PORT)
        if m.get("herald_sessions") == 2:
            break
        await asyncio.sleep(0.02)
    check(m.get("herald_sessions") == 2, "sessions after a close: %r" % m.get("herald_sessions"))
    check(m.get("herald_uids") == 1, "uids after alice left: %r" % m.get("herald_uids"))
    check(m.get('herald_closes_total{class="normal"}') == 1, "normal closes: %r" % m.get('herald_closes_total{class="normal"}'))


@scenario()
async def groups_join_leave_send(srv, clients):
    a1 = await login(srv, "alice", "alice#1")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    carol = await login(srv, "carol")
    clients += [a1, a2, bob, carol]
    await a1.send("join:red")
    await a1.expect("joined red")
    await a1.send("join:red")
    await a1.expect("already in red")  # already a member
    await bob.send("join:red")
    await bob.expect("joined red")
    await a2.send("join:blue:with colon")  # the name is everything after "join:"
    await a2.expect("joined blue:with colon")
    # group:<name>:<message>; the sender (carol) is no member, so only members receive.
    await carol.send("group:red:hello: red")
    await a1.expect("hello: red")
    await bob.expect("hello: red")
    await bob.send("group:red:from a member")
    await a1.expect("from a member")
    await bob.expect("from a member")  # a member sender receives its own group message
    await carol.send("group:nobody:lost")
    await carol.send("group:bad")
    await carol.expect("error: expected group:<name>:<message>")
    await bob.send("leave:red")
    await bob.expect("left red")
    await bob.send("leave:red")
    await bob.expect("error: not in group 'red'")
    await carol.send("group:red:after bob left")
    await a1.expect("after bob left")
    await expect_quiet(clients)


@scenario()
async def one_max_size_broadcast_keeps_every_receiver(srv, clients):
    """Defaults (--max-message 1 MiB): one allowed message used to close every receiver, the
    sender included, as a slow consumer. All stay, and all get the next small broadcast."""
    users = [await login(srv, "user%d" % i) for i in range(4)]
    clients += users
    big = "x" * 1048572  # "all:" + this = exactly 1 MiB
    await users[0].send("all:" + big)
    for u in users:
        await u.expect(big)
    await users[1].send("all:small after big")
    for u in users:
        await u.expect("small after big")
    await expect_quiet(clients)


@scenario("--origin", "https://app.example", "--origin", "http://127.0.0.1:8080")
async def origin_not_allowed_403(srv, clients):
    """--origin: a page from any other origin is refused with HTTP 403 before the upgrade."""
    try:
        ws = await timed(websockets.connect(srv.uri, origin="https://evil.example", open_timeout=STEP_TIMEOUT),
                         "connect from evil.example")
        await ws.close()
        raise TestFailure("a connection from https://evil.example was accepted")
    except websockets.InvalidStatusCode as e:
        check(e.status_code == 403, "evil.example: expected 403, got %d" % e.status_code)
    ws = await timed(websockets.connect(srv.uri, origin="https://app.example", open_timeout=STEP_TIMEOUT,
                                        ping_interval=None), "connect from app.example")
    c = Client("app", ws)
    clients.append(c)
    await c.send("alice")
    await c.expect("login successful, your uid is alice")


@scenario("--rate-limit", "20")
async def rate_limit_closes_the_flooder_only(srv, clients):
    """--rate-limit 20: a session sending faster is closed with 1008; the others lose nothing."""
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients += [alice, bob]
    flooder = await login(srv, "flooder")
    for i in range(300):
        try:
            await flooder.ws.send("bob:spam %d" % i)
        except websockets.ConnectionClosed:
            break
    await flooder.expect_close(1008, "rate limit exceeded")
    # Whatever got through was routed before the close; alice's message comes after it.
    await alice.send("bob:from alice 0")
    spam = 0
    while True:  # what got through before the close: at most the burst, in order
        m = await bob.recv()
        if not m.startswith("spam "):
            check(m == "from alice 0", "bob: unexpected %s" % short(m))
            break
        check(m == "spam %d" % spam, "bob: expected spam %d, got %s" % (spam, short(m)))
        spam += 1
    check(1 <= spam <= 20, "bob got %d spam messages; the burst is 20, the login took one" % spam)
    for i in range(1, 10):
        await alice.send("bob:from alice %d" % i)
        await bob.expect("from alice %d" % i)
    await expect_quiet(clients)


@scenario()
async def close_1008_bad_uid(srv, clients):
    bob = await login(srv, "bob")
    clients.append(bob)
    cases = [
        ("all", "uid 'all' is reserved"),
        ("join", "uid 'join' is reserved"),
        ("leave", "uid 'leave' is reserved"),
        ("group", "uid 'group' is reserved"),
        ("a:b", "uid must not contain ':'"),
        (":", "uid must not contain ':'"),
        ("", "uid must be 1 to 128 bytes"),
        ("u" * 129, "uid must be 1 to 128 bytes"),
    ]
    for uid, reason in cases:
        c = await Client.connect(srv, "uid %s" % short(uid, 20))
        await c.send(uid)
        await c.expect_close(1008, reason)
    # The refused uids were never bound: nothing reaches them, nothing leaks to bob.
    await bob.send("a:b")
    await bob.send("all:after refusals")
    await bob.expect("after refusals")
    await expect_quiet(clients)


@scenario("--duplicates", "replace")
async def duplicates_replace(srv, clients):
    old = await login(srv, "bob", "bob#old")
    carol = await login(srv, "carol")
    clients.append(carol)
    new = await login(srv, "bob", "bob#new")
    clients.append(new)
    await old.expect_close(4000, "replaced by a newer login")
    await carol.send("bob:for the newest bob")
    await new.expect("for the newest bob")
    await expect_quiet(clients, via=carol)


@scenario("--duplicates", "reject")
async def duplicates_reject(srv, clients):
    first = await login(srv, "bob", "bob#first")
    carol = await login(srv, "carol")
    clients += [first, carol]
    second = await Client.connect(srv, "bob#second")
    await second.send("bob")
    await second.expect_close(1008, "uid already logged in")
    await carol.send("bob:for the first bob")
    await first.expect("for the first bob")
    await expect_quiet(clients, via=carol)
    # Once the first one leaves, the uid is free again.
    await first.close()
    clients.remove(first)
    third = await login(srv, "bob", "bob#third")
    clients.append(third)
    await carol.send("bob:for the third bob")
    await third.expect("for the third bob")
    await expect_quiet(clients, via=carol)


@scenario("--duplicates", "multi")
async def duplicates_multi(srv, clients):
    devices = [await login(srv, "bob", "bob#%d" % i) for i in range(3)]
    clients += devices
    await devices[0].send("bob:to all my devices")
    for d in devices:
        await d.expect("to all my devices")
    await expect_quiet(clients)


async def sigterm_common(srv, clients, with_lurker):
    a1 = await login(srv, "alice", "alice#1")
    a2 = await login(srv, "alice", "alice#2")
    bob = await login(srv, "bob")
    clients += [a1, a2, bob]
    lurker = await Client.connect(srv, "not-logged-in") if with_lurker else None
    await expect_quiet(clients)
    srv.proc.send_signal(signal.SIGTERM)
    # The lurker is watched concurrently (with a longer timeout than the server's shutdown
    # deadline) so that its outcome and the exit code are both reported.
    lurker_task = asyncio.ensure_future(lurker.expect_close(1001, timeout=12)) if lurker else None
    try:
        for c in clients:
            await c.expect_close(1001, "server shutting down")
        t0 = time.monotonic()
        while srv.proc.poll() is None and time.monotonic() - t0 < 15:
            await asyncio.sleep(0.05)
        code = srv.proc.poll()
        check(code is not None, "server still running 15 s after SIGTERM")
        check(code == 0, "server exit code after SIGTERM: %r (expected 0)" % code)
        if lurker_task:
            await lurker_task
    finally:
        if lurker_task and not lurker_task.done():
            lurker_task.cancel()


@scenario()
async def sigterm_1001_and_exit_0(srv, clients):
    await sigterm_common(srv, clients, with_lurker=False)


@scenario()
async def sigterm_1001_not_logged_in_session(srv, clients):
    await sigterm_common(srv, clients, with_lurker=True)


# ---------------------------------------------------------------- permessage-deflate (RFC 7692)

def json_doc(seq, rng, size=4096):
    """A JSON document of exactly `size` bytes, compressible like real ones (not trivially)."""
    items = []
    while True:
        item = '{"id":%d,"user":"u%d","price":%d.%02d,"tags":["%s","%s"]}' % (
            rng.randrange(10 ** 6), rng.randrange(1000), rng.randrange(1000), rng.randrange(100),
            rng.choice(["new", "sale", "hot", "eu", "us"]), rng.choice(["a", "b", "c"]))
        if len('{"seq":%d,"items":[' % seq + ",".join(items + [item]) + "]") + 16 > size:
            break
        items.append(item)
    doc = '{"seq":%d,"items":[' % seq + ",".join(items) + '],"pad":"'
    doc += "x" * (size - len(doc) - 2) + '"}'
    check(len(doc) == size, "json_doc: %d bytes" % len(doc))
    return doc


def inflate_body(body):
    """A permessage-deflate message body inflated by zlib (RFC 7692 section 7.2.2)."""
    d = zlib.decompressobj(-15)
    return d.decompress(body + b"\x00\x00\xff\xff") + d.flush()


OFFER = "permessage-deflate; client_max_window_bits"


@scenario("--deflate")
async def deflate_broadcast_exactly_once(srv, clients):
    """websockets clients with and without the extension, and raw ones that look at the frames:
    20 broadcasts of 4 KiB JSON, each received exactly once, in order, intact; on the wire
    compressed (RSV1) for deflate receivers and plain for the others."""
    zipped = [await login(srv, "z%d" % i) for i in range(4)]
    plain = [await login(srv, "p%d" % i, compression=None) for i in range(2)]
    for c in zipped:
        check(c.extensions() == ["permessage-deflate"], "%s: extensions %r" % (c.name, c.extensions()))
    for c in plain:
        check(c.extensions() == [], "%s: extensions %r" % (c.name, c.extensions()))
    raw_z = await raw_login(srv, "rawz", OFFER)
    raw_p = await raw_login(srv, "rawp")
    check(raw_z.extensions.startswith("permessage-deflate"), "raw deflate peer: answer %r" % raw_z.extensions)
    check(raw_p.extensions == "", "raw plain peer: answer %r" % raw_p.extensions)
    clients += zipped + plain
    rng = random.Random(15)
    docs = [json_doc(i, rng) for i in range(20)]
    # Ten sent compressed by a deflate client, ten plain (one sender at a time keeps the order).
    for sender, batch in ((zipped[0], docs[:10]), (plain[0], docs[10:])):
        for d in batch:
            await sender.send("all:" + d)
        for c in clients:
            await c.expect(*batch)
    for d in docs:
        op, body = await raw_z.read_message()
        check(op == 0x1 and raw_z.last_rsv1, "raw deflate peer: a 4 KiB broadcast was not compressed")
        check(len(body) < len(d) // 2, "raw deflate peer: compressed to %d of %d bytes" % (len(body), len(d)))
        check(inflate_body(body).decode("utf-8") == d, "raw deflate peer: inflates to something else")
        op, body = await raw_p.read_message()
        check(op == 0x1 and not raw_p.last_rsv1 and body.decode("utf-8") == d, "raw plain peer: not the plain message")
    # Below the threshold (256 bytes): plain on the wire even to a deflate peer.
    await plain[1].send("rawz:short one")
    op, body = await raw_z.read_message()
    check(body == b"short one" and not raw_z.last_rsv1, "raw deflate peer: a short message was compressed")
    # Unicasts both ways between deflate and plain clients.
    big = json_doc(99, rng)
    await plain[1].send("z2:" + big)
    await zipped[2].expect(big)
    await zipped[3].send("p0:" + big)
    await plain[0].expect(big)
    await expect_quiet(clients)


@scenario()
async def deflate_declined_without_the_option(srv, clients):
    """Without --deflate every offer is declined, and RSV1 stays a protocol error."""
    c = await login(srv, "alice")
    clients.append(c)
    check(c.extensions() == [], "extensions agreed without --deflate: %r" % c.extensions())
    big = json_doc(1, random.Random(1))
    await c.send("alice:" + big)
    await c.expect(big)
    raw = await raw_login(srv, "raw", OFFER)
    check(raw.extensions == "", "raw: answer %r" % raw.extensions)
    await raw.send_frame(0x1, zlib.compress(b"raw:x")[2:-4], rsv1=True)
    await raw.expect_close(1002)


@scenario("--deflate", "--max-message", "65536")
async def deflate_bad_input_close_codes(srv, clients):
    """A zip bomb (from websockets itself and by hand) is 1009, a corrupt stream 1007, text that
    inflates to invalid UTF-8 1007, RSV1 on a continuation 1002; the others go on."""
    bystander = await login(srv, "bystander")
    clients.append(bystander)
    # websockets compresses 4 MiB of zeros to a few KiB: small on the wire, 64 times the limit inflated.
    bomb = await login(srv, "bomb")
    await bomb.send("bomb:" + "0" * (4 << 20))
    await bomb.expect_close(1009)

    def deflated(data):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        check(out.endswith(b"\x00\x00\xff\xff"), "zlib sync flush")
        return out[:-4]

    raw = await raw_login(srv, "raw1", OFFER)
    body = deflated(b"\0" * (16 << 20))
    check(len(body) < 65536, "the hand-made bomb is %d bytes" % len(body))
    await raw.send_frame(0x2, body, rsv1=True)
    await raw.expect_close(1009)
    raw = await raw_login(srv, "raw2", OFFER)
    await raw.send_frame(0x1, b"\xff\xff\xff\xff", rsv1=True)  # block type 3 does not exist
    await raw.expect_close(1007)
    raw = await raw_login(srv, "raw3", OFFER)
    await raw.send_frame(0x1, deflated(b"raw3:\xc3\x28 is not UTF-8"), rsv1=True)
    await raw.expect_close(1007)
    raw = await raw_login(srv, "raw4", OFFER)
    await raw.send_frame(0x1, b"raw4:", fin=False)
    await raw.send_frame(0x0, deflated(b"x"), rsv1=True)
    await raw.expect_close(1002)
    # Exactly the limit still passes, compressed.
    raw = await raw_login(srv, "raw5", OFFER)
    msg = b"bystander:" + b"y" * (65536 - len(b"bystander:"))
    await raw.send_frame(0x1, deflated(msg), rsv1=True)
    await bystander.expect("y" * (65536 - len(b"bystander:")))
    await expect_quiet(clients)


# ---------------------------------------------------------------- runner

async def run_scenario(fn, server_args):
    srv = Server(*server_args).start()
    clients = []
    try:
        await asyncio.wait_for(fn(srv, clients), SCENARIO_TIMEOUT)
        check(srv.proc.poll() is None or fn.__name__.startswith("sigterm"),
              "server exited unexpectedly with %r" % srv.proc.poll())
    except asyncio.TimeoutError:
        raise TestFailure("scenario timed out after %.0fs" % SCENARIO_TIMEOUT) from None
    finally:
        for c in clients:
            try:
                c.ws.transport.abort()
            except Exception:
                pass
        srv.stop()


def server_has_deflate():
    """A server built without zlib refuses --deflate (exit 2), even with --help."""
    return subprocess.run([SERVER_BINARY, "--deflate", "--help"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


async def main():
    passed, failed = 0, 0
    only = set(sys.argv[2:])
    has_deflate = server_has_deflate()
    for name, server_args, fn in SCENARIOS:
        if only and name not in only:
            continue
        if "--deflate" in server_args and not has_deflate:
            print("SKIP %-45s the server was built without zlib (no --deflate)" % name, flush=True)
            continue
        t0 = time.monotonic()
        try:
            await run_scenario(fn, server_args)
            passed += 1
            print("PASS %-45s %.2fs" % (name, time.monotonic() - t0), flush=True)
        except TestFailure as e:
            failed += 1
            print("FAIL %-45s %s" % (name, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-45s exception:" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
    return passed, failed


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python_client_test.py PATH/TO/uid_push_server [scenario...]", file=sys.stderr)
        sys.exit(2)
    SERVER_BINARY = os.path.abspath(sys.argv[1])
    passed, failed = 0, 1
    try:
        passed, failed = asyncio.run(main())
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        failed = max(failed, 1)
    finally:
        for p in STARTED:
            stop_process(p)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
