#!/usr/bin/python3
"""Integration test of the redis_cluster policy: three cluster_node processes, one real
redis-server, WebSocket clients spread across the nodes (Python websockets 10.4).

Usage: /usr/bin/python3 cluster_test.py PATH/TO/cluster_node [PATH/TO/push_from_php.php]

The script starts its own redis-server on a free 127.0.0.1 port (no persistence) and kills it
by PID only, also in the middle of the run for the outage scenario, then restarts it on the
same port. Every message a client receives is checked: after each step every client must
have received exactly what it was expected to (nothing missing, nothing twice, nothing that
was not for it), with a quiet period after the expected messages to catch late duplicates.

Scenarios, in order (they share the processes; a failure stops the run):
  unicast across nodes (several devices of one uid on different nodes), binary too;
  broadcast from any node reaches every session of every node exactly once;
  PUBLISH from redis-cli (plain payload) to a uid and to all;
  the HTTP API: delivery, JSON answers, 401/413/404/405, keep-alive, cluster-wide online;
  examples/push_from_php.php (HTTP and Redis) when php is installed;
  online() cluster-wide as sessions come and go;
  groups spanning the nodes (join:/leave:/group: of the protocol, redis-cli, HTTP): every
  member exactly once, the sender only if a member, and a node holds a group's channel
  (PUBSUB NUMSUB) exactly while it has a member, whether members leave or disconnect;
  cluster-wide presence (GET /presence: uids, sessions, nodes) against known numbers, also
  when a node is killed (its report expires) and while Redis is down (the local view);
  Redis killed during traffic and restarted: no node dies, local delivery never stops,
  cross-node delivery resumes within seconds with every subscription restored (uid, group
  and broadcast channels), and the nodes count what they could not publish;
  at shutdown, each node counted exactly two Redis reconnections (metrics::redis_reconnects:
  its publisher and subscriber links, once each for the one restart).

Prints "N passed, M failed" and exits non-zero on any failure.
"""
import asyncio
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import websockets

STEP_TIMEOUT = 10.0      # waiting for expected messages
PRESENCE_INTERVAL = 0.5  # --presence-interval of the nodes: reports expire after 3 of them
QUIET = 0.4              # after the expected messages: nothing more may arrive
RECOVERY_LIMIT = 10.0    # cross-node delivery must resume within this after Redis is back

NODE_BINARY = sys.argv[1] if len(sys.argv) > 1 else None
PHP_SCRIPT = sys.argv[2] if len(sys.argv) > 2 else None
PREFIX = "ct%d" % random.randrange(1 << 30)
API_KEY = "key-%032x" % random.getrandbits(128)
STARTED = []             # every Popen this script created (stopped at the end, by handle)
WORKDIR = tempfile.mkdtemp(prefix="herald-cluster-test-")


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- processes

class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(WORKDIR, "redis-%d.log" % self.starts), "w")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", WORKDIR],
            stdout=log, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure("redis-server exited at start: see %s" % log.name)
            try:
                if self.cli("PING") == "PONG":
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise TestFailure("redis-server did not answer PING within 10 s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise TestFailure("redis-cli %s failed: %s" % (" ".join(args), out.stderr.strip()))
        return out.stdout.strip()

    def numsub(self, channels):
        out = self.cli("PUBSUB", "NUMSUB", *channels).split("\n")
        return {out[i]: int(out[i + 1]) for i in range(0, len(out), 2)}


class Node:
    def __init__(self, index, redis_port):
        self.index = index
        self.log_path = os.path.join(WORKDIR, "node-%d.log" % index)
        args = [NODE_BINARY, "--address", "127.0.0.1", "--port", "0", "--redis", "127.0.0.1:%d" % redis_port,
                "--prefix", PREFIX, "--node-id", "node%d" % index, "--http-port", "0", "--max-message", "65536",
                "--presence-interval", str(PRESENCE_INTERVAL)]
        env = dict(os.environ, HERALD_API_KEY=API_KEY)
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=env)
        STARTED.append(self.proc)
        self.port = self.http_port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = self.log()
            for line in text.splitlines():
                if " listening on 127.0.0.1:" in line:
                    self.port = int(line.split(" listening on 127.0.0.1:")[1].split()[0])
                if line.startswith("cluster_node http api on 127.0.0.1:"):
                    self.http_port = int(line.rsplit(":", 1)[1])
            if self.port and self.http_port and "redis subscriber: connected" in text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TestFailure("node %d did not start:\n%s" % (index, self.log()))

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None


