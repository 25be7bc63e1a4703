"""A client of the examples' --history protocol (examples/uid_protocol.hpp), for the history
tests of uid_push_server (interop/history_test.py) and cluster_node
(cluster/cluster_history_test.py), written from the protocol's description only:

  <offset>:<message>                  a message to this uid, at <offset> in its history
  :<message>                          anything else (group, broadcast, replies)
  @<epoch>:<offset>:<state>:<text>    the position: the login reply, or "history lost"

It keeps its position as an application would: it takes recorded messages strictly in
offset order (a gap or a repeat is an error it records), adopts the welcome's position unless
"recovered", and resumes by connecting to /?epoch=<epoch>&offset=<offset>. cut() ends the TCP
connection with a RST (SO_LINGER 0, no close frame), as a phone that changes networks does.
Also: starting a server and reading the ports it prints, and HTTP calls to the push API.
"""
import asyncio
import http.client
import json
import socket
import struct
import subprocess
import time
import traceback

import websockets

from http_api_test import read_line  # reads one line of a server's output, with a deadline
from python_client_test import TestFailure, check


class Resumer:
    def __init__(self, uid):
        self.uid = uid
        self.epoch = None      # no position yet: the first connection asks for none
        self.offset = 0
        self.got = []          # (offset, message) of the recorded messages taken, in order
        self.other = []        # messages outside history
        self.welcomes = []     # (epoch, offset, state) of every login reply
        self.lost = []         # (epoch, offset) of every "history lost"
        self.errors = []       # broken rules, with the message that broke them
        self.ws = None
        self.task = None
        self.changed = asyncio.Event()
        self.closed = None     # the ConnectionClosed of the last connection

    def __repr__(self):
        return "%s@%s:%d" % (self.uid, self.epoch, self.offset)

    def url(self, port):
        query = "" if self.epoch is None else "?epoch=%s&offset=%d" % (self.epoch, self.offset)
        return "ws://127.0.0.1:%d/%s" % (port, query)

    async def connect(self, port, timeout=10.0):
        """Connects (with the position, if any), logs in; returns the welcome (epoch, offset, state)."""
        self.ws = await asyncio.wait_for(websockets.connect(self.url(port), max_size=None), timeout)
        self.closed = None
        await self.ws.send(self.uid)
        seen = len(self.welcomes)
        self.task = asyncio.create_task(self._read(self.ws))
        await self.until(lambda: len(self.welcomes) > seen, timeout, "%r: the welcome" % self)
        return self.welcomes[-1]

    async def _read(self, ws):
        try:
            async for m in ws:
                self.take(m)
                self.changed.set()
        except websockets.ConnectionClosed as e:
            self.closed = e
        self.changed.set()

    def take(self, m):
        data = m if isinstance(m, bytes) else m.encode()
        if data.startswith(b"@"):
            parts = data[1:].decode().split(":", 3)
            if len(parts) != 4:
                self.errors.append("malformed position %r" % data[:80])
                return
            epoch, offset, state, text = parts[0], int(parts[1]), parts[2], parts[3]
            if text == "history lost":
                self.lost.append((epoch, offset))
            else:
                check(text == "login successful, your uid is " + self.uid, "%r: login reply %r" % (self, text))
                self.welcomes.append((epoch, offset, state))
            if state == "recovered":
                if epoch != self.epoch or offset < self.offset:
                    self.errors.append("recovered into %s:%d from %s:%d" % (epoch, offset, self.epoch, self.offset))
            else:
                self.epoch, self.offset = epoch, offset
            return
        colon = data.find(b":")
        if colon < 0:
            self.errors.append("a message without a header: %r" % data[:80])
            return
        body = data[colon + 1:] if isinstance(m, bytes) else data[colon + 1:].decode()
        if colon == 0:
            self.other.append(body)
            return
        offset = int(data[:colon])
        if offset != self.offset + 1:
            self.errors.append("offset %d after %d (%r)" % (offset, self.offset, body[:40]))
            return
        self.offset = offset
        self.got.append((offset, body))

    def texts(self):
        return [b for _, b in self.got]

    async def until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            check(not self.errors, "%r: %s" % (self, self.errors[:3]))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("timed out after %.1f s waiting for %s" % (timeout, what))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.1))
            except asyncio.TimeoutError:
                pass
        check(not self.errors, "%r: %s" % (self, self.errors[:3]))

    async def cut(self):
        """Ends the connection with a TCP RST: no close frame, nothing more read."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()
        await asyncio.wait_for(self.task, 10)

    async def close(self):
        await asyncio.wait_for(self.ws.close(), 10)
        await asyncio.wait_for(self.task, 10)


# ---------------------------------------------------------------- processes

class Server:
    """A server process that prints "... listening on 127.0.0.1:P" and "... http api on
    127.0.0.1:Q"; its other output goes to `log` (a path)."""

    def __init__(self, args, log, env=None, started=None):
        self.args = args
        self.log_path = log
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        if started is not None:
            started.append(self.proc)
        self.port = self.http_port = None
        lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (self.port and self.http_port):
            line = read_line(self.proc, deadline)
            if not line and self.proc.poll() is not None:
                break
            lines.append(line)
            if " listening on 127.0.0.1:" in line:
                self.port = int(line.split(" listening on 127.0.0.1:")[1].split()[0])
            if " http api on 127.0.0.1:" in line:
                self.http_port = int(line.rsplit(":", 1)[1])
        check(self.port and self.http_port, "%s did not start: %r" % (args[0], lines))
        # The rest of its output, to the log, by a thread of the OS (a cat).
        self.logger = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=open(log, "w"))
        if started is not None:
            started.append(self.logger)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=None):
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.logger.wait(10)

    def log(self):
        with open(self.log_path) as f:
            return f.read()


