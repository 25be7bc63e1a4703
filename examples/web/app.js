// The uid_push_server page: log in as a uid, send to a uid or to everyone, see what arrives.
// Plain browser JavaScript, no build step. Protocol (see examples/uid_push_server.cpp): the
// first message is the uid; "<uid>:<message>" goes to every device of <uid>; "all:<message>"
// to every logged-in session, the sender included.
'use strict';

const $ = (id) => document.getElementById(id);
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;

let socket = null;   // the current WebSocket, if any
let uid = '';
let loggedIn = false;
let received = 0;

function setStatus(kind, text) {
  const s = $('status');
  s.className = 'status ' + kind;
  s.textContent = text;
  document.body.dataset.state = kind;
}

function setLoggedIn(on) {
  loggedIn = on;
  $('send').disabled = !on;
  $('logout').disabled = !socket;
}

function addMessage(text, note) {
  const li = document.createElement('li');
  if (note) li.className = 'note';
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString();
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;  // text, never markup
  li.append(time, body);
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
  if (!note) $('count').textContent = String(++received);
  $('empty').hidden = true;
}

function connect(asUid) {
  if (socket) socket.close(1000, 'logging in again');
  uid = asUid;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  setLoggedIn(false);
  setStatus('connecting', 'connecting to ' + url + ' …');

  ws.onopen = () => {
    if (socket !== ws) return;
    ws.send(asUid);  // the first message logs in
    setStatus('connecting', 'logging in as ' + asUid + ' …');
  };
  ws.onmessage = (event) => {
    if (socket !== ws) return;
    const text = typeof event.data === 'string' ? event.data : '[binary, ' + event.data.byteLength + ' bytes]';
    if (!loggedIn && text === 'login successful, your uid is ' + asUid) {
      setLoggedIn(true);
      setStatus('online', 'logged in as ' + asUid);
      $('message').focus();
      return;
    }
    addMessage(text, text.startsWith('error: '));
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    setLoggedIn(false);
    const why = event.code + (event.reason ? ' ' + event.reason : '');
    setStatus('closed', 'disconnected (' + why + ')');
  };
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const asUid = $('uid').value.trim();
  if (!asUid) return;
  connect(asUid);
});

$('logout').addEventListener('click', () => {
  if (socket) socket.close(1000, 'logged out');
});

$('to-all').addEventListener('change', () => {
  $('target').disabled = $('to-all').checked;
});

$('send-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!socket || !loggedIn) return;
  const target = $('to-all').checked ? 'all' : $('target').value.trim();
  const message = $('message').value;
  if (!target || target.includes(':')) {
    addMessage('pick a uid to send to (no ":"), or tick "everyone"', true);
    return;
  }
  socket.send(target + ':' + message);
  $('message').value = '';
  $('message').focus();
});

setStatus('disconnected', 'not connected');
