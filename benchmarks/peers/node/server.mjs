// node-ws server: the uid_push_server protocol on Node.js and the ws package (8.x), one
// thread (Node's event loop). A benchmark peer for herald, written the way ws's README writes a
// broadcast: client.send(data, { binary: isBinary }) for every receiver that is OPEN.
//
// Protocol (WebSocket, text or binary):
//   first message        your uid: 1 to 128 bytes, no ':', not "all" (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> to every session of <uid>
//   all:<message>        <message> to every logged-in session, the sender included
//   anything else        -> "error: expected <uid>:<message>"
// The split is at the first ':'. Several sessions may log in as the same uid.
//
// Usage: node server.mjs [--address A (0.0.0.0)] [--port P (1234; 0 picks a free one)]
// Prints "node-ws server listening on A:P" when ready; SIGINT/SIGTERM stop it with status 0.
import { WebSocketServer, WebSocket } from 'ws';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;

let address = '0.0.0.0';
let port = 1234;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  if (i + 1 >= argv.length) usage('missing value');
  if (argv[i] === '--address') address = argv[i + 1];
  else if (argv[i] === '--port') port = Number.parseInt(argv[i + 1], 10);
  else usage('unknown option');
}

function usage(why) {
  process.stderr.write(`node-ws server: ${why}\nusage: node server.mjs [--address A] [--port P]\n`);
  process.exit(2);
}

function checkUid(uid, bytes) {
  if (bytes === 0 || bytes > 128) return 'uid must be 1 to 128 bytes';
  if (uid.includes(':')) return "uid must not contain ':'";
  if (uid === 'all') return "uid 'all' is reserved";
  return null;
}

const online = new Set(); // every logged-in socket
const byUid = new Map(); // uid -> Set of sockets

function sendTo(client, data, isBinary) {
  if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
}

const wss = new WebSocketServer({
  host: address,
  port,
  backlog: 4096,
  maxPayload: 1024 * 1024,
  clientTracking: false,
  perMessageDeflate: false,
});

wss.on('connection', (ws) => {
  let uid = null;
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (uid === null) {
      const candidate = data.toString();
      const why = checkUid(candidate, data.length);
      if (why !== null) {
        ws.close(1008, why);
        return;
      }
      uid = candidate;
      online.add(ws);
      let set = byUid.get(uid);
      if (set === undefined) byUid.set(uid, (set = new Set()));
      set.add(ws);
      ws.send(`login successful, your uid is ${uid}`);
      return;
    }
    const colon = data.indexOf(0x3a);
    if (colon < 0) {
      ws.send('error: expected <uid>:<message>');
      return;
    }
    const to = data.toString('utf8', 0, colon);
    const body = data.subarray(colon + 1);
    if (to === 'all') {
      for (const client of online) sendTo(client, body, isBinary);
    } else {
      const set = byUid.get(to);
      if (set !== undefined) for (const client of set) sendTo(client, body, isBinary);
    }
  });
  ws.on('close', () => {
    if (uid === null) return;
    online.delete(ws);
    const set = byUid.get(uid);
    if (set !== undefined) {
      set.delete(ws);
      if (set.size === 0) byUid.delete(uid);
    }
  });
});

wss.on('listening', () => {
  const a = wss.address();
  console.log(`node-ws server listening on ${a.address}:${a.port} (Node ${process.version}, ws ${wsVersion}, 1 thread)`);
});
wss.on('error', (e) => {
  console.error(`node-ws server: ${e.message}`);
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.log('node-ws server stopped');
    process.exit(0);
  });
}
