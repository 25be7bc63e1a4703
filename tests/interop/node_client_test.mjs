// Interop test: herald's uid_push_server against Node's `ws` package.
//
// Usage: node node_client_test.mjs PATH/TO/uid_push_server [scenario...]
// (`ws` is resolved from tests/interop/node_modules: `cd tests/interop && npm ci`; without it
// the test is skipped, exit 77.)
//
// Every scenario starts its own server on a free port and stops it afterwards; only the
// processes spawned here (kept by handle) are ever killed. Every message a client receives
// is checked against what that client was expected to get: exactly once, intact. "Nothing
// else arrived" is proven with a sentinel broadcast that must be the very next message.
// Prints "N passed, M failed" and exits non-zero on any failure.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { importOrSkip } from '../import_or_skip.mjs';

const { default: WebSocket } = await importOrSkip(import('ws'), "Node's ws package", '(cd tests/interop && npm ci)');

const STEP_TIMEOUT = 5000;      // any single wait (message, close, connect)
const SCENARIO_TIMEOUT = 25000; // a whole scenario
const STARTUP_TIMEOUT = 10000;  // until the server prints its "listening" line

let SERVER_BINARY = null;
const STARTED = []; // every ChildProcess this script spawned
// Extra arguments for every server this script starts, e.g. HERALD_SERVER_ARGS="--threads 2".
const EXTRA_SERVER_ARGS = (process.env.HERALD_SERVER_ARGS || '').split(/\s+/).filter(Boolean);

class TestFailure extends Error {}

function check(cond, what) {
  if (!cond) throw new TestFailure(what);
}

function short(m, limit = 80) {
  const r = JSON.stringify(m);
  return r.length <= limit ? r : `${r.slice(0, limit)}...(${m.length} chars)`;
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TestFailure(`timed out after ${ms / 1000}s: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ server processes

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function running(proc) {
  return proc.exitCode === null && proc.signalCode === null;
}

function exited(proc) {
  return running(proc) ? new Promise((r) => proc.once('exit', () => r())) : Promise.resolve();
}

async function stopProcess(proc) {
  if (running(proc)) {
    proc.kill('SIGKILL');
    await withTimeout(exited(proc), 5000, 'server exit after SIGKILL').catch(() => {});
  }
}

class Server {
  constructor(...extraArgs) {
    this.extraArgs = extraArgs;
    this.proc = null;
    this.port = null;
  }

  async start() {
    let lastError = null;
    for (let attempt = 0; attempt < 3; ++attempt) { // a probed port may be taken meanwhile
      const port = await freePort();
      const proc = spawn(SERVER_BINARY, ['--address', '127.0.0.1', '--port', String(port), ...this.extraArgs, ...EXTRA_SERVER_ARGS],
                         { stdio: ['ignore', 'pipe', 'inherit'] });
      STARTED.push(proc);
      const expected = `uid_push_server listening on 127.0.0.1:${port}`;
      const line = await new Promise((resolve) => {
        let buf = '';
        const timer = setTimeout(() => finish(null), STARTUP_TIMEOUT);
        const onData = (d) => {
          buf += d.toString('utf8');
          const nl = buf.indexOf('\n');
          if (nl >= 0) finish(buf.slice(0, nl));
        };
        const onExit = () => finish(buf || null);
        function finish(v) {
          clearTimeout(timer);
          proc.stdout.off('data', onData);
          proc.off('exit', onExit);
          resolve(v);
        }
        proc.stdout.on('data', onData);
        proc.on('exit', onExit);
        proc.on('error', () => finish(null));
      });
      proc.stdout.resume(); // keep draining
      if (line !== null && line.trim().startsWith(expected)) {
        this.proc = proc;
        this.port = port;
        return this;
      }
      lastError = `server did not report listening (got ${JSON.stringify(line)}, exit=${proc.exitCode})`;
      await stopProcess(proc);
    }
    throw new TestFailure(lastError);
  }

  get uri() {
    return `ws://127.0.0.1:${this.port}/`;
  }

  async stop() {
    if (this.proc) await stopProcess(this.proc);
  }
}