# ---------------------------------------------------------------- clients

CHANGED = None  # asyncio.Event set on every received message


class Client:
    def __init__(self, uid, node):
        self.uid = uid
        self.node = node
        self.got = []       # messages since the last reset()
        self.ws = None
        self.ended = None

    def __repr__(self):
        return "%s@node%d" % (self.uid, self.node.index)

    async def open(self):
        self.ws = await asyncio.wait_for(websockets.connect("ws://127.0.0.1:%d" % self.node.port, max_size=None), 5)
        await self.ws.send(self.uid)
        reply = await asyncio.wait_for(self.ws.recv(), 5)
        check(reply == "login successful, your uid is " + self.uid, "%r: login reply %r" % (self, reply))
        self.task = asyncio.create_task(self.reader())
        return self

    async def reader(self):
        try:
            async for m in self.ws:
                self.got.append(m)
                CHANGED.set()
        except websockets.ConnectionClosed as e:
            self.ended = e
        CHANGED.set()

    async def close(self):
        await asyncio.wait_for(self.ws.close(), 5)
        await asyncio.wait_for(self.task, 5)

    async def command(self, text, reply):
        """Sends a protocol command and checks its reply (the next message this client gets)."""
        self.got.clear()
        await self.ws.send(text)
        await wait_until(lambda: len(self.got) >= 1, STEP_TIMEOUT, "%r: the reply to %r" % (self, text))
        check(self.got == [reply], "%r: %r answered %r, expected %r" % (self, text, self.got, reply))
        self.got.clear()


async def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("timed out after %.1f s waiting for %s" % (timeout, what))
        CHANGED.clear()
        try:
            await asyncio.wait_for(CHANGED.wait(), min(left, 0.1))
        except asyncio.TimeoutError:
            pass


def reset(clients):
    for c in clients:
        c.got.clear()


async def expect(clients, expected, what):
    """`expected`: client -> list of messages it must get (in order); every other client nothing."""
    def complete():
        return all(len(c.got) >= len(expected.get(c, [])) for c in clients)
    await wait_until(complete, STEP_TIMEOUT, what + ": " + ", ".join(
        "%r has %d of %d" % (c, len(c.got), len(expected.get(c, []))) for c in clients if len(c.got) < len(expected.get(c, []))))
    await asyncio.sleep(QUIET)
    for c in clients:
        want = expected.get(c, [])
        check(c.got == want, "%s: %r received %r, expected %r" % (what, c, c.got[:5], want[:5]))
        check(c.ended is None, "%s: %r was closed: %r" % (what, c, c.ended))
    reset(clients)


# ---------------------------------------------------------------- HTTP

def api(node, method, path, body=None, key=API_KEY, conn=None, headers=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=10)
    h = dict(headers or {})
    if key is not None:
        h["Authorization"] = "Bearer " + key
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    status, conn_header = r.status, r.getheader("Connection")
    if own:
        conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    return status, parsed, conn_header


# ---------------------------------------------------------------- scenarios

class Cluster:
    pass


async def scenario_unicast(k):
    c = k.clients
    dave, carol, bob1, bob2 = k.by["dave"][0], k.by["carol"][0], k.by["bob"][0], k.by["bob"][1]
    alice = k.by["alice"]
    check(sorted(a.node.index for a in alice) == [0, 1, 2], "alice has a device on every node")
    await dave.ws.send("alice:to alice: from node 0")
    await expect(c, {a: ["to alice: from node 0"] for a in alice}, "unicast to alice's three devices")
    await carol.ws.send("bob:to bob from node 2")
    await expect(c, {bob1: ["to bob from node 2"], bob2: ["to bob from node 2"]}, "unicast to bob's two devices")
    await bob1.ws.send("carol:back to carol")
    await expect(c, {carol: ["back to carol"]}, "unicast node 1 -> node 2")
    await bob1.ws.send("nobody:lost")
    await expect(c, {}, "unicast to a uid nobody holds")
    await carol.ws.send(b"dave:\xff\x00binary")
    await expect(c, {dave: [b"\xff\x00binary"]}, "binary unicast node 2 -> node 0")
    # Several in a row keep their order.
    for i in range(20):
        await dave.ws.send("carol:seq %d" % i)
    await expect(c, {carol: ["seq %d" % i for i in range(20)]}, "a stream node 0 -> node 2 in order")


