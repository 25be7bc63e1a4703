#!/usr/bin/python3
"""Interop test over TLS: uid_push_server --tls-cert/--tls-key against Python's `websockets`
(Debian python3-websockets 10.4) as a wss:// client.

Usage: /usr/bin/python3 tls_test.py PATH/TO/uid_push_server [scenario...]
(HERALD_SERVER_ARGS="--threads 2" adds arguments to every server started.)

The certificate is made here, by the openssl command line tool, in a temporary directory:
self-signed for 127.0.0.1 and valid for a day; the clients trust exactly that certificate.
Every scenario starts its own server on a free port and stops it afterwards; only the
processes started here (kept by Popen handle) are ever killed. "Nothing else arrived" is
proven with a sentinel broadcast afterwards that must be the very next message.

Prints "N passed, M failed" and exits non-zero on any failure.
"""
import asyncio
import os
import random
import select
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import time
import traceback

import websockets

STEP_TIMEOUT = 5.0        # any single await (recv, send, connect, close)
SCENARIO_TIMEOUT = 30.0   # a whole scenario
STARTUP_TIMEOUT = 10.0    # until the server prints its "listening" line
MAX_MESSAGE = 256 * 1024  # --max-message of the servers started here
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WEB_DIR = os.path.join(REPO, "examples", "web")

SERVER_BINARY = None
CERT = None
KEY = None
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


def make_certificate(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)
    return cert, key