// ------------------------------------------------------------------ ws clients

class Client {
  constructor(name, ws) {
    this.name = name;
    this.ws = ws;
    this.events = [];   // queued {kind:'message', data, binary} | {kind:'close', code, reason}
    this.waiters = [];
    this.received = [];
    ws.on('message', (data, isBinary) => this.push({ kind: 'message', data, binary: isBinary }));
    ws.on('close', (code, reason) => this.push({ kind: 'close', code, reason: reason.toString('utf8') }));
    ws.on('error', (err) => this.push({ kind: 'error', err }));
  }

  push(ev) {
    const w = this.waiters.shift();
    if (w) w(ev);
    else this.events.push(ev);
  }

  next(what) {
    if (this.events.length) return Promise.resolve(this.events.shift());
    let resolveFn;
    const p = new Promise((r) => { resolveFn = r; this.waiters.push(r); });
    return withTimeout(p, STEP_TIMEOUT, `${this.name} ${what}`).catch((e) => {
      const i = this.waiters.indexOf(resolveFn);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }

  // `perMessageDeflate`: offer permessage-deflate (ws's own option; off unless asked for).
  static async connect(server, name, perMessageDeflate = false) {
    const ws = new WebSocket(server.uri, { perMessageDeflate, maxPayload: 4 * 1024 * 1024 });
    const client = new Client(name, ws);
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), STEP_TIMEOUT, `${name} connecting`);
    return client;
  }

  async send(m) {
    await withTimeout(new Promise((resolve, reject) => {
      this.ws.send(m, (err) => (err ? reject(err) : resolve()));
    }), STEP_TIMEOUT, `${this.name} sending ${short(m)}`);
  }

  async recv() {
    const ev = await this.next('waiting for a message');
    if (ev.kind === 'close') {
      throw new TestFailure(`${this.name}: connection closed while a message was expected (close ${ev.code} ${JSON.stringify(ev.reason)})`);
    }
    if (ev.kind === 'error') throw new TestFailure(`${this.name}: error while a message was expected: ${ev.err}`);
    check(!ev.binary, `${this.name}: received a binary message where text was expected`);
    const m = ev.data.toString('utf8');
    this.received.push(m);
    return m;
  }

  // The next messages are exactly these, in this order.
  async expect(...messages) {
    for (const want of messages) {
      const got = await this.recv();
      check(got === want, `${this.name}: expected ${short(want)}, received ${short(got)}`);
    }
  }

  // The next messages are exactly this multiset (different senders race each other).
  async expectUnordered(messages) {
    const want = new Map();
    for (const m of messages) want.set(m, (want.get(m) || 0) + 1);
    const got = new Map();
    for (let i = 0; i < messages.length; ++i) {
      const m = await this.recv();
      got.set(m, (got.get(m) || 0) + 1);
      check(got.get(m) <= (want.get(m) || 0),
            `${this.name}: unexpected or duplicated message ${short(m)} (expected ${short(messages, 300)})`);
    }
  }

  // The server closes with `code` (and `reason`) and sends nothing before that.
  async expectClose(code, reason) {
    let ev;
    do {
      ev = await this.next(`waiting for close ${code}`);
    } while (ev.kind === 'error'); // ws reports e.g. a 1006 as error + close
    if (ev.kind === 'message') {
      throw new TestFailure(`${this.name}: expected close ${code}, received message ${short(ev.data.toString('utf8'))}`);
    }
    check(ev.code === code, `${this.name}: expected close code ${code}, got ${ev.code} ${JSON.stringify(ev.reason)}`);
    if (reason !== undefined) {
      check(ev.reason === reason, `${this.name}: expected close reason ${JSON.stringify(reason)}, got ${JSON.stringify(ev.reason)}`);
    }
  }

  async close() {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const done = new Promise((r) => this.ws.once('close', r));
    this.ws.close(1000);
    await withTimeout(done, STEP_TIMEOUT, `${this.name} closing`);
  }