async def scenario_broadcast(k):
    for sender in (k.by["u5"][0], k.by["u0"][0], k.by["u1"][0]):
        text = "broadcast from node %d" % sender.node.index
        await sender.ws.send("all:" + text)
        await expect(k.clients, {c: [text] for c in k.clients}, "broadcast from node %d" % sender.node.index)


async def scenario_redis_cli(k):
    n = k.redis.cli("PUBLISH", PREFIX + ":uid:bob", "plain text from redis-cli")
    check(n == "1", "PUBLISH to bob's channel reached %s subscribers, expected 1 (node 1)" % n)
    await expect(k.clients, {b: ["plain text from redis-cli"] for b in k.by["bob"]}, "redis-cli PUBLISH to bob")
    n = k.redis.cli("PUBLISH", PREFIX + ":uid:alice", "alice: everywhere")
    check(n == "3", "PUBLISH to alice's channel reached %s subscribers, expected 3" % n)
    await expect(k.clients, {a: ["alice: everywhere"] for a in k.by["alice"]}, "redis-cli PUBLISH to alice")
    n = k.redis.cli("PUBLISH", PREFIX + ":all", "everyone from redis-cli")
    check(n == "3", "PUBLISH to the broadcast channel reached %s subscribers, expected 3" % n)
    await expect(k.clients, {c: ["everyone from redis-cli"] for c in k.clients}, "redis-cli PUBLISH to all")


async def scenario_http_api(k):
    n0 = k.nodes[0]
    loop = asyncio.get_running_loop()

    async def call(*args, **kw):
        return await loop.run_in_executor(None, lambda: api(*args, **kw))

    status, j, _ = await call(n0, "POST", "/send/bob", b"via the API")
    check(status == 200 and j == {"delivered": 0, "published": True, "nodes": 1}, "POST /send/bob: %s %r" % (status, j))
    await expect(k.clients, {b: ["via the API"] for b in k.by["bob"]}, "HTTP send to bob (node 1) via node 0")
    status, j, _ = await call(n0, "POST", "/send/alice", "àpi ünicode".encode())
    check(status == 200 and j == {"delivered": 1, "published": True, "nodes": 2}, "POST /send/alice: %s %r" % (status, j))
    await expect(k.clients, {a: ["àpi ünicode"] for a in k.by["alice"]}, "HTTP send to alice")
    status, j, _ = await call(n0, "POST", "/broadcast", b"api broadcast")
    local = sum(1 for c in k.clients if c.node is n0)
    check(status == 200 and j == {"delivered": local, "published": True, "nodes": 2}, "POST /broadcast: %s %r" % (status, j))
    await expect(k.clients, {c: ["api broadcast"] for c in k.clients}, "HTTP broadcast")

    status, j, _ = await call(n0, "GET", "/online/carol")   # carol is on node 2 only
    check(status == 200 and j == {"online": True, "scope": "cluster"}, "online carol: %s %r" % (status, j))
    status, j, _ = await call(n0, "GET", "/online/nobody")
    check(status == 200 and j == {"online": False, "scope": "cluster"}, "online nobody: %s %r" % (status, j))

    status, j, _ = await call(n0, "POST", "/send/bob", b"no key", key=None)
    check(status == 401, "no key: %s" % status)
    status, j, _ = await call(n0, "POST", "/send/bob", b"bad key", key="wrong")
    check(status == 401, "wrong key: %s" % status)
    status, j, conn_header = await call(n0, "POST", "/send/bob", b"x" * 65537)
    check(status == 413 and conn_header == "close", "over the limit: %s %s" % (status, conn_header))
    status, j, _ = await call(n0, "POST", "/send/bob", b"x" * 65536 + b"")
    check(status == 200, "at the limit: %s" % status)
    await expect(k.clients, {b: ["x" * 65536] for b in k.by["bob"]}, "HTTP send at the size limit")
    status, j, _ = await call(n0, "POST", "/nope", b"x")
    check(status == 404, "unknown path: %s" % status)
    status, j, _ = await call(n0, "GET", "/send/bob")
    check(status == 405, "GET /send: %s" % status)
    status, j, _ = await call(n0, "POST", "/online/bob")
    check(status == 405, "POST /online: %s" % status)
    await expect(k.clients, {}, "nothing delivered by refused requests")

    # Keep-alive: several requests over one connection.
    def keep_alive():
        conn = http.client.HTTPConnection("127.0.0.1", n0.http_port, timeout=10)
        answers = [api(n0, "POST", "/send/carol", ("ka %d" % i).encode(), conn=conn) for i in range(3)]
        first = conn.sock
        answers.append(api(n0, "GET", "/online/carol", conn=conn))
        same = conn.sock is first and first is not None
        conn.close()
        return answers, same
    answers, same = await loop.run_in_executor(None, keep_alive)
    check(same, "the keep-alive connection was not reused")
    check(all(a[0] == 200 and a[2] == "keep-alive" for a in answers), "keep-alive answers: %r" % answers)
    await expect(k.clients, {k.by["carol"][0]: ["ka 0", "ka 1", "ka 2"]}, "keep-alive sends")