def client_context():
    """Trusts exactly the certificate made for this run (and checks the host name 127.0.0.1)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=CERT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---------------------------------------------------------------- server processes

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc):
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc.stdout:
        proc.stdout.close()


def read_line(proc, timeout):
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
                [SERVER_BINARY, "--address", "127.0.0.1", "--port", str(port), "--tls-cert", CERT, "--tls-key", KEY,
                 "--max-message", str(MAX_MESSAGE)] + self.extra_args + EXTRA_SERVER_ARGS,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None)
            STARTED.append(proc)
            line = read_line(proc, STARTUP_TIMEOUT)
            if line is not None and line.startswith("uid_push_server listening on 127.0.0.1:%d " % port):
                check(", wss" in line, "server did not say it serves wss: %r" % line)
                self.proc, self.port = proc, port
                return self
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            last_error = "server did not report listening (got %r, exit=%r)" % (line, proc.poll())
            stop_process(proc)
        raise TestFailure(last_error)

    @property
    def uri(self):
        return "wss://127.0.0.1:%d/" % self.port

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)


# ---------------------------------------------------------------- wss clients

async def timed(aw, what, timeout=STEP_TIMEOUT):
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise TestFailure("timed out after %.1fs: %s" % (timeout, what)) from None


def describe_close(e):
    if e.rcvd is None:
        return "no close frame received"
    return "close %d %r" % (e.rcvd.code, e.rcvd.reason)


class Client:
    def __init__(self, name, ws):
        self.name = name
        self.ws = ws

    @classmethod
    async def connect(cls, server, name, ssl_context=None):
        ws = await timed(websockets.connect(server.uri, ssl=ssl_context or client_context(),
                                            open_timeout=STEP_TIMEOUT, close_timeout=2, ping_interval=None,
                                            max_size=4 * 1024 * 1024),
                         "%s connecting over wss" % name)
        return cls(name, ws)

    async def send(self, m):
        await timed(self.ws.send(m), "%s sending %s" % (self.name, short(m)))

    async def recv(self):
        try:
            return await timed(self.ws.recv(), "%s waiting for a message" % self.name)
        except websockets.ConnectionClosed as e:
            raise TestFailure("%s: connection closed while a message was expected (%s)"
                              % (self.name, describe_close(e))) from None

    async def expect(self, *messages):
        for want in messages:
            got = await self.recv()
            check(got == want, "%s: expected %s, received %s" % (self.name, short(want), short(got)))

    async def expect_close(self, code, reason=None):
        try:
            m = await timed(self.ws.recv(), "%s waiting for close %d" % (self.name, code))
            raise TestFailure("%s: expected close %d, received message %s" % (self.name, code, short(m)))
        except websockets.ConnectionClosed as e:
            check(e.rcvd is not None, "%s: expected close %d, dropped without a close frame" % (self.name, code))
            check(e.rcvd.code == code, "%s: expected close code %d, got %d %r"
                  % (self.name, code, e.rcvd.code, e.rcvd.reason))
            if reason is not None:
                check(e.rcvd.reason == reason, "%s: expected close reason %r, got %r"
                      % (self.name, reason, e.rcvd.reason))


async def login(server, uid, name=None):
    c = await Client.connect(server, name or uid)
    await c.send(uid)
    await c.expect("login successful, your uid is " + uid)
    return c


_sentinels = [0]


async def expect_quiet(clients, via=None):
    """A broadcast sentinel must be the very next message of every client."""
    _sentinels[0] += 1
    sentinel = "sentinel #%d %08x" % (_sentinels[0], random.getrandbits(32))
    await (via or clients[0]).send("all:" + sentinel)
    for c in clients:
        await c.expect(sentinel)


async def read_until_closed(reader, what, timeout):
    """Reads until the server ends the connection; -> (bytes read, seconds it took)."""
    t0 = time.monotonic()
    data = b""
    try:
        while True:
            chunk = await timed(reader.read(65536), what, timeout)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, OSError, ssl.SSLError):
        pass  # a reset or a TLS-level end is an end too
    return data, time.monotonic() - t0


# ---------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(*server_args):
    def wrap(fn):
        SCENARIOS.append((fn.__name__, server_args, fn))
        return fn
    return wrap


@scenario()
async def login_over_wss(srv, clients):
    for uid in ["alice", "Zoë 🚀", "u" * 128]:
        clients.append(await login(srv, uid))
    await expect_quiet(clients)


@scenario()
async def unicast_reaches_both_devices(srv, clients):
    b1 = await login(srv, "bob", "bob#1")
    b2 = await login(srv, "bob", "bob#2")
    alice = await login(srv, "alice")
    clients += [b1, b2, alice]
    await alice.send("bob:hello bob: from alice")
    await b1.expect("hello bob: from alice")
    await b2.expect("hello bob: from alice")
    await b2.send("alice:hi back")
    await alice.expect("hi back")
    await expect_quiet(clients, via=alice)  # nothing else reached anyone (alice got no copy)


@scenario()
async def broadcast_exactly_once(srv, clients):
    for uid in ["alice", "bob", "bob", "carol"]:
        clients.append(await login(srv, uid, "%s#%d" % (uid, len(clients))))
    for i, sender in enumerate(clients):
        await sender.send("all:broadcast %d" % i)
    for c in clients:  # each sender's broadcasts arrive in order; senders may interleave
        got = sorted([await c.recv() for _ in clients])
        check(got == sorted("broadcast %d" % i for i in range(len(clients))),
              "%s: broadcasts received %s" % (c.name, got))
    await expect_quiet(clients)


@scenario()
async def large_message_intact(srv, clients):
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " é€"
    body = "".join(rng.choice(alphabet) for _ in range(100 * 1024))
    alice = await login(srv, "alice")
    b1 = await login(srv, "bob", "bob#1")
    b2 = await login(srv, "bob", "bob#2")
    clients += [alice, b1, b2]
    await alice.send("bob:" + body)  # many TLS records each way
    await b1.expect(body)
    await b2.expect(body)
    await alice.send("all:" + body[:50000])
    for c in clients:
        await c.expect(body[:50000])
    await expect_quiet(clients)


@scenario()
async def close_1009_too_big(srv, clients):
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients += [alice, bob]
    try:
        await alice.send("bob:" + "x" * MAX_MESSAGE)  # 4 bytes over the limit
    except websockets.ConnectionClosed:
        pass
    await alice.expect_close(1009)
    await expect_quiet([bob])  # the other session carries on


@scenario()
async def close_1008_bad_uid(srv, clients):
    for uid, reason in [("all", "uid 'all' is reserved"), ("a:b", "uid must not contain ':'")]:
        c = await Client.connect(srv, "login as %r" % uid)
        clients.append(c)
        await c.send(uid)
        await c.expect_close(1008, reason)
    alice = await login(srv, "alice")
    clients.append(alice)
    await expect_quiet([alice])


@scenario()
async def clean_close_is_prompt(srv, clients):
    alice = await login(srv, "alice")
    # timed() bounds the close below the client's own close timeout: it completes only if the
    # server answers the close frame and ends the connection itself.
    await timed(alice.ws.close(1000, "bye"), "alice closing")
    check(alice.ws.close_code == 1000, "close code seen by the client: %r" % alice.ws.close_code)
    again = await login(srv, "alice")  # the uid was unbound and can log in again
    clients.append(again)
    await expect_quiet([again])


@scenario()
async def garbage_instead_of_client_hello(srv, clients):
    alice = await login(srv, "alice")
    clients.append(alice)
    for garbage in [b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n",
                    bytes(random.Random(3).getrandbits(8) for _ in range(3000)),
                    b"\x16\x03\x01\x00\x05hello"]:  # a handshake record header with junk inside
        reader, writer = await timed(asyncio.open_connection("127.0.0.1", srv.port), "raw connect")
        writer.write(garbage)
        try:
            await timed(writer.drain(), "raw write")
        except (ConnectionError, OSError):
            pass
        # Bounded well below the 10 s handshake deadline: only the garbage itself can end it.
        await read_until_closed(reader, "server dropping a non-TLS client %s" % short(garbage, 30), 5)
        writer.close()
        await expect_quiet([alice])  # the established session does not notice
    bob = await login(srv, "bob")  # and new wss clients still get in
    clients.append(bob)
    await alice.send("bob:still here")
    await bob.expect("still here")


@scenario()
async def client_refusing_the_certificate(srv, clients):
    untrusting = ssl.create_default_context()  # the system's CAs: our self-signed cert fails
    try:
        c = await Client.connect(srv, "untrusting", ssl_context=untrusting)
        clients.append(c)
        raise TestFailure("a client that does not trust the certificate connected")
    except ssl.SSLCertVerificationError:
        pass
    alice = await login(srv, "alice")
    clients.append(alice)
    await expect_quiet([alice])


@scenario("--handshake-timeout", "1")
async def silent_clients_dropped_at_deadline(srv, clients):
    alice = await login(srv, "alice")  # past its handshake: the deadline no longer applies
    clients.append(alice)
    # One sends nothing at all; one stalls inside its ClientHello (a record header announcing
    # 512 bytes, then 10 of them); one completes TLS and then sends no upgrade request.
    silent_tcp = await timed(asyncio.open_connection("127.0.0.1", srv.port), "silent connect")
    stalled = await timed(asyncio.open_connection("127.0.0.1", srv.port), "stalling connect")
    stalled[1].write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(5))
    silent_tls = await timed(asyncio.open_connection("127.0.0.1", srv.port, ssl=client_context(),
                                                     server_hostname="127.0.0.1"), "silent TLS connect")
    results = await asyncio.gather(read_until_closed(silent_tcp[0], "silent TCP client dropped", 6),
                                   read_until_closed(stalled[0], "stalled ClientHello dropped", 6),
                                   read_until_closed(silent_tls[0], "silent TLS client dropped", 6))
    # Nothing but the handshake deadline ends these connections; the read bound only stops a hang.
    for what, (data, _) in zip(["TCP (no ClientHello)", "partial ClientHello", "TLS (no upgrade request)"],
                               results):
        check(data == b"", "%s client received %s" % (what, short(data)))
    for _, writer in [silent_tcp, stalled, silent_tls]:
        writer.transport.abort()
    await expect_quiet([alice])


@scenario("--web", WEB_DIR)
async def web_page_over_https(srv, clients):
    reader, writer = await timed(asyncio.open_connection("127.0.0.1", srv.port, ssl=client_context(),
                                                         server_hostname="127.0.0.1"), "https connect")
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
    data, _ = await read_until_closed(reader, "GET / over https", STEP_TIMEOUT)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200 "), "GET / over https: %s" % short(head))
    check(b"content-type: text/html" in head.lower(), "GET / over https: %s" % short(head))
    check(b"<html" in body.lower(), "GET / over https: body %s" % short(body))
    alice = await login(srv, "alice")  # the same port still speaks wss
    clients.append(alice)
    await expect_quiet([alice])


@scenario()
async def sigterm_sends_1001_over_tls(srv, clients):
    alice = await login(srv, "alice")
    bob = await login(srv, "bob")
    clients += [alice, bob]
    srv.proc.send_signal(signal.SIGTERM)
    await alice.expect_close(1001, "server shutting down")
    await bob.expect_close(1001, "server shutting down")
    for _ in range(150):
        if srv.proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    check(srv.proc.poll() == 0, "server exit code after SIGTERM: %r (expected 0)" % srv.proc.poll())


def startup_errors():
    """Bad TLS files end the server with a message naming the file, before it listens."""
    bad = os.path.join(os.path.dirname(CERT), "missing.pem")
    other_key = os.path.join(os.path.dirname(CERT), "other-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other_key],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    cases = [(["--tls-cert", bad, "--tls-key", KEY], 1, "missing.pem"),
             (["--tls-cert", CERT, "--tls-key", CERT], 1, "key"),   # a certificate is no key
             (["--tls-cert", CERT, "--tls-key", other_key], 1, "does not match"),
             (["--tls-cert", CERT], 2, "--tls-key")]
    for args, want_code, want_text in cases:
        p = subprocess.run([SERVER_BINARY, "--address", "127.0.0.1", "--port", str(free_port())] + args,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == want_code, "%s: exit %d, expected %d (%s)" % (args, p.returncode, want_code, err))
        check(want_text in err, "%s: error message %r does not mention %r" % (args, err, want_text))
        check(b"listening" not in p.stdout, "%s: the server listened anyway" % args)


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


async def main():
    passed, failed = 0, 0
    only = set(sys.argv[2:])
    tests = [(name, args, fn) for name, args, fn in SCENARIOS] + [("startup_errors", None, startup_errors)]
    for name, server_args, fn in tests:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            if server_args is None:
                fn()
            else:
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
        print("usage: tls_test.py PATH/TO/uid_push_server [scenario...]", file=sys.stderr)
        sys.exit(2)
    SERVER_BINARY = os.path.abspath(sys.argv[1])
    passed, failed = 0, 1
    tmp = tempfile.mkdtemp(prefix="herald-tls-test-")
    try:
        CERT, KEY = make_certificate(tmp)
        passed, failed = asyncio.run(main())
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        failed = max(failed, 1)
    finally:
        for p in STARTED:
            stop_process(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