  abort() {
    try { this.ws.terminate(); } catch { /* already gone */ }
  }
}

async function login(server, uid, name = uid, perMessageDeflate = false) {
  const c = await Client.connect(server, name, perMessageDeflate);
  await c.send(uid);
  await c.expect(`login successful, your uid is ${uid}`);
  return c;
}

let sentinelCounter = 0;

// Broadcasts a sentinel; for every client it must be the very next message.
async function expectQuiet(clients, via = clients[0]) {
  const sentinel = `sentinel #${++sentinelCounter} ${Math.random().toString(16).slice(2)}`;
  await via.send(`all:${sentinel}`);
  for (const c of clients) await c.expect(sentinel);
}

function randomPrintable(n) {
  let s = '';
  for (let i = 0; i < n; ++i) s += String.fromCharCode(32 + Math.floor(Math.random() * 95)); // ' '..'~'
  return s;
}

// ------------------------------------------------------------------ scenarios

const SCENARIOS = [];
function scenario(name, serverArgs, fn) {
  SCENARIOS.push({ name, serverArgs, fn });
}

scenario('login_reply', [], async (srv, clients) => {
  for (const uid of ['alice', 'Zoë 🚀', 'x', 'u'.repeat(128)]) clients.push(await login(srv, uid));
  await expectQuiet(clients);
});

scenario('unicast_to_two_device_uid', [], async (srv, clients) => {
  const a1 = await login(srv, 'alice', 'alice#1');
  const a2 = await login(srv, 'alice', 'alice#2');
  const bob = await login(srv, 'bob');
  const carol = await login(srv, 'carol');
  clients.push(a1, a2, bob, carol);
  const byUid = { alice: [a1, a2], bob: [bob], carol: [carol] };
  const expected = new Map(clients.map((c) => [c, []]));
  for (const sender of clients) {
    for (const [uid, sessions] of Object.entries(byUid)) {
      const body = `hello ${uid} from ${sender.name}: with:colons`;
      await sender.send(`${uid}:${body}`);
      for (const s of sessions) expected.get(s).push(body);
    }
    await sender.send(`nobody:lost message from ${sender.name}`);
  }
  for (const c of clients) await c.expectUnordered(expected.get(c));
  await expectQuiet(clients, bob);
  await bob.send('alice:only alice');
  await a1.expect('only alice');
  await a2.expect('only alice');
  await expectQuiet(clients, carol); // bob and carol got nothing in between
});

scenario('broadcast_exactly_once', [], async (srv, clients) => {
  const a1 = await login(srv, 'alice', 'alice#1');
  const a2 = await login(srv, 'alice', 'alice#2');
  const bob = await login(srv, 'bob');
  const lurker = await Client.connect(srv, 'not-logged-in');
  clients.push(a1, a2, bob);
  const bodies = [];
  for (const sender of clients) {
    const body = `broadcast from ${sender.name}`;
    bodies.push(body);
    await sender.send(`all:${body}`);
  }
  for (const c of clients) await c.expectUnordered(bodies);
  await expectQuiet(clients);
  // The connection that never logged in got none of it: its first message is the login reply.
  await lurker.send('dave');
  await lurker.expect('login successful, your uid is dave');
  clients.push(lurker);
  await expectQuiet(clients, lurker);
});

scenario('error_reply_without_colon', [], async (srv, clients) => {
  const alice = await login(srv, 'alice');
  clients.push(alice);
  await alice.send('no colon');
  await alice.expect('error: expected <uid>:<message>');
  await expectQuiet(clients);
});

scenario('large_message_intact', [], async (srv, clients) => {
  const a1 = await login(srv, 'alice', 'alice#1');
  const a2 = await login(srv, 'alice', 'alice#2');
  const bob = await login(srv, 'bob');
  clients.push(a1, a2, bob);
  const body = randomPrintable(100 * 1024);
  await bob.send(`alice:${body}`);
  await a1.expect(body);
  await a2.expect(body);
  const body2 = randomPrintable(100 * 1024);
  await a1.send(`all:${body2}`);
  for (const c of clients) await c.expect(body2);
  await expectQuiet(clients);
});

