#!/usr/bin/python3
"""uid_push_server --history: nothing lost across a reconnect (issue 16), with Python
websockets clients that keep their position (history_client.py) and the HTTP push API.

Usage: /usr/bin/python3 history_test.py PATH/TO/uid_push_server   (HERALD_SERVER_ARGS: e.g. --threads 2)

Scenarios, each counting every message (exactly once, in offset order, intact, to its uid):
  cut: alice's connection is cut with a TCP RST (no close frame); while she is away exactly
    30 messages are sent to her uid by another session (bob) and by the HTTP API (whose
    answers give the offsets); she reconnects with her position and receives exactly those
    30, in order, before 10 live ones; a second device of alice that stayed connected gets
    all 40 live; broadcasts and group messages sent meanwhile are not replayed (at most once).
  fire: bob's session and the HTTP API send 600 messages to carol without pause while carol
    is cut (RST) and resumes 12 times, also in the middle of replays: she ends with every one,
    in order, each sender's in the order it sent them.
  overflow: on a server with --history 20, 25 messages while dave is away: "not recovered",
    his position jumps to the stream's end, then live messages from there.
  epoch: a position of another epoch (or a malformed one) is "not recovered"; a fresh login
    (no position) starts at the stream's end without a replay.
Prints "N passed, M failed"; exit 1 on any failure.
"""
import asyncio
import os
import shutil
import sys
import tempfile
import time

import history_client as hc
from history_client import Resumer, TestFailure, check

SERVER_BINARY = sys.argv[1] if len(sys.argv) > 1 else None
EXTRA = os.environ.get("HERALD_SERVER_ARGS", "").split()
KEY = "history-key"
STARTED = []
WORKDIR = tempfile.mkdtemp(prefix="herald-history-test-")


def start(history):
    return hc.Server([SERVER_BINARY, "--address", "127.0.0.1", "--port", "0", "--http-port", "0", "--api-key", KEY,
                      "--history", str(history)] + EXTRA, os.path.join(WORKDIR, "server-%d.log" % history), started=STARTED)


async def scenario_cut(server):
    alice, alice2, bob = Resumer("alice"), Resumer("alice"), Resumer("bob")
    w = await alice.connect(server.port)
    check(w[2] == "fresh" and w[1] == 0 and len(w[0]) == 16, "alice's first welcome: %r" % (w,))
    w2 = await alice2.connect(server.port)
    check(w2 == (w[0], 0, "fresh"), "alice's second device: %r" % (w2,))
    await bob.connect(server.port)
    await bob.ws.send("join:lobby")
    await alice.ws.send("join:lobby")
    await bob.until(lambda: bob.other == ["joined lobby"], 10, "bob joined")
    await alice.until(lambda: alice.other == ["joined lobby"], 10, "alice joined")

    # Live: 5 from bob's session, 5 over HTTP (the answers give the offsets).
    for i in range(5):
        await bob.ws.send("alice:live b%d" % i)
        status, j = await hc.api_async(server.http_port, KEY, "POST", "/send/alice", ("live h%d" % i).encode())
        check(status == 200 and j["epoch"] == w[0] and j["delivered"] == 2, "POST /send/alice: %s %r" % (status, j))
    await alice.until(lambda: len(alice.got) == 10, 10, "alice's 10 live messages")
    check([o for o, _ in alice.got] == list(range(1, 11)), "offsets %r" % alice.got)

    await alice.cut()
    # The server notices the RST: one session of alice left.
    deadline = time.monotonic() + 10
    while True:
        status, j = await hc.api_async(server.http_port, KEY, "GET", "/presence")
        if j["sessions"] == 2:
            break
        check(time.monotonic() < deadline, "the cut session is still counted: %r" % j)
        await asyncio.sleep(0.02)
    away = []
    for i in range(15):
        await bob.ws.send("alice:away b%d" % i)
        away.append("away b%d" % i)
        status, j = await hc.api_async(server.http_port, KEY, "POST", "/send/alice", ("away h%d" % i).encode())
        check(status == 200 and j["delivered"] == 1, "POST while away: %s %r" % (status, j))
        away.append("away h%d" % i)
    await bob.ws.send("all:a broadcast while alice is away")
    await bob.ws.send("group:lobby:to the lobby while alice is away")
    await alice2.until(lambda: len(alice2.got) == 40, 10, "alice2's 40 messages")
    await bob.until(lambda: len(bob.other) == 3, 10, "bob's broadcast and group message")
    # HTTP answers are in order, but bob's messages and the HTTP ones race: the offsets say the order.
    top = alice2.got[-1][0]
    check(top == 40, "alice's stream ends at %d" % top)
    missed = alice2.got[10:]
    check(sorted(b for _, b in missed) == sorted(away), "what alice2 got while alice was away")

    w = await alice.connect(server.port)
    check(w == (alice.epoch, 40, "recovered"), "alice's welcome on resuming: %r" % (w,))
    await alice.until(lambda: len(alice.got) == 40, 10, "alice's 30 missed messages")
    check(alice.got[10:] == missed, "alice's replay %r, expected %r" % (alice.got[10:15], missed[:5]))
    for i in range(10):
        await bob.ws.send("alice:after b%d" % i)
    await alice.until(lambda: len(alice.got) == 50, 10, "10 live messages after the replay")
    await alice2.until(lambda: len(alice2.got) == 50, 10, "alice2's 10 live messages")
    check(alice.got == alice2.got, "both devices of alice have the same stream")
    check(alice.other == ["joined lobby"], "nothing outside history was replayed: %r" % alice.other)
    check(alice2.other == ["a broadcast while alice is away"], "alice2 got the broadcast: %r" % alice2.other)
    await hc.quiet(alice, alice2, bob)
    for c in (alice, alice2, bob):
        await c.close()