async def scenario_php(k):
    php = shutil.which("php")
    if not php or not PHP_SCRIPT:
        print("  (php not installed: push_from_php.php not run; apt-get install php-cli)")
        return
    carol = k.by["carol"][0]
    n1 = k.nodes[1]
    loop = asyncio.get_running_loop()

    def run(*args):
        return subprocess.run([php, PHP_SCRIPT] + list(args), capture_output=True, text=True, timeout=20,
                              env=dict(os.environ, HERALD_API_KEY=API_KEY))
    out = await loop.run_in_executor(None, lambda: run("http", "http://127.0.0.1:%d" % n1.http_port, "carol", "from PHP over HTTP"))
    check(out.returncode == 0, "php http: %s %s" % (out.stdout, out.stderr))
    await expect(k.clients, {carol: ["from PHP over HTTP"]}, "PHP HTTP push to carol")
    out = await loop.run_in_executor(None, lambda: run("redis", "127.0.0.1:%d" % k.redis.port, PREFIX, "carol", "from PHP over Redis"))
    check(out.returncode == 0, "php redis: %s %s" % (out.stdout, out.stderr))
    await expect(k.clients, {carol: ["from PHP over Redis"]}, "PHP Redis push to carol")
    out = await loop.run_in_executor(None, lambda: run("redis", "127.0.0.1:%d" % k.redis.port, PREFIX, "all", "PHP to all"))
    check(out.returncode == 0, "php redis all: %s %s" % (out.stdout, out.stderr))
    await expect(k.clients, {c: ["PHP to all"] for c in k.clients}, "PHP Redis broadcast")


async def scenario_online(k):
    n2 = k.nodes[2]
    loop = asyncio.get_running_loop()

    async def online(node, uid):
        status, j, _ = await loop.run_in_executor(None, lambda: api(node, "GET", "/online/" + uid))
        check(status == 200, "online status %s" % status)
        return j["online"]

    # erin: one session on node 0; asked from node 2.
    erin = await Client("erin", k.nodes[0]).open()
    deadline = time.monotonic() + 5   # node 0's SUBSCRIBE and node 2's NUMSUB travel separately
    while not await online(n2, "erin"):
        check(time.monotonic() < deadline, "erin not online as seen from node 2 5 s after logging in on node 0")
        await asyncio.sleep(0.05)
    await erin.close()
    deadline = time.monotonic() + 5
    while await online(n2, "erin"):
        check(time.monotonic() < deadline, "erin still online 5 s after her only session closed")
        await asyncio.sleep(0.05)
    # alice: closing one of three devices keeps her online everywhere.
    check(await online(n2, "alice"), "alice online")


def group_channel(name):
    return PREFIX + ":group:" + name


async def until_numsub(k, want, what):
    """Waits (bounded) until PUBSUB NUMSUB of the channels in `want` equals `want`."""
    channels = sorted(want)
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        counts = k.redis.numsub(channels)
        if counts == want:
            return
        check(time.monotonic() < deadline, "%s: NUMSUB %r, expected %r" % (what, counts, want))
        await asyncio.sleep(0.05)


