#!/usr/bin/python3
"""Every C++ code block of README.md, compiled (ctest: readme-snippets).

  readme_snippets.py extract README.md OUTDIR
      At configure time (tests/readme/CMakeLists.txt): writes one OUTDIR/<name>.cpp per C++
      block and OUTDIR/snippets.cmake, which declares one target per block with
      herald_readme_snippet(<name> <kind> <file> <README line> [tls] [redis] [deflate]). Files are
      rewritten only when their text changes, so an unchanged snippet is not rebuilt.

  readme_snippets.py check [--cmake CMAKE] --build-dir DIR [--config=CFG] --server EXE
      The test: builds the target readme_snippets in DIR (which re-runs CMake first when
      README.md changed, so the blocks compiled are the current ones) and fails if any block
      does not compile or link; then runs the block named "server" (the 30-line server) and
      talks to it over WebSocket with Python's websockets.

How a block becomes a translation unit. A block is C++ when its fence says ```cpp (or c++,
cxx). A fence without a language is an error (it could hide C++); other languages are skipped.
An HTML comment as the last non-blank line before the fence gives options:

  <!-- snippet: fragment -->      the block is part of a function, not a whole file
  <!-- snippet: name=server -->   the target is readme_server (default: readme_snippet_<n>)

  - A block that is not a fragment is a whole file: compiled as is; linked into an executable
    when it defines `int main(`, otherwise compiled only (an object library).
  - A fragment: its #include lines go to file scope, after FRAGMENT_PRELUDE below; every other
    line becomes the body of FRAGMENT_FUNCTION, inside a block of its own (so the fragment may
    declare names the parameters already use). The function is a coroutine, so a fragment may
    co_await. The names it may use without declaring them: `session` (herald::ws_session<>),
    `io`, `contexts` (one io_context per thread), `socket` (an accepted asio::ip::tcp::socket),
    `users` (herald::registry<session>) and `bound` (what users.login returned).

Every line is preceded by a #line directive, so compiler errors name README.md and its line.
A block that includes <herald/tls.hpp> links OpenSSL; one that includes
<herald/policy/redis_cluster.hpp> or <herald/redis/...> links hiredis; one that includes
<herald/deflate.hpp> links zlib. Flags are those of
herald's own targets (herald::herald, herald_dev_flags: -Wall -Wextra -Wpedantic -Werror).
"""
import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time

CXX_LANGS = {"cpp", "c++", "cxx"}

FRAGMENT_PRELUDE = """\
// README.md fragment: the prelude every fragment is compiled after (tests/readme/readme_snippets.py).
#include <herald.hpp>

#include <cstddef>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using session = herald::ws_session<>;
"""

FRAGMENT_FUNCTION = """\
asio::awaitable<void> readme_fragment([[maybe_unused]] asio::io_context& io,
                                      [[maybe_unused]] std::vector<std::unique_ptr<asio::io_context>>& contexts,
                                      [[maybe_unused]] asio::ip::tcp::socket socket,
                                      [[maybe_unused]] herald::registry<session>& users,
                                      [[maybe_unused]] herald::binding<session>& bound) {
  {
%s
  }
  co_return;
}
"""

MARKER = re.compile(r"^\s*<!--\s*snippet:(.*?)-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)\s*$")


class ReadmeError(Exception):
    pass


def parse_marker(text, line_no):
    opts = {"fragment": False, "name": None}
    for word in text.split():
        if word == "fragment":
            opts["fragment"] = True
        elif word.startswith("name="):
            name = word[len("name="):]
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ReadmeError("README.md:%d: snippet name %r: use letters, digits, _" % (line_no, name))
            opts["name"] = name
        else:
            raise ReadmeError("README.md:%d: unknown snippet option %r (fragment, name=...)" % (line_no, word))
    return opts


def blocks(readme_text):
    """Yields (first line number of the code, language, code lines, options) per fenced block."""
    lines = readme_text.split("\n")
    i = 0
    last_nonblank = None  # (line number, text) of the last non-blank line outside blocks
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                last_nonblank = (i + 1, lines[i])
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i + 1
        j = start
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        if j == len(lines):
            raise ReadmeError("README.md:%d: code block never closed" % (i + 1))
        if not lang:
            raise ReadmeError("README.md:%d: code block without a language (```cpp, ```sh, ...)" % (i + 1))
        opts = {"fragment": False, "name": None}
        if last_nonblank:
            mm = MARKER.match(last_nonblank[1])
            if mm:
                opts = parse_marker(mm.group(1), last_nonblank[0])
        code = [l[len(indent):] if l.startswith(indent) else l for l in lines[start:j]]
        yield start + 1, lang, code, opts
        last_nonblank = None
        i = j + 1


