#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (run from anywhere; idempotent).

Each file starts with the target's configuration bytes (see the comment at the top of each
fuzz_*.cpp), followed by the stream: frames, a handshake request or response, or text.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, masked=True, rsv=0, key=KEY):
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if masked:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


def close(code=None, reason=b"", **kw):
    body = b"" if code is None else struct.pack(">H", code) + reason
    return frame(0x8, body, **kw)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz_frame_parser: byte 0 chunking, byte 1 limit (3: 64 KiB), then frames.
def frames(name, data, chunking=0x07, limit=0x03):
    write("fuzz_frame_parser", name, bytes([chunking, limit]) + data)


frames("text_masked", frame(0x1, b"Hello"))
frames("text_unmasked", frame(0x1, b"Hello", masked=False))
frames("binary_126", frame(0x2, bytes(range(256)) * 1 + b"x" * 44), chunking=0x05)
# A 64-bit length with only the start of its payload (keeps the corpus small).
frames("binary_127_truncated", frame(0x2, b"\x00" * 70000)[:200], chunking=0x06)
frames("fragmented_text", frame(0x1, b"Hel", fin=False) + frame(0x9, b"ping") +
       frame(0x0, b"lo \xce", fin=False) + frame(0x0, b"\xba end"), chunking=0x00)
frames("fragmented_unmasked", frame(0x2, b"ab", fin=False, masked=False) +
       frame(0x0, b"cd", fin=False, masked=False) + frame(0x0, b"ef", masked=False), chunking=0x11)
frames("close_1000", close(1000, b"bye"))
frames("close_empty", close())
frames("close_bad_code", close(1005))
frames("close_bad_utf8", close(1000, b"\xc0\xaf"))
frames("ping_pong", frame(0x9, b"are you there") + frame(0xA, b"yes") + frame(0x9))
frames("bad_utf8", frame(0x1, b"ok \xf4\x90\x80\x80"))
frames("over_limit", frame(0x1, b"x" * 2000), limit=0x02)
frames("sum_over_limit", frame(0x1, b"x" * 600, fin=False) + frame(0x0, b"x" * 600), limit=0x02)
frames("non_minimal_length", bytes([0x81, 0xFE, 0x00, 0x05]) + KEY + b"hello")
frames("reserved_bits", frame(0x1, b"x", rsv=4))
frames("control_fragmented", frame(0x9, b"x", fin=False))
frames("continuation_alone", frame(0x0, b"x"))
frames("many_small", b"".join(frame(0x1, bytes([0x61 + i % 26]) * i) for i in range(20)), chunking=0x0A)

# With permessage-deflate enabled (byte 1 bit 2): RSV1 (rsv=4) on a message's first frame.
HELLO_DEFLATED = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])  # RFC 7692 section 7.2.3.1
frames("deflate_text", frame(0x1, HELLO_DEFLATED, rsv=4), limit=0x07)
frames("deflate_fragmented", frame(0x1, HELLO_DEFLATED[:3], fin=False, rsv=4) + frame(0x9, b"p") +
       frame(0x0, HELLO_DEFLATED[3:]) + frame(0x1, b"plain"), chunking=0x02, limit=0x07)
frames("deflate_rsv1_continuation", frame(0x2, b"ab", fin=False, rsv=4) + frame(0x0, b"cd", rsv=4), limit=0x07)
frames("deflate_rsv1_ping", frame(0x9, b"x", rsv=4), limit=0x07)
frames("deflate_rsv2", frame(0x1, b"x", rsv=6), limit=0x07)
frames("deflate_unmasked", frame(0x2, HELLO_DEFLATED, masked=False, rsv=4), chunking=0x11, limit=0x07)

