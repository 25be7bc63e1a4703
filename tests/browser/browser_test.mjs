// End-to-end test of the web page (examples/web) in a real browser: Debian's chromium,
// headless, driven by playwright-core (npm ci in tests/browser; no browser download).
//
// Usage: node browser_test.mjs PATH/TO/uid_push_server [SCREENSHOT.png]
//   (the screenshot path may also come from HERALD_BROWSER_SCREENSHOT; default
//    ./browser-screenshot.png; HERALD_CHROMIUM overrides /usr/bin/chromium;
//    HERALD_SERVER_ARGS adds arguments to the server, e.g. "--threads 2"; with --deflate
//    the pages must have negotiated permessage-deflate, and a 4 KiB JSON broadcast is checked)
//
// Starts uid_push_server --web examples/web on a free 127.0.0.1 port, checks the static file
// answers over plain HTTP (types, 404, 405, no path traversal), then opens two pages: alice
// and bob log in; alice sends to bob and only bob sees it; bob broadcasts and both see it
// exactly once; a login as "all" shows the 1008 refusal. Saves a screenshot of both pages.
// Then --history (issue 16): a second server with --history 50 and the HTTP API, reached
// through a TCP proxy that the test cuts (RST) and holds down: carol's page reconnects with
// backoff and shows "recovered" and exactly the messages sent while it was away, in order;
// after more than history keeps, "not recovered", then live messages again.
// Kills only the processes it started. Prints "N passed, M failed"; exits non-zero on failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importOrSkip, skip } from '../import_or_skip.mjs';

const { chromium } = await importOrSkip(import('playwright-core'), 'playwright-core', '(cd tests/browser && npm ci)');

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, '..', '..', 'examples', 'web');
const serverBinary = process.argv[2];
const screenshotPath = path.resolve(process.argv[3] || process.env.HERALD_BROWSER_SCREENSHOT || 'browser-screenshot.png');
const chromiumPath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const extraServerArgs = (process.env.HERALD_SERVER_ARGS || '').split(/\s+/).filter(Boolean);
const deflate = extraServerArgs.includes('--deflate');
const STEP_MS = 10000;    // any single wait in the page
const OVERALL_MS = 150000;
const API_KEY = 'browser-history-key';

if (!serverBinary) {
  console.error('usage: node browser_test.mjs PATH/TO/uid_push_server [SCREENSHOT.png]');
  process.exit(2);
}
if (!fs.existsSync(chromiumPath)) skip(`no chromium at ${chromiumPath}: apt-get install chromium (or set HERALD_CHROMIUM)`);

let passed = 0;
let failed = 0;
let server = null;       // the ChildProcess of uid_push_server
let historyServer = null;  // the one with --history (apiPort: its HTTP API)
let proxy = null;        // the TCP proxy in front of it
let context = null;      // the browser (persistent context in a fresh profile directory)
let profileDir = null;

