// The client side of uid_push_server --history (examples/uid_protocol.hpp) in 20 lines: every
// message carries a header, "<offset>:<message>" (sent to your uid), ":<message>" (anything
// else) or "@<epoch>:<offset>:<state>:<text>" (your position: the login reply, or "history
// lost"); you resume by connecting to /?epoch=<epoch>&offset=<last offset you processed>.
//   const link = resumingSocket('ws://host:1234', 'alice', saved, {message, state, other, close});
// on.message(text, offset), on.other(text), on.state(state, position, text): state is "fresh",
// "recovered" (what you missed follows) or "not recovered" (reload your state); on.close(event).
// link.position is what to save for the next connection. Text messages only (binary: on.other).
// A server without --history sends no headers: then every message goes to on.other as it is.
'use strict';

function resumingSocket(url, uid, position, on) {
  const link = { position, ws: new WebSocket(url + '/' + (position ? `?epoch=${position.epoch}&offset=${position.offset}` : '')) };
  link.ws.onopen = () => link.ws.send(uid);                          // the first message is the uid, as ever
  link.ws.onclose = (event) => on.close(event);
  link.ws.onmessage = ({ data }) => {
    if (typeof data !== 'string' || !(link.history ||= data[0] === '@')) return on.other(data);
    const colon = data.indexOf(':');
    if (data[0] === '@') {                                             // @epoch:offset:state:text
      const [epoch, offset, state] = data.slice(1).split(':', 3);
      const text = data.slice(epoch.length + offset.length + state.length + 4);
      if (state !== 'recovered') link.position = { epoch, offset: Number(offset) };  // else the replay follows
      return on.state(state, link.position, text);
    }
    if (colon === 0) return on.other(data.slice(1));                   // not in history
    link.position = { epoch: link.position.epoch, offset: Number(data.slice(0, colon)) };
    on.message(data.slice(colon + 1), link.position.offset);
  };
  return link;
}