async def scenario_groups(k):
    c = k.clients
    alice = {a.node.index: a for a in k.by["alice"]}
    bob1, bob2, carol, dave = k.by["bob"][0], k.by["bob"][1], k.by["carol"][0], k.by["dave"][0]
    reset(c)
    # g1: alice@0, alice@1, bob1@1, carol@2 -> held by all three nodes (node 1 once for two members).
    for m in (alice[0], alice[1], bob1, carol):
        await m.command("join:g1", "joined g1")
    await carol.command("join:g2", "joined g2")      # g2: carol@2 only
    await carol.command("join:g1", "already in g1")   # already a member
    await dave.command("leave:g1", "error: not in group 'g1'")
    await dave.command("group:g1", "error: expected group:<name>:<message>")
    await dave.command("join:", "error: cannot join '' (a group name is 1 to 128 bytes, no control characters)")
    await until_numsub(k, {group_channel("g1"): 3, group_channel("g2"): 1, group_channel("g3"): 0}, "group channels held")
    g1 = [alice[0], alice[1], bob1, carol]

    await dave.ws.send("group:g1:to g1 from a non-member")         # node 0, not a member: not to itself
    await expect(c, {m: ["to g1 from a non-member"] for m in g1}, "group message from a non-member on node 0")
    await carol.ws.send("group:g1:to g1: from a member, with: colons")  # node 2, a member: to itself too
    await expect(c, {m: ["to g1: from a member, with: colons"] for m in g1}, "group message from a member on node 2")
    await bob2.ws.send(b"group:g1:\xff\x00binary")  # node 1, not a member, but node 1 has two
    await expect(c, {m: [b"\xff\x00binary"] for m in g1}, "binary group message from node 1")
    await dave.ws.send("group:g2:only carol")
    await expect(c, {carol: ["only carol"]}, "group on one node, sent from another")
    await dave.ws.send("group:nobody-here:lost")
    await expect(c, {}, "a group nobody is in")
    for i in range(10):
        await alice[2].ws.send("group:g1:seq %d" % i)   # alice@2 is not in g1
    await expect(c, {m: ["seq %d" % i for i in range(10)] for m in g1}, "a stream to a group, in order")

    n = k.redis.cli("PUBLISH", group_channel("g1"), "plain to g1 from redis-cli")
    check(n == "3", "PUBLISH to g1 reached %s subscribers, expected 3 (one per node)" % n)
    await expect(c, {m: ["plain to g1 from redis-cli"] for m in g1}, "redis-cli PUBLISH to a group")
    loop = asyncio.get_running_loop()
    status, j, _ = await loop.run_in_executor(None, lambda: api(k.nodes[0], "POST", "/group/g1", b"g1 over HTTP"))
    check(status == 200 and j == {"delivered": 1, "published": True, "nodes": 2}, "POST /group/g1: %s %r" % (status, j))
    await expect(c, {m: ["g1 over HTTP"] for m in g1}, "HTTP send to a group")
    php = shutil.which("php")
    if php and PHP_SCRIPT:  # push_from_php.php's group:<name> target, over HTTP and into Redis
        env = dict(os.environ, HERALD_API_KEY=API_KEY)
        for args, text in ((["http", "http://127.0.0.1:%d" % k.nodes[2].http_port], "g1 from PHP over HTTP"),
                           (["redis", "127.0.0.1:%d" % k.redis.port, PREFIX], "g1 from PHP over Redis")):
            out = await loop.run_in_executor(None, lambda: subprocess.run(
                [php, PHP_SCRIPT] + args + ["group:g1", text], capture_output=True, text=True, timeout=20, env=env))
            check(out.returncode == 0, "php %s group:g1: %s %s" % (args[0], out.stdout, out.stderr))
            await expect(c, {m: [text] for m in g1}, "PHP %s send to a group" % args[0])

    # Leaving: node 1 keeps g1's channel while bob1 is still in, drops it after him.
    await alice[1].command("leave:g1", "left g1")
    await until_numsub(k, {group_channel("g1"): 3}, "g1 after alice@1 left (bob1 still on node 1)")
    await bob1.command("leave:g1", "left g1")
    await until_numsub(k, {group_channel("g1"): 2}, "g1 after node 1's last member left")
    g1 = [alice[0], carol]
    await bob2.ws.send("group:g1:after node 1 left")
    await expect(c, {m: ["after node 1 left"] for m in g1}, "group message after node 1's members left")

    # Disconnecting: gina (node 1's only member of g3) closes; hank (node 0) stays.
    gina = await Client("gina", k.nodes[1]).open()
    hank = await Client("hank", k.nodes[0]).open()
    await gina.command("join:g3", "joined g3")
    await hank.command("join:g3", "joined g3")
    await until_numsub(k, {group_channel("g3"): 2}, "g3 on nodes 0 and 1")
    await bob2.ws.send("group:g3:to g3")
    await expect(c + [gina, hank], {gina: ["to g3"], hank: ["to g3"]}, "g3 across nodes")
    await gina.close()
    await until_numsub(k, {group_channel("g3"): 1}, "g3 after node 1's only member disconnected")
    await bob2.ws.send("group:g3:after gina left")
    await expect(c + [hank], {hank: ["after gina left"]}, "group message after a member disconnected")
    await hank.close()
    await until_numsub(k, {group_channel("g3"): 0}, "g3 after its last member disconnected")

    # A uid named like a reserved word cannot log in.
    ws = await asyncio.wait_for(websockets.connect("ws://127.0.0.1:%d" % k.nodes[2].port), 5)
    await ws.send("group")
    try:
        await asyncio.wait_for(ws.recv(), 5)
        check(False, "uid 'group' was accepted")
    except websockets.ConnectionClosed as e:
        check(e.code == 1008 and e.reason == "uid 'group' is reserved", "uid 'group': closed %s %r" % (e.code, e.reason))

    await alice[0].command("leave:g1", "left g1")
    await carol.command("leave:g1", "left g1")
    await until_numsub(k, {group_channel("g1"): 0, group_channel("g2"): 1}, "g1 after everyone left")
    k.groups = {"g2": {2}}   # carol stays in g2: the outage must restore that subscription too