class TestFailure extends Error {}
function check(cond, what) {
  if (!cond) throw new TestFailure(what);
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`PASS ${name.padEnd(52)} ${((Date.now() - t0) / 1000).toFixed(2)}s`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name.padEnd(52)} ${e instanceof TestFailure ? e.message : e.stack || e}`);
    throw e;  // later steps build on this one
  }
}

// ---------------------------------------------------------------- the server

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startServerOn(port, args = []) {
  return new Promise((resolve) => {
    const proc = spawn(serverBinary, ['--address', '127.0.0.1', '--port', String(port), '--web', webDir, ...args, ...extraServerArgs],
                       { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let done = false;
    const finish = (ok, why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ok, proc, why });
    };
    const timer = setTimeout(() => finish(false, `no "listening" line within 10 s (got ${JSON.stringify(out)})`), 10000);
    const wantApi = args.includes('--http-port');
    proc.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      if (lines.length < (wantApi ? 3 : 2)) return;
      const ok = lines[0].startsWith(`uid_push_server listening on 127.0.0.1:${port} `) && lines[0].includes('web page');
      if (wantApi) proc.apiPort = Number(lines[1].split('http api on 127.0.0.1:')[1]);
      finish(ok && (!wantApi || proc.apiPort > 0), out);
    });
    proc.on('exit', (code) => finish(false, `server exited with ${code} (${JSON.stringify(out)})`));
    proc.on('error', (e) => finish(false, String(e)));
  });
}

async function startServer(args = []) {
  let why = '';
  for (let i = 0; i < 3; i++) {  // a free port may be taken between probing and binding
    const port = await freePort();
    const r = await startServerOn(port, args);
    if (r.ok) {
      if (args.length) historyServer = r.proc;
      else server = r.proc;
      return port;
    }
    why = r.why;
    stopServer(r.proc);
  }
  throw new TestFailure(`server did not start: ${why}`);
}

function stopServer(proc) {
  if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

// A TCP proxy to 127.0.0.1:target that the test can cut: cut() resets every connection (RST, as
// a network that goes away) and refuses new ones until up().
function startProxy(target) {
  const sockets = new Set();
  let down = false;
  const listener = net.createServer((client) => {
    if (down) return client.resetAndDestroy();
    const upstream = net.connect(target, '127.0.0.1');
    const end = () => {
      for (const s of [client, upstream]) {
        s.destroy();
        sockets.delete(s);
      }
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => listener.listen(0, '127.0.0.1', () => resolve({
    port: listener.address().port,
    cut() {
      down = true;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    up() { down = false; },
    close() {
      listener.close();
      for (const s of sockets) s.destroy();
    },
  })));
}

// POST /send/<uid> to the HTTP API -> the parsed JSON answer.
function push(apiPort, uid, text) {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(text);
    const req = http.request({ host: '127.0.0.1', port: apiPort, method: 'POST', path: '/send/' + encodeURIComponent(uid),
                               headers: { Authorization: 'Bearer ' + API_KEY, 'Content-Length': body.length } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(data)) : reject(new TestFailure(`POST: ${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// One raw HTTP request (the exact target, unnormalised) -> { status, headers, body }.
function httpRequest(port, method, target) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new TestFailure(`${method} ${target}: no complete answer within 5 s`));
    }, 5000);
    sock.on('connect', () => sock.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return reject(new TestFailure(`${method} ${target}: no response head (${JSON.stringify(raw.toString())})`));
      const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status: Number(lines[0].split(' ')[1]), headers, body: raw.subarray(end + 4) });
    });
  });
}

// ---------------------------------------------------------------- the pages

const received = (page) => page.$$eval('#messages li:not(.note) .text', (els) => els.map((e) => e.textContent));

async function waitForStatus(page, kind, text) {
  await page.waitForFunction(([k, t]) => {
    const s = document.getElementById('status');
    return s.classList.contains(k) && s.textContent.includes(t);
  }, [kind, text], { timeout: STEP_MS, polling: 50 }).catch(async () => {
    const s = await page.textContent('#status');
    throw new TestFailure(`status: expected ${kind} "${text}", shows "${s}"`);
  });
}

async function waitForMessage(page, who, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === t),
                             text, { timeout: STEP_MS, polling: 50 }).catch(async () => {
    throw new TestFailure(`${who} never showed ${JSON.stringify(text)}; shows ${JSON.stringify(await received(page))}`);
  });
}

// Pages in the background tabs are throttled (no animation frames): act on the front one.
async function logIn(page, uid) {
  await page.bringToFront();
  await page.fill('#uid', uid);
  await page.click('#login');
  await waitForStatus(page, 'online', `logged in as ${uid}`);
}

async function sendFrom(page, target, message) {
  await page.bringToFront();
  if (target === 'all') {
    await page.check('#to-all');
  } else {
    await page.uncheck('#to-all');
    await page.fill('#target', target);
  }
  await page.fill('#message', message);
  await page.click('#send');
}

async function expectReceived(page, who, want) {
  const got = await received(page);
  check(JSON.stringify(got) === JSON.stringify(want),
        `${who} shows ${JSON.stringify(got)}, expected exactly ${JSON.stringify(want)}`);
  const count = await page.textContent('#count');
  check(count === String(want.length), `${who}'s counter says ${count}, expected ${want.length}`);
}

// ---------------------------------------------------------------- the test