scenario('close_1009_too_big', ['--max-message', '65536'], async (srv, clients) => {
  const alice = await login(srv, 'alice');
  const bob = await login(srv, 'bob');
  clients.push(bob);
  await alice.send(`bob:${'x'.repeat(70000 - 4)}`);
  await alice.expectClose(1009);
  await expectQuiet(clients); // bob got nothing of it and the server still serves
});

scenario('close_1008_bad_uid', [], async (srv, clients) => {
  const bob = await login(srv, 'bob');
  clients.push(bob);
  const cases = [
    ['all', "uid 'all' is reserved"],
    ['a:b', "uid must not contain ':'"],
    ['', 'uid must be 1 to 128 bytes'],
    ['u'.repeat(129), 'uid must be 1 to 128 bytes'],
  ];
  for (const [uid, reason] of cases) {
    const c = await Client.connect(srv, `uid ${short(uid, 20)}`);
    await c.send(uid);
    await c.expectClose(1008, reason);
  }
  await expectQuiet(clients);
});

scenario('sigterm_1001_and_exit_0', [], async (srv, clients) => {
  const a1 = await login(srv, 'alice', 'alice#1');
  const a2 = await login(srv, 'alice', 'alice#2');
  const bob = await login(srv, 'bob');
  clients.push(a1, a2, bob);
  await expectQuiet(clients);
  const exit = new Promise((r) => {
    if (!running(srv.proc)) r();
    else srv.proc.once('exit', r);
  });
  srv.proc.kill('SIGTERM');
  for (const c of clients) await c.expectClose(1001, 'server shutting down');
  await withTimeout(exit, 15000, 'server exit after SIGTERM');
  check(srv.proc.signalCode === null, `server killed by ${srv.proc.signalCode} after SIGTERM`);
  check(srv.proc.exitCode === 0, `server exit code after SIGTERM: ${srv.proc.exitCode} (expected 0)`);
});

// ------------------------------------------------------------------ permessage-deflate (RFC 7692)

// A JSON document of exactly `size` bytes that compresses like real ones; `seed` makes it.
function jsonDoc(seq, seed, size = 4096) {
  let x = seed >>> 0;
  const rnd = (n) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n; };
  const items = [];
  const headOf = () => `{"seq":${seq},"items":[${items.join(',')}]`;
  for (;;) {
    items.push(JSON.stringify({ id: rnd(1e6), user: `u${rnd(1000)}`, price: rnd(100000) / 100, tags: [['new', 'sale', 'hot'][rnd(3)], 'a'] }));
    if (headOf().length + 16 > size) break;
  }
  items.pop(); // the one that did not fit
  const doc = `${headOf()},"pad":"`;
  return `${doc}${'x'.repeat(size - doc.length - 2)}"}`;
}

scenario('deflate_broadcast_exactly_once', ['--deflate'], async (srv, clients) => {
  const zipped = [];
  for (let i = 0; i < 3; ++i) zipped.push(await login(srv, `z${i}`, `z${i}`, true));
  const plain = [await login(srv, 'p0'), await login(srv, 'p1')];
  for (const c of zipped) check(c.ws.extensions.startsWith('permessage-deflate'), `${c.name}: extensions ${JSON.stringify(c.ws.extensions)}`);
  for (const c of plain) check(c.ws.extensions === '', `${c.name}: extensions ${JSON.stringify(c.ws.extensions)}`);
  clients.push(...zipped, ...plain);
  const docs = [];
  for (let i = 0; i < 20; ++i) docs.push(jsonDoc(i, 1000 + i));
  // Ten sent compressed by a deflate client, ten plain; one sender at a time keeps the order.
  for (const [sender, batch] of [[zipped[0], docs.slice(0, 10)], [plain[0], docs.slice(10)]]) {
    for (const d of batch) await sender.send(`all:${d}`);
    for (const c of clients) await c.expect(...batch);
  }
  const big = jsonDoc(99, 7);
  await plain[1].send(`z2:${big}`);
  await zipped[2].expect(big);
  await zipped[1].send(`p1:${big}`);
  await plain[1].expect(big);
  await zipped[1].send('z0:short, below the threshold');
  await zipped[0].expect('short, below the threshold');
  await expectQuiet(clients);
});