# fuzz_handshake: byte 0 = limit (low 2 bits) and read size (bits 2-3), then the head.
REQ = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       b"Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n")
write("fuzz_handshake", "request_rfc", bytes([0x0F]) + REQ)
write("fuzz_handshake", "request_bytewise", bytes([0x03]) + REQ)
write("fuzz_handshake", "request_frames_follow", bytes([0x0B]) + REQ + frame(0x1, b"eager"))
write("fuzz_handshake", "request_keepalive",
      bytes([0x07]) + b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
      b"sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nsec-websocket-version: 13\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
write("fuzz_handshake", "request_version_8", bytes([0x0F]) + REQ.replace(b"Version: 13", b"Version: 8"))
write("fuzz_handshake", "request_post", bytes([0x0F]) + b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
write("fuzz_handshake", "request_folding", bytes([0x0F]) + b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")
write("fuzz_handshake", "request_too_big", bytes([0x00]) + b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100 + b"\r\n\r\n")
write("fuzz_handshake", "request_http10", bytes([0x0F]) + b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
# Regression: the crash fuzz_handshake found (NUL bytes in the request target; now a 400).
write("fuzz_handshake", "regression_target_nul",
      bytes([0x0B]) + b"GET /c" + b"\x00" * 28 + b"hat HTTP/1.1\r\nHost: server.example.com\r\n"
      b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WVersion: 13\r\n\r\n" + frame(0x1, b"eager"))
write("fuzz_handshake", "response_101",
      bytes([0x0F]) + b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
write("fuzz_handshake", "response_503",
      bytes([0x0F]) + b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 18\r\nRetry-After: 5\r\n\r\ntoo many sessions\n")

# fuzz_inflate: byte 0 = limit (low 2 bits), session inflater (bit 2), its window - 8 (bits 3-5);
# byte 1 = length of a first message (0: the rest is one message); then the compressed bodies.
def deflated(payload, wbits=15, level=6, context=None, finish=False):
    c = context or zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(payload) + c.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)
    return out if finish else out[:-4]


def inflate_seed(name, *bodies, limit=2, session=False, window=15):
    config = limit | (4 if session else 0) | (window - 8) << 3
    first = len(bodies[0]) if len(bodies) == 2 else 0
    assert first < 256 and len(bodies) <= 2
    write("fuzz_inflate", name, bytes([config, first]) + b"".join(bodies))


JSON = b'{"uid":42,"event":"price","value":17.25,"tags":["a","b","c"]}' * 30
inflate_seed("rfc_hello", HELLO_DEFLATED)
inflate_seed("rfc_stored_hello", bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + bytes([0x00]))
inflate_seed("rfc_hello_bfinal", deflated(b"Hello", finish=True))
inflate_seed("empty", bytes([0x00]))
inflate_seed("json", deflated(JSON), limit=3)
inflate_seed("json_over_limit", deflated(JSON), limit=1)
inflate_seed("zip_bomb", deflated(bytes(1 << 20)), limit=3)
inflate_seed("truncated", deflated(JSON)[:40], limit=3)
inflate_seed("distance_too_far", bytes([0xF2, 0x00, 0x11, 0x00, 0x00]))
inflate_seed("bad_block_type", bytes([0xFF, 0x00, 0x11]))
inflate_seed("stateless_pair", deflated(JSON[:200]), deflated(JSON[200:1400]), limit=3)
# A client that keeps its context: the second message refers back into the first (RFC 7692
# section 7.2.3.2), then one after a final block.
ctx = zlib.compressobj(6, zlib.DEFLATED, -12)
inflate_seed("context_pair", deflated(JSON[:300], context=ctx), deflated(JSON[:300] + b"!", context=ctx),
             limit=3, session=True, window=12)
inflate_seed("context_after_final", deflated(b"Hello", finish=True), bytes([0xF2, 0x00, 0x11, 0x00, 0x00]),
             session=True)
inflate_seed("session_window_9", deflated(JSON, wbits=9), limit=3, session=True, window=9)
inflate_seed("session_window_8", deflated(JSON[:250], wbits=9), limit=2, session=True, window=8)

# fuzz_utf8: bytes 0-1 = split point, then the text.
def text(name, data, split=0):
    write("fuzz_utf8", name, struct.pack(">H", split) + data)


text("ascii", b"Hello, world", 5)
text("two_byte_split", "κόσμε".encode(), 1)
text("three_byte", "€ and 中文".encode(), 2)
text("four_byte", "\U0001F600\U0010FFFF".encode(), 3)
text("boundaries", "\u0080\u07ff\u0800\uffff\U00010000".encode(), 4)
text("overlong", b"\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf", 1)
text("surrogate", b"\xed\xa0\x80", 1)
text("above_max", b"\xf4\x90\x80\x80", 2)
text("truncated", b"abc\xe2\x82", 4)
text("bad_lead", b"\xff\xfe\xf5\x80", 1)
text("long_ascii_then_bad", b"a" * 40 + b"\x80" + b"b" * 10, 20)
