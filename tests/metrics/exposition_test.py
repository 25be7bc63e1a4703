#!/usr/bin/python3
"""herald's /metrics exposition against real parsers.

Usage: exposition_test.py PATH/TO/metrics_exposition PATH/TO/uid_push_server

1. metrics_exposition prints every metric id set to a distinct non-zero value (1000 + 7 x id):
   the text must parse with prometheus_client (Debian python3-prometheus-client), carry every
   value exactly once, and have exactly one non-empty HELP and one TYPE per family, before its
   samples (Prometheus rejects a second TYPE line; prometheus_client does not, so that is
   checked here too). `promtool check metrics` (Debian prometheus) must accept it.
2. uid_push_server --metrics-port after some traffic: the scrape passes the same checks.
Prints "N passed, M failed".
"""
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
import websockets

results = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def strict_checks(text):
    """One HELP (non-empty) and one TYPE per family, both before the family's samples."""
    helps, types, seen_samples = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            check(name not in helps, "second HELP line for %s" % name)
            check(doc.strip() != "", "empty HELP for %s" % name)
            check(name not in seen_samples, "HELP for %s after its samples" % name)
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            check(name not in types, "second TYPE line for %s" % name)
            check(kind in ("counter", "gauge"), "unexpected type %r for %s" % (kind, name))
            check(name not in seen_samples, "TYPE for %s after its samples" % name)
            types[name] = kind
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            check(name in types and name in helps, "sample %s without HELP and TYPE" % name)
            if types[name] == "counter":
                check(name.endswith("_total"), "counter %s does not end in _total" % name)
            seen_samples.add(name)
    check(set(helps) == set(types), "HELP and TYPE name different families")
    return types


def promtool(text):
    tool = shutil.which("promtool")
    if not tool:
        print("note: promtool not found (apt-get install prometheus): strict Prometheus check skipped")
        return
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    check(r.returncode == 0, "promtool check metrics failed: %s" % out.strip())


def parse(text):
    families = list(text_string_to_metric_families(text))
    samples = [s for f in families for s in f.samples]
    check(samples, "no samples parsed")
    return families, samples


def test_every_metric_distinct(exposition_binary):
    text = subprocess.run([exposition_binary], capture_output=True, check=True, timeout=30).stdout.decode()
    ids = int(re.search(r"^# ids (\d+)$", text, re.M).group(1))
    types = strict_checks(text)
    families, samples = parse(text)
    values = sorted(int(s.value) for s in samples)
    want = [1000 + 7 * i for i in range(ids)]
    check(values == want, "sample values %s, expected each id once: %s" % (values, want))
    check(len(families) == len(types), "prometheus_client saw %d families, the text has %d" % (len(families), len(types)))
    closes = [s for s in samples if s.name == "herald_closes_total"]
    check(sorted(s.labels["class"] for s in closes) == ["abnormal", "application", "normal", "policy", "protocol", "server"],
          "herald_closes_total classes: %s" % [s.labels for s in closes])
    promtool(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def traffic(port):
    uri = "ws://127.0.0.1:%d/" % port
    a = await websockets.connect(uri, ping_interval=None)
    await a.send("alice")
    await a.recv()
    b = await websockets.connect(uri, ping_interval=None)
    await b.send("all")  # refused: reserved
    try:
        await asyncio.wait_for(b.recv(), 5)
    except websockets.ConnectionClosed:
        pass
    await a.send("alice:hello")
    check(await asyncio.wait_for(a.recv(), 5) == "hello", "alice got her message")
    await a.close()


def test_server_scrape(server_binary):
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([server_binary, "--address", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline().decode()
        check("listening" in line, "server did not start: %r" % line)
        asyncio.run(asyncio.wait_for(traffic(port), 20))
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5) as r:
                text = r.read().decode()
            _, samples = parse(text)
            got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
            if got.get(("herald_closes_total", (("class", "normal"),))) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        strict_checks(text)
        check(got.get(("herald_logins_total", ())) == 1, "logins: %r" % got.get(("herald_logins_total", ())))
        check(got.get(("herald_logins_refused_total", ())) == 1, "refused logins")
        check(got.get(("herald_closes_total", (("class", "policy"),))) == 1, "policy closes")
        check(got.get(("herald_closes_total", (("class", "normal"),))) == 1, "normal closes")
        promtool(text)
    finally:
        proc.kill()
        proc.wait(timeout=5)


def main():
    exposition_binary, server_binary = sys.argv[1], sys.argv[2]
    passed = failed = 0
    for name, fn, arg in (("every_metric_distinct", test_every_metric_distinct, exposition_binary),
                          ("uid_push_server_scrape", test_server_scrape, server_binary)):
        try:
            fn(arg)
            passed += 1
            print("PASS %s" % name)
        except Exception as e:  # noqa: BLE001 - report and go on
            failed += 1
            print("FAIL %s: %s" % (name, e))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