def api(port, key, method, path, body=None, conn=None):
    """One request to the HTTP push API; returns (status, parsed JSON or None)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers={"Authorization": "Bearer " + key})
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, None


async def api_async(port, key, method, path, body=None):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: api(port, key, method, path, body))


async def until_offline(port, key, uid):
    """Until GET /online/<uid> says false (the server noticed the cut), within 10 s."""
    deadline = time.monotonic() + 10
    while True:
        status, j = await api_async(port, key, "GET", "/online/" + uid)
        check(status == 200, "online: %s" % status)
        if not j["online"]:
            return
        check(time.monotonic() < deadline, "%s still online 10 s after its connection was cut" % uid)
        await asyncio.sleep(0.02)


async def quiet(*clients, seconds=0.4):
    """Nothing more arrives for a moment, and nothing broke a rule."""
    counts = [(len(c.got), len(c.other), len(c.lost)) for c in clients]
    await asyncio.sleep(seconds)
    for c, n in zip(clients, counts):
        check(not c.errors, "%r: %s" % (c, c.errors[:3]))
        check((len(c.got), len(c.other), len(c.lost)) == n,
              "%r received more than expected: %r" % (c, (c.got[n[0]:], c.other[n[1]:], c.lost[n[2]:])))


async def run_scenarios(scenarios, stop_at_first=False, limit=120):
    """Runs (name, coroutine function, argument) in turn; prints PASS/FAIL; returns (passed, failed)."""
    passed = failed = 0
    for name, fn, arg in scenarios:
        started = time.monotonic()
        try:
            await asyncio.wait_for(fn(arg), limit)
            passed += 1
            print("PASS %s (%.2f s)" % (name, time.monotonic() - started), flush=True)
        except Exception as e:
            failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
            if not isinstance(e, TestFailure):
                traceback.print_exc()
            if stop_at_first:
                break
    return passed, failed


def run_main(main, started):
    """asyncio.run(main()), then kill what is left of `started`; prints the tally; returns the exit code."""
    try:
        passed, failed = asyncio.run(main())
    except Exception:
        traceback.print_exc()
        passed, failed = 0, 1
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