async function main() {
  check(fs.existsSync(path.join(webDir, 'index.html')), `no index.html in ${webDir}`);
  let port = 0;
  await step('server starts with --web', async () => {
    port = await startServer();
  });

  await step('static files over plain HTTP', async () => {
    const index = await httpRequest(port, 'GET', '/');
    check(index.status === 200, `GET /: ${index.status}`);
    check(index.headers['content-type'] === 'text/html; charset=utf-8', `GET /: type ${index.headers['content-type']}`);
    check(index.body.equals(fs.readFileSync(path.join(webDir, 'index.html'))), 'GET /: body differs from index.html');
    check(index.headers.connection === 'close', `GET /: Connection ${index.headers.connection}`);
    check(Number(index.headers['content-length']) === index.body.length, 'GET /: Content-Length does not match');
    for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['style.css', 'text/css; charset=utf-8'],
                                ['index.html?v=1', 'text/html; charset=utf-8']]) {
      const r = await httpRequest(port, 'GET', '/' + file);
      check(r.status === 200 && r.headers['content-type'] === type, `GET /${file}: ${r.status} ${r.headers['content-type']}`);
    }
    const missing = await httpRequest(port, 'GET', '/no-such-file.png');
    check(missing.status === 404, `GET /no-such-file.png: ${missing.status}`);
    for (const target of ['/../CMakeLists.txt', '/..%2fCMakeLists.txt', '/%2e%2e/uid_push_server.cpp', '/web/../../README.md']) {
      const r = await httpRequest(port, 'GET', target);
      check(r.status === 403 || r.status === 404 || r.status === 400, `GET ${target}: ${r.status} (path traversal)`);
      check(!r.body.toString().includes('cmake_minimum_required') && !r.body.toString().includes('#include'),
            `GET ${target}: served a file outside the web directory`);
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await httpRequest(port, method, '/');
      check(r.status === 405 && r.headers.allow === 'GET', `${method} /: ${r.status} Allow ${r.headers.allow}`);
    }
  });

  const pageErrors = [];
  let alice = null;
  let bob = null;
  await step('chromium opens the page twice', async () => {
    profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
             '--no-first-run', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
      viewport: { width: 960, height: 600 },
      timeout: 60000,
    });
    alice = context.pages()[0] || await context.newPage();
    bob = await context.newPage();
    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') pageErrors.push(`${who} console: ${m.text()}`);
      });
      await page.goto(`http://127.0.0.1:${port}/`, { timeout: STEP_MS });
      check((await page.title()).includes('herald'), `${who}: page title ${await page.title()}`);
      await waitForStatus(page, 'disconnected', 'not connected');
    }
  });

  await step('alice and bob log in', async () => {
    await logIn(alice, 'alice');
    await logIn(bob, 'bob');
    await expectReceived(alice, 'alice', []);
    await expectReceived(bob, 'bob', []);
  });

  await step(deflate ? 'chromium negotiated permessage-deflate' : 'no extension without --deflate', async () => {
    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      // app.js keeps its connection in `link` (resume.js: link.ws is the WebSocket); Chromium
      // offers permessage-deflate by itself.
      const extensions = await page.evaluate(() => link.ws.extensions);
      if (deflate) {
        check(extensions.startsWith('permessage-deflate'), `${who}: extensions ${JSON.stringify(extensions)}`);
        console.log(`  ${who}'s page: Sec-WebSocket-Extensions: ${extensions}`);
      }
      else check(extensions === '', `${who}: extensions ${JSON.stringify(extensions)} without --deflate`);
    }
  });

  const nonce = Math.random().toString(36).slice(2, 8);
  const unicast = `hello bob: from alice (${nonce})`;
  const broadcast = `broadcast from bob to everyone (${nonce})`;
  await step('alice sends to bob: only bob sees it', async () => {
    await sendFrom(alice, 'bob', unicast);
    await waitForMessage(bob, 'bob', unicast);
    await expectReceived(bob, 'bob', [unicast]);
  });

  await step('bob broadcasts: both see it exactly once', async () => {
    await sendFrom(bob, 'all', broadcast);
    await waitForMessage(alice, 'alice', broadcast);
    await waitForMessage(bob, 'bob', broadcast);
    // The unicast, had it reached alice, would have arrived before this broadcast (same
    // connection, sent earlier): alice's list being exactly [broadcast] proves it did not.
    await alice.waitForTimeout(300);  // and no late duplicates
    await expectReceived(alice, 'alice', [broadcast]);
    await expectReceived(bob, 'bob', [unicast, broadcast]);
  });

  let bigDoc = null;
  if (deflate) {
    await step('a 4 KiB JSON broadcast (compressed both ways) arrives intact', async () => {
      const items = [];
      for (let i = 0; JSON.stringify(items).length < 4000; ++i) items.push({ id: i * 7919 % 10007, user: `u${i % 97}`, price: (i * 37) % 1000 / 4 });
      bigDoc = JSON.stringify({ nonce, items });
      await sendFrom(bob, 'all', bigDoc);  // Chromium compresses it; the server inflates it, compresses once for both
      await waitForMessage(alice, 'alice', bigDoc);
      await waitForMessage(bob, 'bob', bigDoc);
      await alice.waitForTimeout(300);  // and no late duplicates
      await expectReceived(alice, 'alice', [broadcast, bigDoc]);
      await expectReceived(bob, 'bob', [unicast, broadcast, bigDoc]);
    });
  }

  await step('a refused login shows the close code', async () => {
    const third = await context.newPage();
    third.on('pageerror', (e) => pageErrors.push(`third: ${e.message}`));
    await third.goto(`http://127.0.0.1:${port}/`, { timeout: STEP_MS });
    await third.bringToFront();
    await third.fill('#uid', 'all');
    await third.click('#login');
    await waitForStatus(third, 'closed', "1008 uid 'all' is reserved");
    await third.close();
    await expectReceived(alice, 'alice', bigDoc ? [broadcast, bigDoc] : [broadcast]);  // nobody else was disturbed
  });

  let carol = null;
  const sent = [];  // what carol's page must show, in order
  await step('history: a page cut off (RST) reconnects and shows "recovered" and what it missed', async () => {
    const hport = await startServer(['--history', '50', '--http-port', '0', '--api-key', API_KEY]);
    proxy = await startProxy(hport);
    carol = await context.newPage();
    carol.on('pageerror', (e) => pageErrors.push(`carol: ${e.message}`));
    await carol.goto(`http://127.0.0.1:${proxy.port}/`, { timeout: STEP_MS });
    await logIn(carol, 'carol');
    await waitForStatus(carol, 'online', 'logged in as carol · fresh');
    for (let i = 1; i <= 3; i++) {
      const j = await push(historyServer.apiPort, 'carol', `before ${i}`);
      check(j.offset === i && j.delivered === 1, `POST: ${JSON.stringify(j)}`);
      sent.push(`before ${i}`);
    }
    await waitForMessage(carol, 'carol', 'before 3');
    proxy.cut();
    await waitForStatus(carol, 'connecting', 'connection lost');
    for (let i = 1; i <= 5; i++) {
      await push(historyServer.apiPort, 'carol', `while away ${i}`);
      sent.push(`while away ${i}`);
    }
    proxy.up();
    await waitForStatus(carol, 'online', 'logged in as carol · recovered');
    await waitForMessage(carol, 'carol', 'while away 5');
    await carol.waitForTimeout(300);  // and no late duplicates
    await expectReceived(carol, 'carol', sent);
  });

  await step('history: "not recovered" after more than history keeps, then live again', async () => {
    proxy.cut();
    await waitForStatus(carol, 'connecting', 'connection lost');
    for (let i = 1; i <= 60; i++) await push(historyServer.apiPort, 'carol', `lost ${i}`);
    proxy.up();
    await waitForStatus(carol, 'online', 'logged in as carol · not recovered');
    await push(historyServer.apiPort, 'carol', 'live again');
    sent.push('live again');
    await waitForMessage(carol, 'carol', 'live again');
    await expectReceived(carol, 'carol', sent);
    const notes = await carol.$$eval('#messages li.note .text', (els) => els.map((e) => e.textContent));
    check(notes.some((n) => n.startsWith('recovered')) && notes.some((n) => n.startsWith('not recovered')), `notes ${notes}`);
  });

  await step('screenshot saved', async () => {
    // Both pages side by side, in one image.
    const shots = [];
    for (const [who, page] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
      await page.bringToFront();
      shots.push([who, (await page.screenshot()).toString('base64')]);
    }
    const board = await context.newPage();
    await board.setViewportSize({ width: 2940, height: 660 });
    await board.setContent(`<body style="margin:0;padding:10px;background:#cfd4dc;font:16px sans-serif;display:flex;gap:20px">${
      shots.map(([who, png]) => `<figure style="margin:0"><figcaption style="padding:0 0 6px">${who}'s page</figcaption>` +
                                `<img style="display:block;border:1px solid #8891a0" src="data:image/png;base64,${png}"></figure>`).join('')}</body>`);
    fs.mkdirSync(path.dirname(screenshotPath), { recursive: true });
    await board.screenshot({ path: screenshotPath });
    await board.close();
    check(fs.statSync(screenshotPath).size > 1000, `screenshot ${screenshotPath} is empty`);
    console.log(`screenshot: ${screenshotPath}`);
  });

  await step('no script errors in the pages', async () => {
    check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
  });
}

async function cleanup() {
  if (context) await context.close().catch(() => {});
  if (proxy) proxy.close();
  stopServer(server);
  stopServer(historyServer);
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
}

const overall = setTimeout(async () => {
  console.log(`FAIL overall: not finished within ${OVERALL_MS / 1000} s`);
  failed += 1;
  await cleanup();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}, OVERALL_MS);

try {
  await main();
} catch (e) {
  if (failed === 0) {  // failed outside a step
    failed = 1;
    console.log(`FAIL ${e instanceof TestFailure ? e.message : e.stack || e}`);
  }
} finally {
  clearTimeout(overall);
  await cleanup();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