async def scenario_fire(server):
    carol, bob = Resumer("carol"), Resumer("bob2")
    await carol.connect(server.port)
    await bob.connect(server.port)
    total_b, total_h = 300, 300
    done = asyncio.Event()

    async def from_bob():
        for i in range(total_b):
            await bob.ws.send("carol:b%d" % i)
            if i % 10 == 0:
                await asyncio.sleep(0.005)

    def from_http():
        conn = hc.http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        for i in range(total_h):
            status, j = hc.api(server.http_port, KEY, "POST", "/send/carol", ("h%d" % i).encode(), conn=conn)
            check(status == 200, "POST /send/carol: %s" % status)
        conn.close()

    loop = asyncio.get_running_loop()
    senders = asyncio.gather(from_bob(), loop.run_in_executor(None, from_http))
    cuts = 0
    states = []
    while len(carol.got) < total_b + total_h and cuts < 12:
        target = min(len(carol.got) + 30 + 7 * cuts, total_b + total_h)
        await carol.until(lambda: len(carol.got) >= target, 20, "carol's next messages")
        await carol.cut()
        cuts += 1
        w = await carol.connect(server.port)  # at once: the old session may still be counted
        states.append(w[2])
    await senders
    await carol.until(lambda: len(carol.got) == total_b + total_h, 20, "all of carol's messages")
    check(states == ["recovered"] * len(states), "welcomes %r" % states)
    texts = carol.texts()
    check([t for t in texts if t[0] == "b"] == ["b%d" % i for i in range(total_b)], "bob's messages in order")
    check([t for t in texts if t[0] == "h"] == ["h%d" % i for i in range(total_h)], "the HTTP messages in order")
    print("  fire: %d cuts, %d messages, every one exactly once, in order" % (cuts, len(texts)))
    await hc.quiet(carol)
    await carol.close()
    await bob.close()


async def scenario_overflow(small):
    dave, bob = Resumer("dave"), Resumer("bob3")
    await dave.connect(small.port)
    await bob.connect(small.port)
    for i in range(3):
        await bob.ws.send("dave:d%d" % i)
    await dave.until(lambda: len(dave.got) == 3, 10, "dave's first 3")
    await dave.cut()
    await hc.until_offline(small.http_port, KEY, "dave")
    for i in range(25):
        status, j = await hc.api_async(small.http_port, KEY, "POST", "/send/dave", ("x%d" % i).encode())
        check(status == 200 and j["offset"] == 4 + i, "POST: %s %r" % (status, j))
    w = await dave.connect(small.port)
    check(w == (dave.epoch, 28, "not recovered"), "overflow: %r" % (w,))
    check(len(dave.got) == 3, "nothing replayed when not recovered")
    await bob.ws.send("dave:live")
    await dave.until(lambda: len(dave.got) == 4, 10, "the live message after 'not recovered'")
    check(dave.got[-1] == (29, "live"), "live after not recovered: %r" % (dave.got[-1],))
    await hc.quiet(dave)
    await dave.close()
    await bob.close()


async def scenario_epoch(server):
    erin = Resumer("erin")
    for i in range(3):
        status, j = await hc.api_async(server.http_port, KEY, "POST", "/send/erin", ("e%d" % i).encode())
        check(status == 200 and j["offset"] == i + 1 and j["delivered"] == 0, "POST to an offline uid: %s %r" % (status, j))
    epoch = j["epoch"]
    w = await erin.connect(server.port)  # no position: the end of the stream
    check(w == (epoch, 3, "fresh") and not erin.got, "fresh: %r %r" % (w, erin.got))
    await erin.close()
    for bad in ("0123456789abcdef", "zz", ""):
        e = Resumer("erin")
        e.epoch, e.offset = bad, 1
        w = await e.connect(server.port)
        check(w == (epoch, 3, "not recovered") and not e.got, "epoch %r: %r" % (bad, w))
        await e.close()
    for query in ("epoch=%s&offset=1x" % epoch, "offset=1x&epoch=%s" % epoch):  # malformed, either order
        e = Resumer("erin")
        e.url = lambda port, q=query: "ws://127.0.0.1:%d/?%s" % (port, q)
        w = await e.connect(server.port)
        check(w == (epoch, 3, "not recovered") and not e.got, "%s: %r" % (query, w))
        await e.close()
    e = Resumer("erin")
    e.epoch, e.offset = epoch, 0
    w = await e.connect(server.port)
    await e.until(lambda: len(e.got) == 3, 10, "erin's replay from 0")
    check(w == (epoch, 3, "recovered") and e.texts() == ["e0", "e1", "e2"], "from 0: %r %r" % (w, e.got))
    await e.close()


async def main():
    server = start(1000)
    small = start(20)
    passed, failed = await hc.run_scenarios([
        ("cut with RST, exactly the missed messages", scenario_cut, server),
        ("resume under fire", scenario_fire, server),
        ("history overflow: not recovered", scenario_overflow, small),
        ("another epoch: not recovered", scenario_epoch, server)])
    for s in (server, small):
        s.stop()
        if s.proc.returncode != 0:
            failed += 1
            print("FAIL %s exited %s:\n%s" % (s.args[0], s.proc.returncode, s.log()[-2000:]))
    return passed, failed


if __name__ == "__main__":
    if not SERVER_BINARY:
        print("usage: history_test.py PATH/TO/uid_push_server")
        sys.exit(2)
    code = hc.run_main(main, STARTED)
    if code == 0:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    else:
        print("logs in %s" % WORKDIR)
    sys.exit(code)
