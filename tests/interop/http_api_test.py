#!/usr/bin/python3
"""uid_push_server's HTTP push API (--http-port, --api-key), driven by curl and by
examples/push_from_php.php, delivering to WebSocket clients (Python websockets).

Usage: /usr/bin/python3 http_api_test.py PATH/TO/uid_push_server PATH/TO/push_from_php.php

Starts uid_push_server on 127.0.0.1 with --port 0 --http-port 0 (the ports it prints), plus
HERALD_SERVER_ARGS (e.g. "--threads 2"). Logs in alice (two sessions), bob and carol; alice's
first session and carol join group lobby. Then every endpoint is called with curl
(POST /send/<uid>, /group/<name>, /broadcast, GET /online/<uid>, /presence, /metrics), and
the same pushes and questions are asked with `php push_from_php.php`. Every message a client
receives is checked: exactly the expected ones, in order, intact, to the right uid; "nothing
else arrived" is proven after each step by a sentinel broadcast that must be every client's
very next message. Without the key, or with a wrong one, every endpoint answers 401 and
nothing is delivered. Also: --help prints every option (exit 0); --http-port without a key is
refused (exit 2); the key may come from HERALD_API_KEY.

Only processes started here (kept by Popen handle) are stopped. Exit 0: passed; 1: failed;
77 (ctest: skipped): curl or php is not installed, everything else passed; the message says
which package to install.
"""
import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import time
import traceback

import python_client_test as pct  # the websockets Client and helpers of the interop test
from python_client_test import TestFailure, check, short

KEY = "k3y-for-tests"
STARTUP_TIMEOUT = 10.0
TOOL_TIMEOUT = 20  # one curl or php run
SKIPPED = []  # what could not run, with the package that brings it

SERVER_BINARY = None
PHP_SCRIPT = None
EXTRA_SERVER_ARGS = os.environ.get("HERALD_SERVER_ARGS", "").split()
STARTED = []


# ---------------------------------------------------------------- the server

def read_line(proc, deadline):
    line = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        c = os.read(fd, 1)  # byte by byte: the next line is read later
        if not c:
            break
        line += c
    return line.decode("utf-8", "replace").strip()