scenario('deflate_declined_without_the_option', [], async (srv, clients) => {
  const c = await login(srv, 'alice', 'alice', true);
  clients.push(c);
  check(c.ws.extensions === '', `extensions agreed without --deflate: ${JSON.stringify(c.ws.extensions)}`);
  const big = jsonDoc(1, 1);
  await c.send(`alice:${big}`);
  await c.expect(big);
});

scenario('deflate_zip_bomb_1009', ['--deflate', '--max-message', '65536'], async (srv, clients) => {
  const bystander = await login(srv, 'bystander', 'bystander', true);
  clients.push(bystander);
  const bomb = await login(srv, 'bomb', 'bomb', true);
  await bomb.send(`bomb:${'0'.repeat(4 << 20)}`); // a few KiB compressed, 64 times the limit inflated
  await bomb.expectClose(1009);
  await expectQuiet(clients);
});

// ------------------------------------------------------------------ runner

async function runScenario({ name, serverArgs, fn }) {
  const srv = await new Server(...serverArgs).start();
  const clients = [];
  try {
    const run = fn(srv, clients);
    run.catch(() => {}); // still settles after a scenario timeout: not an unhandled rejection
    await withTimeout(run, SCENARIO_TIMEOUT, 'scenario');
    if (!name.startsWith('sigterm')) {
      check(running(srv.proc), `server exited unexpectedly (code ${srv.proc.exitCode}, signal ${srv.proc.signalCode})`);
    }
  } finally {
    for (const c of clients) c.abort();
    await srv.stop();
  }
}

// A server built without zlib refuses --deflate (exit 2), even with --help.
function serverHasDeflate() {
  return spawnSync(SERVER_BINARY, ['--deflate', '--help'], { stdio: 'ignore' }).status === 0;
}

async function main() {
  let passed = 0;
  let failed = 0;
  const only = new Set(process.argv.slice(3));
  const hasDeflate = serverHasDeflate();
  for (const s of SCENARIOS) {
    if (only.size && !only.has(s.name)) continue;
    if (s.serverArgs.includes('--deflate') && !hasDeflate) {
      console.log(`SKIP ${s.name.padEnd(45)} the server was built without zlib (no --deflate)`);
      continue;
    }
    const t0 = Date.now();
    try {
      await runScenario(s);
      ++passed;
      console.log(`PASS ${s.name.padEnd(45)} ${((Date.now() - t0) / 1000).toFixed(2)}s`);
    } catch (e) {
      ++failed;
      if (e instanceof TestFailure) console.log(`FAIL ${s.name.padEnd(45)} ${e.message}`);
      else console.log(`FAIL ${s.name.padEnd(45)} exception: ${e && e.stack ? e.stack : e}`);
    }
  }
  return { passed, failed };
}

if (process.argv.length < 3) {
  console.error('usage: node node_client_test.mjs PATH/TO/uid_push_server [scenario...]');
  process.exit(2);
}
SERVER_BINARY = path.resolve(process.argv[2]);
let stray = 0;
process.on('unhandledRejection', (e) => {
  ++stray;
  console.log(`unhandled rejection: ${e && e.stack ? e.stack : e}`);
});
let result = { passed: 0, failed: 1 };
try {
  result = await main();
} catch (e) {
  console.log(`exception: ${e && e.stack ? e.stack : e}`);
  result.failed = Math.max(result.failed, 1);
} finally {
  for (const p of STARTED) await stopProcess(p);
}
result.failed += stray;
console.log(`${result.passed} passed, ${result.failed} failed`);
process.exit(result.failed === 0 ? 0 : 1);
