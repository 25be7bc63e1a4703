// The uid_push_server page: log in as a uid, send to a uid or to everyone, see what arrives.
// Plain browser JavaScript, no build step. Protocol (see examples/uid_push_server.cpp): the
// first message is the uid; "<uid>:<message>" goes to every device of <uid>; "all:<message>"
// to every logged-in session, the sender included.
//
// A connection that drops (network change, sleep, server restart) is reopened with backoff
// (0.5 s doubling to 10 s, with jitter); a refused login or "Log out" is not. With a server
// started with --history N, the page resumes where it was (resume.js): what was sent to its
// uid meanwhile arrives, and the status says "recovered", or "not recovered" when history
// no longer covers the gap (then the list starts again from here).
'use strict';

const $ = (id) => document.getElementById(id);
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;

let link = null;      // the current connection (resume.js), if any
let uid = '';
let loggedIn = false;
let received = 0;
let position = null;  // {epoch, offset} of the last message processed (history only)
let retry = { timer: null, delay: 500 };

function setStatus(kind, text) {
  const s = $('status');
  s.className = 'status ' + kind;
  s.textContent = text;
  document.body.dataset.state = kind;
}

function setLoggedIn(on) {
  loggedIn = on;
  $('send').disabled = !on;
  $('logout').disabled = !link && !retry.timer;
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

function stopRetrying() {
  clearTimeout(retry.timer);
  retry = { timer: null, delay: 500 };
}

function connect(asUid, again) {
  if (link) link.ws.close(1000, 'logging in again');
  if (!again) {
    stopRetrying();
    position = asUid === uid ? position : null;  // another uid: another stream
  }
  uid = asUid;
  setLoggedIn(false);
  setStatus('connecting', (again ? 'reconnecting to ' : 'connecting to ') + url + ' …');
  const current = resumingSocket(url, asUid, position, {
    state(state, where) {  // --history: the login reply (or "history lost")
      if (link !== current) return;
      position = where;
      if (state === 'not recovered') addMessage('not recovered: what was sent while away is gone; starting again from here', true);
      loggedIn ? setStatus('online', `logged in as ${asUid} · ${state}`) : welcome(state);
    },
    message(text) {
      if (link !== current) return;
      position = current.position;
      addMessage(text, false);
    },
    other(data) {
      if (link !== current) return;
      const text = typeof data === 'string' ? data : '[binary, ' + data.byteLength + ' bytes]';
      if (!loggedIn && !current.history && text === 'login successful, your uid is ' + asUid) return welcome(null);
      addMessage(text, text.startsWith('error: '));
    },
    close(event) {
      if (link !== current) return;
      link = null;
      setLoggedIn(false);
      const why = event.code + (event.reason ? ' ' + event.reason : '');
      // Lost (1006), or the server went away or could not serve us for now: try again. Not after
      // a refusal (1008), a newer login elsewhere (4000) or our own close.
      if (uid && [1001, 1006, 1011, 1012, 1013].includes(event.code)) return scheduleRetry(why);
      setStatus('closed', 'disconnected (' + why + ')');
    },
  });
  current.ws.binaryType = 'arraybuffer';
  link = current;

  function welcome(state) {
    stopRetrying();
    setLoggedIn(true);
    setStatus('online', 'logged in as ' + asUid + (state ? ' · ' + state : ''));
    if (state === 'recovered') addMessage('recovered: everything sent while away follows', true);
    $('message').focus();
  }
}

function scheduleRetry(why) {
  const wait = retry.delay / 2 + Math.random() * retry.delay / 2;
  retry.delay = Math.min(retry.delay * 2, 10000);
  setStatus('connecting', `connection lost (${why}); reconnecting in ${(wait / 1000).toFixed(1)} s`);
  retry.timer = setTimeout(() => {
    retry.timer = null;
    connect(uid, true);
  }, wait);
  setLoggedIn(false);
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const asUid = $('uid').value.trim();
  if (!asUid) return;
  connect(asUid, false);
});

$('logout').addEventListener('click', () => {
  stopRetrying();
  const was = uid;
  uid = '';
  if (link) link.ws.close(1000, 'logged out');
  else setStatus('closed', 'logged out as ' + was);
  setLoggedIn(false);
});

$('to-all').addEventListener('change', () => {
  $('target').disabled = $('to-all').checked;
});

$('send-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!link || !loggedIn) return;
  const target = $('to-all').checked ? 'all' : $('target').value.trim();
  const message = $('message').value;
  if (!target || target.includes(':')) {
    addMessage('pick a uid to send to (no ":"), or tick "everyone"', true);
    return;
  }
  link.ws.send(target + ':' + message);
  $('message').value = '';
  $('message').focus();
});

setStatus('disconnected', 'not connected');