class Server:
    """uid_push_server with the HTTP API; `ws_port` and `api_port` are the ones it printed."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(
            [SERVER_BINARY, "--address", "127.0.0.1", "--port", "0", "--http-port", "0"] + args + EXTRA_SERVER_ARGS,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None, env=env)
        STARTED.append(self.proc)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        first, second = read_line(self.proc, deadline), read_line(self.proc, deadline)
        check(first.startswith("uid_push_server listening on 127.0.0.1:"), "first line: %r" % first)
        check(second.startswith("uid_push_server http api on 127.0.0.1:"), "second line: %r" % second)
        self.ws_port = int(first.split("127.0.0.1:")[1].split()[0])
        self.api_port = int(second.split("127.0.0.1:")[1].split()[0])
        self.uri = "ws://127.0.0.1:%d/" % self.ws_port
        self.base = "http://127.0.0.1:%d" % self.api_port

    def stop(self):
        pct.stop_process(self.proc)


# ---------------------------------------------------------------- curl and php

def curl(server, method, path, body=None, key=KEY, content_type=None):
    """(status, content type, body text) of one request made by curl."""
    cmd = ["curl", "-sS", "--max-time", "10", "-X", method, "-w", "\n%{http_code} %{content_type}"]
    if key is not None:
        cmd += ["-H", "Authorization: Bearer " + key]
    if content_type:
        cmd += ["-H", "Content-Type: " + content_type]
    if body is not None:
        cmd += ["--data-binary", "@-"]
    out = subprocess.run(cmd + [server.base + path], input=body.encode() if isinstance(body, str) else body,
                         capture_output=True, timeout=TOOL_TIMEOUT)
    check(out.returncode == 0, "curl %s %s: exit %d %s" % (method, path, out.returncode, out.stderr.decode()))
    text, _, tail = out.stdout.decode("utf-8").rpartition("\n")
    status, _, ctype = tail.partition(" ")
    return int(status), ctype, text


def curl_json(server, method, path, body=None, **kw):
    status, ctype, text = curl(server, method, path, body, **kw)
    check(status == 200, "%s %s: HTTP %d %s" % (method, path, status, text))
    check(ctype == "application/json", "%s %s: content type %r" % (method, path, ctype))
    return json.loads(text)


def same(got, want, what):
    check(got == want, "%s: %r, expected %r" % (what, got, want))


def php(*args, key=KEY):
    out = subprocess.run([shutil.which("php"), PHP_SCRIPT] + list(args), capture_output=True, text=True,
                         timeout=TOOL_TIMEOUT, env=dict(os.environ, HERALD_API_KEY=key))
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def php_json(*args):
    code, out, err = php(*args)
    check(code == 0, "php %s: exit %d, %s %s" % (" ".join(args), code, out, err))
    return json.loads(out)


# ---------------------------------------------------------------- the WebSocket side

class World:
    """The server, its clients by name, and the sentinel counter."""

    def __init__(self, server):
        self.server = server
        self.clients = {}
        self.sentinels = 0

    async def login(self, name, uid):
        c = await pct.Client.connect(self.server, name)
        await c.send(uid)
        await c.expect("login successful, your uid is " + uid)
        self.clients[name] = c
        return c

    async def run(self, fn, *args):
        """A blocking call (curl, php) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))

    async def expect(self, deliveries, what):
        """Each client's next messages are exactly deliveries[name] (none for the others),
        proven by a sentinel broadcast that must come right after them."""
        for name, messages in deliveries.items():
            try:
                await self.clients[name].expect(*messages)
            except TestFailure as e:
                raise TestFailure("%s: %s" % (what, e)) from None
        self.sentinels += 1
        sentinel = "sentinel %d" % self.sentinels
        answer = await self.run(curl_json, self.server, "POST", "/broadcast", sentinel)
        check(answer == {"delivered": len(self.clients)}, "sentinel: %r" % answer)
        for name, c in self.clients.items():
            got = await c.recv()
            check(got == sentinel, "%s: %s received %s where only the sentinel was due" % (what, name, short(got)))


# ---------------------------------------------------------------- the steps

async def step_refused_without_key(w):
    requests = [("POST", "/send/alice", "no"), ("POST", "/group/lobby", "no"), ("POST", "/broadcast", "no"),
                ("GET", "/online/alice", None), ("GET", "/presence", None), ("GET", "/metrics", None)]
    for key in (None, "wrong", KEY + "x"):
        for method, path, body in requests:
            status, _, text = await w.run(lambda: curl(w.server, method, path, body, key=key))
            check(status == 401, "%s %s with key %r: HTTP %d %s" % (method, path, key, status, text))
            check("API key" in text, "%s %s: 401 body %r" % (method, path, text))
    await w.expect({}, "401s delivered nothing")


async def step_curl_send(w):
    text = "to alice: caf\u00e9 \U0001F600, with: colons"
    same(await w.run(curl_json, w.server, "POST", "/send/alice", text), {"delivered": 2}, "send/alice")
    await w.expect({"alice1": [text], "alice2": [text]}, "curl send/alice")
    same(await w.run(curl_json, w.server, "POST", "/send/nobody", "lost"), {"delivered": 0}, "send/nobody")
    await w.expect({}, "curl send/nobody")
    binary = bytes(range(256))
    answer = await w.run(lambda: curl_json(w.server, "POST", "/send/bob", binary, content_type="application/octet-stream"))
    check(answer == {"delivered": 1}, "binary send/bob: %r" % answer)
    await w.expect({"bob": [binary]}, "curl binary send/bob")