def translation_unit(readme_path, generated_path, first_line, code, fragment):
    """The generated file's text: README lines under #line directives naming README.md, the
    wrapper's own lines under #line directives naming the generated file."""
    readme = '"%s"' % readme_path.replace("\\", "\\\\").replace('"', '\\"')
    generated = '"%s"' % generated_path.replace("\\", "\\\\").replace('"', '\\"')
    out = ["// Generated from %s:%d by tests/readme/readme_snippets.py: edit README.md, not this file."
           % (readme_path, first_line)]

    def own_lines(text):
        out.append("#line %d %s" % (len(out) + 2, generated))
        out.extend(text.rstrip("\n").split("\n"))

    def readme_line(n, line):
        out.append("#line %d %s" % (first_line + n, readme))
        out.append(line)

    if not fragment:
        out.append("#line %d %s" % (first_line, readme))
        out.extend(code)
        return "\n".join(out) + "\n"
    own_lines(FRAGMENT_PRELUDE)
    body = []
    for n, line in enumerate(code):
        if line.lstrip().startswith("#include"):
            readme_line(n, line)
        elif line.strip():
            body.append((n, line))
    head, tail = FRAGMENT_FUNCTION.split("%s\n")
    own_lines(head)
    for n, line in body:
        readme_line(n, "    " + line)
    own_lines(tail)
    return "\n".join(out) + "\n"


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def extract(readme, outdir):
    readme = os.path.abspath(readme)
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    os.makedirs(outdir, exist_ok=True)
    decls, names, count = [], set(), 0
    for first_line, lang, code, opts in blocks(text):
        if lang not in CXX_LANGS:
            continue
        count += 1
        name = opts["name"] or "snippet_%d" % count
        if name in names:
            raise ReadmeError("README.md:%d: a second snippet named %s" % (first_line, name))
        names.add(name)
        source = "\n".join(code)
        if opts["fragment"]:
            kind = "fragment"
        elif re.search(r"\bint\s+main\s*\(", source):
            kind = "program"
        else:
            kind = "unit"
        needs = []
        if re.search(r"#\s*include\s*[<\"]herald/tls\.hpp", source):
            needs.append("tls")
        if re.search(r"#\s*include\s*[<\"]herald/(policy/redis_cluster\.hpp|redis/)", source):
            needs.append("redis")
        if re.search(r"#\s*include\s*[<\"]herald/deflate\.hpp", source):
            needs.append("deflate")
        file = os.path.join(outdir, "readme_%s.cpp" % name)
        write_if_changed(file, translation_unit(readme, file, first_line, code, opts["fragment"]))
        decls.append("herald_readme_snippet(readme_%s %s \"%s\" %d %s)" % (name, kind, file, first_line, " ".join(needs)))
    if count == 0:
        raise ReadmeError("README.md has no ```cpp block")
    # Stale files of snippets that are gone would only confuse: remove them.
    keep = {"readme_%s.cpp" % n for n in names} | {"snippets.cmake"}
    for f in os.listdir(outdir):
        if f.startswith("readme_") and f.endswith(".cpp") and f not in keep:
            os.remove(os.path.join(outdir, f))
    write_if_changed(os.path.join(outdir, "snippets.cmake"),
                     "# Generated by tests/readme/readme_snippets.py from README.md\n" + "\n".join(decls) + "\n")
    print("README.md: %d C++ snippets" % count)


# ---------------------------------------------------------------- check

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def talk_to_server(port):
    import websockets
    url = "ws://127.0.0.1:%d" % port

    async def expect(ws, want, who):
        try:
            got = await asyncio.wait_for(ws.recv(), 5)
        except asyncio.TimeoutError:
            raise AssertionError("%s waited 5 s for %r; nothing came" % (who, want)) from None
        if got != want:
            raise AssertionError("%s got %r, expected %r" % (who, got, want))

    async with websockets.connect(url) as alice, websockets.connect(url) as bob:
        await alice.send("alice")
        await expect(alice, "login successful, your uid is alice", "alice")
        await bob.send("bob")
        await expect(bob, "login successful, your uid is bob", "bob")
        await alice.send("bob:hello bob: colons and all")
        await expect(bob, "hello bob: colons and all", "bob")
        await bob.send("all:hello everyone")
        await expect(alice, "hello everyone", "alice")
        await expect(bob, "hello everyone", "bob")
        await alice.send("no colon")
        await expect(alice, "error: expected <uid>:<message>", "alice")
        await bob.send("alice:last")  # the very next message: nothing else reached alice
        await expect(alice, "last", "alice")
    async with websockets.connect(url) as bad:
        await bad.send("all")
        try:
            got = await asyncio.wait_for(bad.recv(), 5)
            raise AssertionError("the uid 'all' was accepted: %r" % got)
        except websockets.exceptions.ConnectionClosed as e:
            if e.code != 1008:
                raise AssertionError("the uid 'all' was refused with %d, not 1008" % e.code) from None


def run_server(server):
    port = free_port()
    proc = subprocess.Popen([server, str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise AssertionError("the server exited with %d" % proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the server does not listen on port %d" % port)
                time.sleep(0.05)
        asyncio.run(asyncio.wait_for(talk_to_server(port), 30))
        if proc.poll() is not None:
            raise AssertionError("the server exited with %d" % proc.returncode)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check(cmake, build_dir, config, server):
    cmd = [cmake, "--build", build_dir, "--target", "readme_snippets"]
    if config:
        cmd += ["--config", config]
    print("$", " ".join(cmd), flush=True)
    built = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(built.stdout, end="")
    if built.returncode != 0:
        print("FAIL: a README.md snippet does not compile (see above; errors name README.md lines)")
        return 1
    if not os.path.exists(server):
        print("FAIL: the server snippet (<!-- snippet: name=server -->) was not built: %s" % server)
        return 1
    try:
        run_server(server)
    except Exception as e:  # noqa: BLE001 - any failure of the run is the test's failure
        print("FAIL: the README's server: %s: %s" % (type(e).__name__, e))
        return 1
    print("README.md snippets compile; the 30-line server logs in, unicasts and broadcasts")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract")
    ex.add_argument("readme")
    ex.add_argument("outdir")
    ch = sub.add_parser("check")
    ch.add_argument("--cmake", default="cmake")
    ch.add_argument("--build-dir", required=True)
    ch.add_argument("--config", default="")
    ch.add_argument("--server", required=True)
    args = ap.parse_args()
    try:
        if args.cmd == "extract":
            extract(args.readme, args.outdir)
            return 0
        return check(args.cmake, args.build_dir, args.config, args.server)
    except ReadmeError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
