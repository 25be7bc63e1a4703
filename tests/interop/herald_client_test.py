#!/usr/bin/python3
"""Interop the other way round: herald's client role (benchmarks/load_client, one thread of
herald client sessions) against servers nobody here wrote, with and without permessage-deflate.

Usage: /usr/bin/python3 herald_client_test.py PATH/TO/load_client

Servers: Python websockets 10.4 (compression="deflate", in this process) and Node's ws
(perMessageDeflate: true; from tests/interop/node_modules, skipped with a note without it).
Each speaks the part of uid_push_server's protocol that load_client's broadcast scenario uses
(the first message is the uid, answered "login successful, your uid is <uid>"; "all:<m>"
goes to every session). load_client logs 20 sessions in, a sender broadcasts 30 JSON documents
of 4 KiB, and every session checks every one: exactly once, in order, byte for byte.
With --deflate, load_client fails unless every session negotiated the extension, its sessions
compress what they send and inflate what they get; the server must have seen the extension
on every connection too. Only processes started here are stopped, by their handle.

Prints "N passed, M failed" and exits non-zero on any failure.
"""
import asyncio
import os
import subprocess
import sys
import traceback

import websockets

LOAD_CLIENT = None
HERE = os.path.dirname(os.path.abspath(__file__))
STEP_TIMEOUT = 120
LOAD_ARGS = ["--scenario", "broadcast", "--sessions", "20", "--messages", "30", "--size", "4096",
             "--window", "4", "--payload", "json", "--timeout", "60", "--stall-timeout", "20"]


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


async def run_load_client(port, server_pid, deflate):
    args = [LOAD_CLIENT, "--host", "127.0.0.1", "--port", str(port), "--server-pid", str(server_pid)] + LOAD_ARGS
    if deflate:
        args.append("--deflate")
    proc = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise TestFailure("load_client did not finish within %d s" % STEP_TIMEOUT) from None
    text = out.decode("utf-8", "replace")
    result = [l for l in text.splitlines() if l.startswith("RESULT ")]
    check(proc.returncode == 0 and result and "status=PASS" in result[-1],
          "load_client failed (exit %r):\n%s" % (proc.returncode, "\n".join(text.splitlines()[-25:])))
    wire = [l for l in text.splitlines() if l.startswith("on the wire")]
    return result[-1], (wire[0] if wire else "")


async def python_server(deflate):
    sessions = set()
    seen = []  # the extensions of every connection

    async def handler(ws, path=None):
        try:
            uid = await ws.recv()
            seen.append([e.name for e in ws.extensions])
            sessions.add(ws)
            await ws.send("login successful, your uid is " + uid)
            async for m in ws:
                if isinstance(m, str) and m.startswith("all:"):
                    websockets.broadcast(sessions, m[4:])
        except websockets.ConnectionClosed:
            pass  # load_client exits without closing its sessions
        finally:
            sessions.discard(ws)

    server = await websockets.serve(handler, "127.0.0.1", 0, compression="deflate" if deflate else None,
                                    max_size=1 << 20, ping_interval=None)
    return server, seen


async def against_python(deflate):
    server, seen = await python_server(deflate)
    try:
        port = server.sockets[0].getsockname()[1]
        result, wire = await run_load_client(port, os.getpid(), deflate)
        check(len(seen) == 21, "the server saw %d logins, expected 21" % len(seen))
        want = ["permessage-deflate"] if deflate else []
        check(all(s == want for s in seen), "extensions seen by the server: %r" % sorted(set(map(tuple, seen))))
        return wire
    finally:
        server.close()
        await server.wait_closed()


NODE_SERVER = r"""
import { WebSocketServer } from 'ws';
const deflate = process.argv[1] === 'deflate';
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: 1 << 20 });
const all = new Set();
let logins = 0, negotiated = 0;
wss.on('listening', () => console.log(`listening on ${wss.address().port}`));
wss.on('connection', (ws) => {
  let uid = null;
  ws.on('message', (data) => {
    const m = data.toString('utf8');
    if (uid === null) {
      uid = m;
      ++logins;
      if (ws.extensions.includes('permessage-deflate')) ++negotiated;
      all.add(ws);
      ws.send(`login successful, your uid is ${uid}`);
    } else if (m.startsWith('all:')) {
      const body = m.slice(4);
      for (const c of all) c.send(body);
    }
  });
  ws.on('close', () => all.delete(ws));
});
process.on('SIGTERM', () => { console.log(`logins ${logins} negotiated ${negotiated}`); process.exit(0); });
"""


async def against_node(deflate):
    if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        return None  # skipped: npm ci in tests/interop
    proc = await asyncio.create_subprocess_exec("node", "--input-type=module", "-e", NODE_SERVER,
                                                "deflate" if deflate else "plain", cwd=HERE,
                                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        check(line.startswith("listening on "), "the Node server did not start: %r" % line)
        _, wire = await run_load_client(int(line.split()[-1]), proc.pid, deflate)
        proc.terminate()
        rest = (await asyncio.wait_for(proc.stdout.read(), 20)).decode().split()
        check(rest[:1] == ["logins"] and rest[1] == "21", "the Node server says %r" % rest)
        check(rest[3] == ("21" if deflate else "0"), "the Node server negotiated deflate on %s of 21" % rest[3])
        return wire
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def main():
    passed = failed = 0
    for name, fn, deflate in [("python_websockets_deflate", against_python, True),
                              ("python_websockets_plain", against_python, False),
                              ("node_ws_deflate", against_node, True),
                              ("node_ws_plain", against_node, False)]:
        try:
            wire = await fn(deflate)
            if wire is None:
                print("SKIP %-28s Node's ws is missing: (cd tests/interop && npm ci)" % name, flush=True)
                continue
            passed += 1
            print("PASS %-28s %s" % (name, wire), flush=True)
        except TestFailure as e:
            failed += 1
            print("FAIL %-28s %s" % (name, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-28s exception:" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
    return passed, failed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: herald_client_test.py PATH/TO/load_client", file=sys.stderr)
        sys.exit(2)
    LOAD_CLIENT = os.path.abspath(sys.argv[1])
    passed, failed = asyncio.run(main())
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