async def step_curl_group_broadcast(w):
    same(await w.run(curl_json, w.server, "POST", "/group/lobby", "lobby news"), {"delivered": 2}, "group/lobby")
    await w.expect({"alice1": ["lobby news"], "carol": ["lobby news"]}, "curl group/lobby")
    same(await w.run(curl_json, w.server, "POST", "/group/empty", "nobody"), {"delivered": 0}, "group/empty")
    await w.expect({}, "curl group/empty")
    same(await w.run(curl_json, w.server, "POST", "/broadcast", "to all"), {"delivered": 4}, "broadcast")
    await w.expect({n: ["to all"] for n in w.clients}, "curl broadcast")


async def step_curl_presence_metrics(w):
    same(await w.run(curl_json, w.server, "GET", "/online/alice"), {"online": True}, "online/alice")
    same(await w.run(curl_json, w.server, "GET", "/online/dave"), {"online": False}, "online/dave")
    answer = await w.run(curl_json, w.server, "GET", "/presence")
    check(answer == {"uids": 3, "sessions": 4}, "presence: %r" % answer)
    status, ctype, text = await w.run(curl, w.server, "GET", "/metrics")
    check(status == 200 and ctype.startswith("text/plain"), "metrics: HTTP %d %r" % (status, ctype))
    lines = text.splitlines()
    for want in ("herald_sessions 4", "herald_uids 3", "herald_logins_total 4"):
        check(want in lines, "metrics: no line %r in %s" % (want, short(text, 300)))
    for method, path, expected in (("GET", "/nope", 404), ("GET", "/send/alice", 405), ("POST", "/metrics", 405),
                                   ("POST", "/presence", 405)):
        status, _, text = await w.run(lambda: curl(w.server, method, path, "" if method == "POST" else None))
        check(status == expected, "%s %s: HTTP %d (expected %d) %s" % (method, path, status, expected, text))
    await w.expect({}, "questions delivered nothing")


async def step_php(w):
    same(await w.run(php_json, "http", w.server.base, "bob", "from PHP: \u00fc"), {"delivered": 1}, "php bob")
    await w.expect({"bob": ["from PHP: \u00fc"]}, "php http bob")
    same(await w.run(php_json, "http", w.server.base, "group:lobby", "PHP to the lobby"), {"delivered": 2},
         "php group:lobby")
    await w.expect({"alice1": ["PHP to the lobby"], "carol": ["PHP to the lobby"]}, "php http group:lobby")
    same(await w.run(php_json, "http", w.server.base, "all", "PHP to all"), {"delivered": 4}, "php all")
    await w.expect({n: ["PHP to all"] for n in w.clients}, "php http all")
    same(await w.run(php_json, "online", w.server.base, "alice"), {"online": True}, "php online alice")
    same(await w.run(php_json, "online", w.server.base, "dave"), {"online": False}, "php online dave")
    same(await w.run(php_json, "presence", w.server.base), {"uids": 3, "sessions": 4}, "php presence")
    code, out, err = await w.run(lambda: php("http", w.server.base, "bob", "must not arrive", key="wrong"))
    check(code == 1 and "HTTP 401" in err, "php with a wrong key: exit %d, %s %s" % (code, out, err))
    await w.expect({}, "php with a wrong key delivered nothing")


async def step_logout(w):
    await w.clients.pop("bob").close()
    deadline = time.monotonic() + 5  # the server sees the close after the client does
    while await w.run(curl_json, w.server, "GET", "/online/bob") != {"online": False}:
        check(time.monotonic() < deadline, "bob still online 5 s after closing")
        await asyncio.sleep(0.05)
    same(await w.run(curl_json, w.server, "GET", "/presence"), {"uids": 2, "sessions": 3}, "presence after bob")
    same(await w.run(curl_json, w.server, "POST", "/send/bob", "gone"), {"delivered": 0}, "send to bob after")
    await w.expect({}, "after bob left")


# ---------------------------------------------------------------- the options

