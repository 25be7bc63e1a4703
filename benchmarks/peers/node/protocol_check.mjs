// protocol_check: checks that a server speaks uid_push_server's protocol, so that the
// benchmark compares like with like. run_suite.sh runs it against every server before measuring.
//
//   node protocol_check.mjs ws://127.0.0.1:PORT/
//
// Checks: login reply; "<uid>:<msg>" to every session of the uid (two devices) and to nobody
// else; "all:<msg>" to every logged-in session, the sender included; the split at the first
// ':'; the error reply; a binary message stays binary; an invalid uid is closed with 1008.
// Exit 0 and "protocol_check: PASS" when all hold; otherwise 1 with what differed.
import { WebSocket } from 'ws';

const url = process.argv[2];
if (!url) {
  console.error('usage: node protocol_check.mjs ws://HOST:PORT/');
  process.exit(2);
}
const timer = setTimeout(() => fail('timeout after 10 s'), 10000);

function fail(why) {
  console.log(`protocol_check: FAIL: ${why}`);
  process.exit(1);
}

// A client that queues what it receives.
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const c = { ws, inbox: [], waiters: [], closed: null };
    ws.on('message', (data, isBinary) => {
      const m = { text: data.toString(), isBinary };
      const w = c.waiters.shift();
      if (w) w(m);
      else c.inbox.push(m);
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      for (const w of c.waiters.splice(0)) w(null);
    });
    ws.on('error', reject);
    ws.on('open', () => resolve(c));
  });
}
function next(c) {
  if (c.inbox.length) return Promise.resolve(c.inbox.shift());
  if (c.closed) return Promise.resolve(null);
  return new Promise((resolve) => c.waiters.push(resolve));
}
async function expect(c, who, text, isBinary = false) {
  const m = await next(c);
  if (m === null) fail(`${who}: closed (${JSON.stringify(c.closed)}) while expecting '${text}'`);
  if (m.text !== text || m.isBinary !== isBinary)
    fail(`${who}: got '${m.text}' (binary ${m.isBinary}), expected '${text}' (binary ${isBinary})`);
}
async function login(uid) {
  const c = await open();
  c.ws.send(uid);
  await expect(c, uid, `login successful, your uid is ${uid}`);
  return c;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const alice1 = await login('alice');
const alice2 = await login('alice');
const bob = await login('bob');

bob.ws.send('alice:hello: with a colon');
await expect(alice1, 'alice (1)', 'hello: with a colon');
await expect(alice2, 'alice (2)', 'hello: with a colon');

bob.ws.send('all:to everyone');
for (const [c, who] of [[alice1, 'alice (1)'], [alice2, 'alice (2)'], [bob, 'bob']]) await expect(c, who, 'to everyone');

bob.ws.send('no colon here');
await expect(bob, 'bob', 'error: expected <uid>:<message>');

alice1.ws.send(Buffer.from('bob:binary'), { binary: true });
await expect(bob, 'bob', 'binary', true);

alice1.ws.send('nobody:lost');
await sleep(100);
for (const [c, who] of [[alice1, 'alice (1)'], [alice2, 'alice (2)'], [bob, 'bob']])
  if (c.inbox.length) fail(`${who} received '${c.inbox[0].text}', sent to nobody or to someone else`);

const bad = await open();
bad.ws.send('a:b');
const m = await next(bad);
if (m !== null) fail(`invalid uid 'a:b' got '${m.text}' instead of a close`);
if (bad.closed.code !== 1008) fail(`invalid uid 'a:b' closed with ${bad.closed.code}, expected 1008`);

for (const c of [alice1, alice2, bob]) c.ws.close();
clearTimeout(timer);
console.log('protocol_check: PASS');
process.exit(0);