async def presence(node):
    loop = asyncio.get_running_loop()
    status, j, _ = await loop.run_in_executor(None, lambda: api(node, "GET", "/presence"))
    check(status == 200, "GET /presence: %s" % status)
    return j


async def until_presence(nodes, want, what):
    """Waits (bounded) until every node's GET /presence answers `want` (reports lag one interval)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    for n in nodes:
        while True:
            j = await presence(n)
            if j == want:
                break
            check(time.monotonic() < deadline, "%s: node %d answered %r, expected %r" % (what, n.index, j, want))
            await asyncio.sleep(0.05)


async def scenario_presence(k):
    uids = {c.uid for c in k.clients}
    want = {"uids": len(uids), "sessions": len(k.clients), "nodes": 3, "scope": "cluster"}
    check(want["uids"] == 34 and want["sessions"] == 37, "the plan changed: %r" % want)
    await until_presence(k.nodes, want, "presence of the initial sessions")
    listed = k.redis.cli("PUBSUB", "CHANNELS", PREFIX + ":uid:*").split("\n")
    check(sorted(listed) == sorted(PREFIX + ":uid:" + u for u in uids), "PUBSUB CHANNELS: %r" % listed[:5])

    # Two devices of a new uid on node 1, one of an existing uid on node 2.
    extra = [await Client("pia", k.nodes[1]).open(), await Client("pia", k.nodes[1]).open(),
             await Client("carol", k.nodes[2]).open()]
    await until_presence(k.nodes, dict(want, uids=35, sessions=40), "presence with pia twice and a second carol")
    for e in extra:
        await e.close()
    await until_presence(k.nodes, want, "presence after they left")

    # A fourth node with one session, killed (SIGKILL): its subscriptions go with its
    # connection, its session count with its report's expiry (3 presence intervals).
    node3 = Node(3, k.redis.port)
    ghost = await Client("ghost", node3).open()
    await until_presence(k.nodes + [node3], dict(want, uids=35, sessions=38, nodes=4), "presence with a fourth node")
    node3.proc.send_signal(signal.SIGKILL)
    node3.proc.wait(10)
    await asyncio.wait_for(ghost.task, 10)
    await until_presence(k.nodes, want, "presence after the fourth node died")


async def scenario_outage(k):
    """Redis killed during traffic and restarted."""
    n0, n1 = k.nodes[0], k.nodes[1]
    local = await Client("local0", n0).open()      # on node 0, fed from node 0
    remote = await Client("remote1", n1).open()    # on node 1, fed from node 0
    sender = await Client("sender0", n0).open()
    everyone = k.clients + [local, remote, sender]
    reset(everyone)
    await asyncio.sleep(0.3)  # remote1's SUBSCRIBE is in Redis

    sent = 0
    stop = False
    marks = {}

    async def traffic():
        nonlocal sent
        while not stop:
            await sender.ws.send("local0:%d" % sent)
            await sender.ws.send("remote1:%d" % sent)
            sent += 1
            await asyncio.sleep(0.02)
    t = asyncio.create_task(traffic())
    await wait_until(lambda: len(remote.got) >= 20, STEP_TIMEOUT, "cross-node traffic before the outage")
    marks["kill"] = sent
    received_before_kill = len(remote.got)
    k.redis.kill()
    # Presence while Redis is down: the node's own view, marked local.
    on0 = [c for c in everyone if c.node is n0]
    j = await presence(n0)
    check(j == {"uids": len({c.uid for c in on0}), "sessions": len(on0), "nodes": 1, "scope": "local"},
          "presence without Redis: %r" % j)
    # Local delivery goes on while Redis is down: everything sent meanwhile arrives locally.
    local_before = len(local.got)
    await asyncio.sleep(3.0)
    sent_during = sent - marks["kill"]
    check(sent_during > 0, "no traffic was sent during the outage")
    await wait_until(lambda: len(local.got) - local_before >= sent_during, STEP_TIMEOUT,
                     "local delivery of the %d messages sent during the outage" % sent_during)
    for n in k.nodes:
        check(n.alive(), "node %d died while Redis was down:\n%s" % (n.index, n.log()[-2000:]))
    marks["restart"] = sent
    k.redis.start()
    restart_time = time.monotonic()

    def resumed():
        return any(int(m) >= marks["restart"] for m in remote.got)
    await wait_until(resumed, RECOVERY_LIMIT, "cross-node delivery after Redis came back")
    recovery = time.monotonic() - restart_time
    first_after = min(int(m) for m in remote.got if int(m) >= marks["restart"])
    await asyncio.sleep(1.0)  # traffic goes on after the recovery: none of it may be lost
    stop = True
    await t
    print("  outage: %d messages sent before the kill, %d during 3 s of outage; cross-node delivery resumed %.2f s "
          "after redis-server restarted" % (marks["kill"], marks["restart"] - marks["kill"], recovery))
    await wait_until(lambda: len(local.got) == sent and int(remote.got[-1]) == sent - 1, STEP_TIMEOUT,
                     "the last messages after recovery")
    await asyncio.sleep(QUIET)
    # Local: every message, once, in order. Remote: in order, no duplicates; the outage's are lost (at most once).
    check(local.got == [str(i) for i in range(sent)], "local delivery lost or repeated messages across the outage")
    r = [int(m) for m in remote.got]
    check(r == sorted(set(r)), "cross-node delivery repeated or reordered messages: %r" % r[:50])
    check(r[:received_before_kill] == list(range(received_before_kill)), "cross-node messages lost before the outage")
    check(r[r.index(first_after):] == list(range(first_after, sent)), "cross-node messages lost after the recovery")
    lost = sent - len(r)
    print("  outage: remote1 got %d of %d cross-node messages (%d lost while Redis was down: at most once)" % (len(r), sent, lost))

    # Every subscription is back: each uid's channel has one subscriber per node holding it.
    holders = {}
    for c in everyone:
        holders.setdefault(c.uid, set()).add(c.node.index)
    want = {PREFIX + ":all": 3}
    want.update({PREFIX + ":uid:" + u: len(n) for u, n in holders.items()})
    want.update({group_channel(g): len(n) for g, n in getattr(k, "groups", {}).items()})
    await until_numsub(k, want, "subscriptions restored after the outage")
    reset(everyone)
    # And the cluster works as before.
    await k.by["u2"][0].ws.send("all:after the outage")
    await expect(everyone, {c: ["after the outage"] for c in everyone}, "broadcast after the outage")
    await k.by["bob"][0].ws.send("alice:alice after the outage")
    await expect(everyone, {a: ["alice after the outage"] for a in k.by["alice"]}, "unicast after the outage")
    if getattr(k, "groups", None):
        await k.by["dave"][0].ws.send("group:g2:g2 after the outage")
        await expect(everyone, {k.by["carol"][0]: ["g2 after the outage"]}, "group message after the outage")
    for n in k.nodes:
        check(n.alive(), "node %d died:\n%s" % (n.index, n.log()[-2000:]))
    k.outage_clients = [local, remote, sender]


# ---------------------------------------------------------------- main

async def main():
    global CHANGED
    CHANGED = asyncio.Event()
    k = Cluster()
    k.redis = Redis()
    k.redis.start()
    k.nodes = [Node(i, k.redis.port) for i in range(3)]
    # alice: one device per node; bob: two on node 1; carol: node 2; dave: node 0; u0..u29 round robin.
    plan = [("alice", 0), ("alice", 1), ("alice", 2), ("bob", 1), ("bob", 1), ("carol", 2), ("dave", 0)]
    plan += [("u%d" % i, i % 3) for i in range(30)]
    k.clients = [await Client(uid, k.nodes[n]).open() for uid, n in plan]
    k.by = {}
    for c in k.clients:
        k.by.setdefault(c.uid, []).append(c)
    await asyncio.sleep(0.3)  # every node's SUBSCRIBEs have reached Redis
    counts = k.redis.numsub([PREFIX + ":uid:alice", PREFIX + ":uid:bob", PREFIX + ":all"])
    check(counts == {PREFIX + ":uid:alice": 3, PREFIX + ":uid:bob": 1, PREFIX + ":all": 3}, "subscriptions: %r" % counts)

    passed = failed = 0
    for name, fn in [("unicast across nodes", scenario_unicast), ("broadcast across nodes", scenario_broadcast),
                     ("PUBLISH from redis-cli", scenario_redis_cli), ("HTTP API", scenario_http_api),
                     ("push from PHP", scenario_php), ("online cluster-wide", scenario_online),
                     ("groups across nodes", scenario_groups), ("presence cluster-wide", scenario_presence),
                     ("Redis outage during traffic", scenario_outage)]:
        started = time.monotonic()
        try:
            await asyncio.wait_for(fn(k), 90)
            passed += 1
            print("PASS %s (%.2f s)" % (name, time.monotonic() - started), flush=True)
        except Exception as e:
            failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
            if not isinstance(e, TestFailure):
                traceback.print_exc()
            break

    # Shutdown: SIGTERM, exit 0, and the counters show what could not be published.
    for c in k.clients + getattr(k, "outage_clients", []):
        try:
            await c.close()
        except Exception:
            pass
    for n in k.nodes:
        n.proc.send_signal(signal.SIGTERM)
    ok = True
    for n in k.nodes:
        try:
            rc = n.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        stopped = [l for l in n.log().splitlines() if l.startswith("cluster_node stopped")]
        print("  node %d exit %s: %s" % (n.index, rc, stopped[0] if stopped else "(no stop line)"))
        if rc != 0 or not stopped:
            ok = False
            print(n.log()[-3000:])
    if failed == 0:
        if ok:
            stats = dict(kv.split("=") for kv in
                         [l for l in k.nodes[0].log().splitlines() if l.startswith("cluster_node stopped")][0].split()[3:])
            if int(stats["publish_dropped"]) + int(stats["publish_unconfirmed"]) == 0:
                ok = False
                print("node 0 counted no publication lost during the outage")
        if ok:
            passed += 1
            print("PASS clean shutdown, loss counted")
        else:
            failed += 1
            print("FAIL clean shutdown, loss counted")
        # One Redis restart: each node's publisher and subscriber links reconnected once each.
        reconnects = []
        for n in k.nodes:
            line = [l for l in n.log().splitlines() if l.startswith("cluster_node stopped")]
            fields = dict(kv.split("=") for kv in line[0].split()[3:]) if line else {}
            reconnects.append(int(fields.get("redis_reconnects", -1)))
        if reconnects == [2, 2, 2]:
            passed += 1
            print("PASS redis_reconnects counted: %r" % reconnects)
        else:
            failed += 1
            print("FAIL redis_reconnects: %r, expected [2, 2, 2]" % reconnects)
    return passed, failed


def cleanup():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait(10)


if __name__ == "__main__":
    if not NODE_BINARY:
        print("usage: cluster_test.py PATH/TO/cluster_node [PATH/TO/push_from_php.php]")
        sys.exit(2)
    for tool in ("redis-server", "redis-cli"):
        if not shutil.which(tool):
            print("%s not found: apt-get install redis-server redis-tools" % tool)
            print("0 passed, 1 failed")
            sys.exit(1)
    try:
        passed, failed = asyncio.run(main())
    except Exception as e:
        traceback.print_exc()
        passed, failed = 0, 1
    finally:
        cleanup()
    print("logs in %s" % WORKDIR)
    print("%d passed, %d failed" % (passed, failed))
    if failed == 0:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    sys.exit(1 if failed else 0)