def check_options():
    env = {k: v for k, v in os.environ.items() if k != "HERALD_API_KEY"}
    out = subprocess.run([SERVER_BINARY, "--help"], capture_output=True, text=True, timeout=10, env=env)
    check(out.returncode == 0, "--help: exit %d" % out.returncode)
    for option in ("--address", "--port", "--duplicates", "--max-message", "--idle-timeout", "--handshake-timeout",
                   "--threads", "--tls-cert", "--tls-key", "--web", "--metrics-port", "--http-port",
                   "--http-address", "--api-key", "HERALD_API_KEY", "--help"):
        check(option in out.stdout, "--help does not mention %s" % option)
    out = subprocess.run([SERVER_BINARY, "--port", "0", "--http-port", "0"], capture_output=True, text=True,
                         timeout=10, env=env)
    check(out.returncode == 2 and "--api-key" in out.stderr,
          "--http-port without a key: exit %d, %r" % (out.returncode, out.stderr))


def check_key_from_environment():
    server = Server([], env=dict(os.environ, HERALD_API_KEY="from-env"))
    try:
        check(curl(server, "GET", "/presence", key="from-env")[0] == 200, "HERALD_API_KEY not taken")
        check(curl(server, "GET", "/presence", key=KEY)[0] == 401, "another key accepted")
    finally:
        server.stop()


async def main():
    have_curl, have_php = shutil.which("curl") is not None, shutil.which("php") is not None
    if not have_curl:
        SKIPPED.append("everything but the option checks: curl is not installed (apt-get install curl)")
    if not have_php:
        SKIPPED.append("push_from_php.php: php is not installed (apt-get install php-cli)")
    steps = [("--help lists every option; --http-port needs a key", check_options)]
    if have_curl:
        steps.append(("the key from HERALD_API_KEY", check_key_from_environment))
    ws_steps = [("401 without the key, nothing delivered", step_refused_without_key),
                ("curl: POST /send/<uid>, text and binary", step_curl_send),
                ("curl: POST /group/<name>, /broadcast", step_curl_group_broadcast),
                ("curl: GET /online, /presence, /metrics; 404, 405", step_curl_presence_metrics)]
    if have_php:
        ws_steps.append(("php push_from_php.php: uid, group, all, online, presence", step_php))
    ws_steps.append(("a client leaves: presence follows", step_logout))

    passed = failed = 0

    def report(name, t0, error=None):
        nonlocal passed, failed
        if error is None:
            passed += 1
            print("PASS %-55s %.2fs" % (name, time.monotonic() - t0), flush=True)
        else:
            failed += 1
            print("FAIL %-55s %s" % (name, error), flush=True)

    for name, fn in steps:
        t0 = time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(None, fn)
            report(name, t0)
        except TestFailure as e:
            report(name, t0, e)
    if not have_curl:
        return passed, failed

    server = Server(["--api-key", KEY])
    try:
        w = World(server)
        for name, uid in (("alice1", "alice"), ("alice2", "alice"), ("bob", "bob"), ("carol", "carol")):
            await pct.timed(w.login(name, uid), "login of " + name, 10)
        for name in ("alice1", "carol"):
            await w.clients[name].send("join:lobby")
            await w.clients[name].expect("joined lobby")
        for name, fn in ws_steps:  # each builds on the state the previous ones left
            t0 = time.monotonic()
            try:
                await pct.timed(fn(w), name, 60)
                report(name, t0)
            except TestFailure as e:
                report(name, t0, e)
                break
        for c in w.clients.values():
            await c.close()
    finally:
        server.stop()
    return passed, failed


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: http_api_test.py PATH/TO/uid_push_server PATH/TO/push_from_php.php", file=sys.stderr)
        sys.exit(2)
    SERVER_BINARY = os.path.abspath(sys.argv[1])
    PHP_SCRIPT = os.path.abspath(sys.argv[2])
    passed, failed = 0, 1
    try:
        passed, failed = asyncio.run(main())
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        failed = max(failed, 1)
    finally:
        for p in STARTED:
            pct.stop_process(p)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    if failed:
        sys.exit(1)
    if SKIPPED:
        for s in SKIPPED:
            print("skipped: " + s, flush=True)
        sys.exit(77)
    sys.exit(0)
