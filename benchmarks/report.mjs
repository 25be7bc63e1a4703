// report.mjs: turns the RESULT lines of a run_suite.sh run into the Markdown report and the
// gnuplot chart. run_suite.sh calls it; it can be re-run on a kept .results.txt:
//
//   node benchmarks/report.mjs RESULTS.txt META.txt OUT.md OUT.png
//
// RESULTS.txt: one line per load_client run, "run=R purpose=P server=S case=C wall_s=T <the
// RESULT fields>" (status=FAIL lines carry reason="..."; results of older suites have no case=,
// their scenario is the case). purpose=syscalls marks the run that counted syscalls: its
// sys_* fields are the syscall figures, and it is in no other median (counting slows the
// server down); every other run is purpose=measure. META.txt: "key<TAB>value" lines about the machine and the parameters.
// Writes OUT.md, and OUT.png through gnuplot (its data and script go next to OUT.png as .dat
// and .gp files, then are deleted unless KEEP_GNUPLOT=1).
//
// Every ratio is to the floor (floor_server) measured in the same suite; the targets are
// issue 13's.
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';

const [resultsPath, metaPath, mdPath, pngPath] = process.argv.slice(2);
if (!pngPath) {
  console.error('usage: node report.mjs RESULTS.txt META.txt OUT.md OUT.png');
  process.exit(2);
}

const SERVERS = ['floor', 'herald', 'herald-2t', 'beast', 'websocketpp', 'node-ws'];
const LABEL = {
  floor: 'floor', herald: 'herald', 'herald-2t': 'herald --threads 2', beast: 'Boost.Beast',
  websocketpp: 'websocketpp', 'node-ws': 'Node ws',
};
const CASES = ['hold', 'broadcast-1k', 'broadcast-64', 'broadcast-few', 'broadcast', 'unicast', 'churn'];
const kindOf = (c) => (c.startsWith('broadcast') ? 'broadcast' : c);
const OP = { broadcast: 'delivery', unicast: 'message', churn: 'cycle' };
const CPU_KEY = { broadcast: 'server_cpu_us_per_delivery', unicast: 'server_cpu_us_per_message', churn: 'server_cpu_us_per_cycle' };

// ---- input
function parseLine(line) {
  const out = {};
  const re = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let m;
  while ((m = re.exec(line)) !== null) {
    let v = m[2];
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    out[m[1]] = v;
  }
  if (!out.case) out.case = out.scenario;
  return out;
}
const rows = readFileSync(resultsPath, 'utf8').split('\n').filter((l) => l.trim()).map(parseLine);
const meta = [];
for (const l of readFileSync(metaPath, 'utf8').split('\n')) {
  const t = l.indexOf('\t');
  if (t > 0) meta.push([l.slice(0, t), l.slice(t + 1)]);
}
const metaGet = (k) => (meta.find(([key]) => key === k) || [])[1] || '';

const servers = SERVERS.filter((s) => rows.some((r) => r.server === s));
const cases = CASES.filter((c) => rows.some((r) => r.case === c));
const counting = (r) => r.purpose === 'syscalls';
const runs = Math.max(0, ...rows.filter((r) => !counting(r)).map((r) => Number(r.run) || 0));
const hasFloor = servers.includes('floor');

// ---- statistics
const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};
// The measured runs (CPU, memory, latency) and the syscall-counting runs are kept apart.
const passed = (server, c) => rows.filter((r) => r.server === server && r.case === c && r.status === 'PASS' && !counting(r));
const all = (server, c) => rows.filter((r) => r.server === server && r.case === c && !counting(r));
const passedCounting = (server, c) =>
  rows.filter((r) => r.server === server && r.case === c && r.status === 'PASS' && r.syscalls && r.syscalls !== 'none');
const values = (server, c, key) =>
  (key.startsWith('sys_') ? passedCounting(server, c) : passed(server, c))
    .map((r) => Number(r[key]))
    .filter((v) => Number.isFinite(v));
// A figure of the syscall-counting run (its CPU figures show what counting cost).
const countingMed = (server, c, key) =>
  median(passedCounting(server, c).map((r) => Number(r[key])).filter((v) => Number.isFinite(v)));
const med = (server, c, key) => median(values(server, c, key));
const minOf = (server, c, key) => Math.min(...values(server, c, key));
const maxOf = (server, c, key) => Math.max(...values(server, c, key));
// Share of the machine that other processes used during a run's measured phase.
const otherPct = (r) => {
  const other = Number(r.other_cpu_s ?? r.login_other_cpu_s);
  const total = Number(r.machine_s ?? r.login_machine_s);
  return Number.isFinite(other) && total > 0 ? (100 * other) / total : NaN;
};

function fmt(v, digits) {
  if (!Number.isFinite(v)) return 'n/a';
  if (digits === undefined) {
    const a = Math.abs(v);
    digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;
  }
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const fmtRatio = (v) => (Number.isFinite(v) ? `${fmt(v, v >= 10 ? 1 : 2)}×` : 'n/a');

// The operating point of a case, from its runs' own parameters (what was measured, not what
// was asked for).
function operatingPoint(c) {
  const r = rows.find((x) => x.case === c && x.status === 'PASS') || rows.find((x) => x.case === c) || {};
  const n = (k) => fmt(Number(r[k]), 0);
  switch (kindOf(c)) {
    case 'hold': return `${n('sessions')} idle logged-in sessions`;
    case 'broadcast': return `${n('sessions')} sessions × ${n('size')} B, ${n('window')} in flight`;
    case 'unicast': return `${n('sessions')} sessions, ${n('size')} B, ${n('window')} in flight`;
    case 'churn': return `${n('sessions')} idle sessions, ${n('window')} workers, ${n('size')} B unicast`;
    default: return '';
  }
}

// ---- the metrics, per kind of case: [key, label, lower is better?]
const METRICS = {
  hold: [
    ['server_bytes_per_session', 'server RSS per idle session (bytes)', true],
    ['logins_per_s', 'logins/s (connect+handshake+login)', false],
    ['login_server_cpu_us_per_login', 'server CPU per login (µs)', true],
    ['login_p99_ms', 'login p99 (ms)', true],
  ],
  broadcast: [
    ['server_cpu_us_per_delivery', 'server CPU per delivery (µs)', true],
    ['sys_per_op', 'server syscalls per delivery', true],
    ['deliveries_per_s', 'deliveries/s', false],
    ['lat_p50_ms', 'latency p50 (ms)', true],
    ['lat_p99_ms', 'latency p99 (ms)', true],
    ['lat_max_ms', 'latency max (ms)', true],
    ['server_cpu_pct', 'server CPU (% of a core)', null],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
  unicast: [
    ['server_cpu_us_per_message', 'server CPU per message (µs)', true],
    ['sys_per_op', 'server syscalls per message', true],
    ['delivered_per_s', 'messages/s', false],
    ['lat_p50_ms', 'latency p50 (ms)', true],
    ['lat_p99_ms', 'latency p99 (ms)', true],
    ['lat_max_ms', 'latency max (ms)', true],
    ['server_cpu_pct', 'server CPU (% of a core)', null],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
  churn: [
    ['server_cpu_us_per_cycle', 'server CPU per cycle (µs)', true],
    ['sys_per_op', 'server syscalls per cycle', true],
    ['cycles_per_s', 'cycles/s', false],
    ['cycle_p99_ms', 'cycle p99 (ms)', true],
    ['server_rss_start', 'server RSS at start (bytes)', null],
    ['server_rss_end', 'server RSS at end (bytes)', null],
    ['server_rss_growth_per_cycle', 'RSS growth per cycle (bytes)', null],
    ['server_cpu_pct', 'server CPU (% of a core)', null],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
};

// The syscall groups load_client reports per operation (sys_<group>_per_op).
const SYS_GROUPS = [
  ['epoll_wait', 'epoll_wait'],
  ['epoll_ctl', 'epoll_ctl'],
  ['recv', 'recvfrom/recvmsg/read'],
  ['send', 'sendto/sendmsg/writev/write'],
  ['accept', 'accept4'],
  ['close', 'close'],
  ['other', 'other'],
];

// ---- issue 13's targets: uid_push_server (default options, one thread) against the floor
const TARGETS = [
  { c: 'broadcast-1k', key: CPU_KEY.broadcast, max: 1.1, text: 'server CPU per delivery ≤ 1.1 × floor' },
  { c: 'broadcast-64', key: CPU_KEY.broadcast, max: 1.1, text: 'server CPU per delivery ≤ 1.1 × floor' },
  { c: 'broadcast-few', key: CPU_KEY.broadcast, max: 1.5, text: 'server CPU per delivery ≤ 1.5 × floor' },
  { c: 'unicast', key: CPU_KEY.unicast, max: 1.1, text: 'server CPU per message ≤ 1.1 × floor' },
  { c: 'churn', key: CPU_KEY.churn, max: 1.2, text: 'server CPU per cycle ≤ 1.2 × floor' },
  { c: 'hold', key: 'server_bytes_per_session', abs: 1000, text: 'RSS per idle logged-in session ≤ 1,000 bytes' },
];
// No more epoll_ctl, send and receive syscalls per operation than the floor + 10% (and 0.01
// per operation of slack, so that a floor of 0 does not fail a server on one stray call).
const SYS_TARGET_GROUPS = ['epoll_ctl', 'send', 'recv'];
const SYS_SLACK = 0.01;

function verdict(t, server) {
  const h = med(server, t.c, t.key);
  const f = med('floor', t.c, t.key);
  if (!Number.isFinite(h)) return { status: 'no data', h, f, ratio: NaN };
  if (t.abs !== undefined) return { status: h <= t.abs ? 'met' : 'NOT met', h, f, ratio: h / f };
  if (!Number.isFinite(f) || f <= 0) return { status: 'no data', h, f, ratio: NaN };
  return { status: h / f <= t.max ? 'met' : 'NOT met', h, f, ratio: h / f };
}
function sysVerdict(c, server) {
  const parts = [];
  let status = 'met';
  for (const g of SYS_TARGET_GROUPS) {
    const h = med(server, c, `sys_${g}_per_op`);
    const f = med('floor', c, `sys_${g}_per_op`);
    if (!Number.isFinite(h) || !Number.isFinite(f)) return { status: 'no data', detail: 'syscalls not counted' };
    const ok = h <= f * 1.1 + SYS_SLACK;
    if (!ok) status = 'NOT met';
    parts.push(`${g} ${fmt(h)} vs ${fmt(f)}${ok ? '' : ' ✗'}`);
  }
  return { status, detail: parts.join('; ') };
}

// ---- Markdown
const failures = rows.filter((r) => r.status !== 'PASS');
const out = [];
const title = metaGet('title') || 'herald benchmark suite';
out.push(`# ${title}`, '');
if (failures.length) {
  out.push(`> **FAILED: ${failures.length} of ${rows.length} runs failed** (loss, wrong delivery, crash or timeout);`,
    '> medians below use only the runs that passed. Details under "Failed runs".', '');
}
if (!hasFloor) out.push('> **No floor runs in these results: no ratios and no verdicts.**', '');
out.push(
  `Every server speaks uid_push_server's protocol on **one thread**` +
    (servers.includes('herald-2t') ? ` (except "herald --threads 2": the multi_thread policy on two, shown beside herald)` : '') +
    `; a fresh server process per run; medians of ${runs} run${runs === 1 ? '' : 's'} per server and case ` +
    `(interleaved: run r of every server before run r+1). **Ratios are to the floor** (\`floor_server\`: ` +
    `the protocol on bare level-triggered epoll, see benchmarks/README.md) measured in the same suite: ` +
    `a ratio of 1.35 means 35% more than the least this machine's kernel lets a server do. ` +
    `Server CPU is user+sys of the server process during the measured phase only. Chart: \`${basename(pngPath)}\`.`,
  '',
);

out.push('## Targets (issue 13: herald uid_push_server, default options, one thread, vs the floor)', '');
const with2t = servers.includes('herald-2t');
out.push(`| target | operating point | verdict | herald | floor | herald / floor | limit |${with2t ? ' herald --threads 2 (/ floor) |' : ''}`,
  `| --- | --- | --- | ---: | ---: | ---: | ---: |${with2t ? ' ---: |' : ''}`);
for (const t of TARGETS) {
  if (!cases.includes(t.c)) continue;
  const v = verdict(t, 'herald');
  const limit = t.abs !== undefined ? `≤ ${fmt(t.abs, 0)} B` : `≤ ${fmt(t.max, 1)}×`;
  let extra = '';
  if (with2t) {
    const v2 = verdict(t, 'herald-2t');
    extra = ` ${fmt(v2.h)} (${fmtRatio(v2.ratio)}) |`;
  }
  out.push(`| ${t.c}: ${t.text} | ${operatingPoint(t.c)} | **${v.status}** | ${fmt(v.h)} | ${fmt(v.f)} | ${fmtRatio(v.ratio)} | ${limit} |${extra}`);
}
for (const c of cases) {
  if (kindOf(c) === 'hold') continue;
  const v = sysVerdict(c, 'herald');
  const extra = with2t ? ` ${sysVerdict(c, 'herald-2t').detail} |` : '';
  out.push(`| ${c}: epoll_ctl, send and receive syscalls per ${OP[kindOf(c)]} ≤ floor + 10% | ${operatingPoint(c)} | ` +
    `**${v.status}** | ${v.detail} | | | ≤ 1.1× + ${SYS_SLACK} |${extra}`);
}
out.push('', 'CPU figures in µs per operation, RSS in bytes; syscall rows: herald vs floor per operation ' +
  '(send = sendto/sendmsg/writev/write, receive = recvfrom/recvmsg/read). ' +
  'Where each target not met loses, measured (syscalls by name, profiles, the memory census), and what would close ' +
  'it: benchmarks/README.md, "Latest results".', '');

out.push('## Syscalls per operation (server process, measured phase only)', '',
  'Counted by `load_client --syscalls` in a separate run per server and case (perf stat on the ' +
    '`raw_syscalls:sys_enter` and `syscalls:sys_enter_*` tracepoints of the server\'s threads, switched on and off ' +
    'at the phase boundaries). Counting slows every syscall down, so that run is in no other median; the last two ' +
    'columns show its CPU per operation beside the measured median. Where the totals differ, the columns show where.', '');
for (const c of cases) {
  const kind = kindOf(c);
  if (kind === 'hold') continue;
  out.push(`### ${c}: per ${OP[kind]} (${operatingPoint(c)})`, '',
    `| server | counted by | all syscalls | ${SYS_GROUPS.map(([, l]) => l).join(' | ')} | CPU per ${OP[kind]} (µs), measured | same, while counting |`,
    `| --- | --- | ---: | ${SYS_GROUPS.map(() => '---:').join(' | ')} | ---: | ---: |`);
  for (const s of servers) {
    if (!all(s, c).length && !passedCounting(s, c).length) continue;
    const tools = [...new Set(passedCounting(s, c).map((r) => r.syscalls))].join(', ');
    out.push(`| ${LABEL[s]} | ${tools || 'not counted'} | ${fmt(med(s, c, 'sys_per_op'))} | ` +
      `${SYS_GROUPS.map(([g]) => fmt(med(s, c, `sys_${g}_per_op`))).join(' | ')} | ${fmt(med(s, c, CPU_KEY[kind]))} | ` +
      `${fmt(countingMed(s, c, CPU_KEY[kind]))} |`);
  }
  out.push('');
}

out.push('## Medians', '');
const ratioServers = servers.filter((s) => s.startsWith('herald'));
const header = `| case | metric | ${servers.map((s) => LABEL[s]).join(' | ')} | ${ratioServers.map((s) => `${LABEL[s]} / floor`).join(' | ')} |`;
for (const c of cases) {
  const kind = kindOf(c);
  out.push(`### ${c}: ${operatingPoint(c)}`, '', header,
    `| --- | --- | ${servers.map(() => '---:').join(' | ')} | ${ratioServers.map(() => '---:').join(' | ')} |`);
  for (const [key, label, lower] of METRICS[kind]) {
    const cells = servers.map((s) => {
      const v = med(s, c, key);
      const n = passed(s, c).length;
      const total = all(s, c).length;
      return fmt(v) + (n < total ? ` (${n}/${total} passed)` : '');
    });
    const ratios = ratioServers.map((s) => (lower === null ? '' : fmt(med(s, c, key) / med('floor', c, key), 2)));
    out.push(`| ${c} | ${label}${lower === true ? ' ↓' : lower === false ? ' ↑' : ''} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`);
  }
  const others = servers.map((s) => {
    const v = all(s, c).map(otherPct).filter(Number.isFinite);
    return v.length ? `${fmt(Math.min(...v), 0)}–${fmt(Math.max(...v), 0)}%` : 'n/a';
  });
  out.push(`| ${c} | other processes' share of the machine (min–max over runs) | ${others.join(' | ')} | ${ratioServers.map(() => '').join(' | ')} |`, '');
}
out.push('↓ lower is better, ↑ higher is better. "load client CPU" near 100% means the one-thread load client, ' +
  'not the server, set the pace of that case.', '');

out.push('## Parameters and machine', '', '| | |', '| --- | --- |');
for (const [k, v] of meta) if (k !== 'title' && k !== 'chart_title') out.push(`| ${k} | ${v.replace(/\|/g, '\\|')} |`);
out.push('');

out.push('## Every run', '',
  'other % = CPU that other processes on the machine used during the measured phase, as a share of the whole machine ' +
    '(2 cores); the server and the load client share the same 2 cores.', '',
  '| run | case | server | status | key result | server CPU | syscalls | load client CPU (s) | other % | wall (s) |',
  '| ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |');
const keyResult = (r) => {
  switch (r.scenario) {
    case 'hold': return `${fmt(Number(r.server_bytes_per_session), 0)} B/session, ${fmt(Number(r.logins_per_s), 0)} logins/s`;
    case 'broadcast': return `${fmt(Number(r.deliveries_per_s), 0)} deliveries/s, p99 ${fmt(Number(r.lat_p99_ms))} ms`;
    case 'unicast': return `${fmt(Number(r.delivered_per_s), 0)} msg/s, p99 ${fmt(Number(r.lat_p99_ms))} ms`;
    case 'churn': return `${fmt(Number(r.cycles_per_s), 0)} cycles/s, RSS ${fmt(Number(r.server_rss_start) / 1048576, 1)} → ${fmt(Number(r.server_rss_end) / 1048576, 1)} MiB`;
    default: return '';
  }
};
const cpuResult = (r) => {
  if (r.scenario === 'hold') return `${fmt(Number(r.login_server_cpu_us_per_login))} µs/login`;
  const op = OP[r.scenario];
  return op ? `${fmt(Number(r[CPU_KEY[r.scenario]]))} µs/${op}` : '';
};
const sysResult = (r) => (r.sys_per_op && r.sys_per_op !== 'n/a' ? `${fmt(Number(r.sys_per_op))}/${OP[r.scenario]}` : '');
for (const r of [...rows].sort((a, b) => a.run - b.run || CASES.indexOf(a.case) - CASES.indexOf(b.case) || SERVERS.indexOf(a.server) - SERVERS.indexOf(b.server))) {
  const ok = r.status === 'PASS';
  out.push(`| ${r.run}${counting(r) ? ' (syscalls)' : ''} | ${r.case} | ${LABEL[r.server] || r.server} | ${ok ? 'PASS' : '**FAIL**'} | ` +
    `${ok ? keyResult(r) : (r.reason || '').replace(/\|/g, '\\|')} | ${ok ? cpuResult(r) : ''} | ${ok ? sysResult(r) : ''} | ` +
    `${ok ? fmt(Number(r.client_cpu_s ?? r.login_client_cpu_s), 2) : ''} | ${fmt(otherPct(r), 0)} | ${fmt(Number(r.wall_s), 1)} |`);
}
out.push('');
if (failures.length) {
  out.push('## Failed runs', '');
  for (const r of failures)
    out.push(`- run ${r.run}, ${r.case}, ${LABEL[r.server] || r.server}: ${r.reason || 'no reason recorded'}` +
      (r.log ? ` (log: \`${r.log}\`)` : ''));
  out.push('');
}
out.push('## How to read this', '',
  'See `benchmarks/README.md`: what each case measures, what the floor is, and the caveats — the server and the load ' +
    'client share the 2 cores, the kernel\'s loopback TCP work dominates the server CPU figures (most of it ' +
    'is "sys" time), syscall counting adds a little kernel time to every syscall, and other processes were running ' +
    'on the machine (their share is in the tables).', '');
writeFileSync(mdPath, out.join('\n'));

// ---- chart: one panel per target, a bar per server (median, min–max whiskers), herald in
// its own colour, the dashed line where herald's target lies.
const PANELS = TARGETS.filter((t) => cases.includes(t.c)).map((t) => ({
  ...t,
  title: t.abs !== undefined
    ? `Idle logged-in session: server RSS (bytes)`
    : `${t.c}: server CPU per ${OP[kindOf(t.c)]} (µs)`,
}));
const COLORS = { floor: '#2b8c3e', herald: '#d7301f', 'herald-2t': '#fc8d59', beast: '#4a6fa5', websocketpp: '#6b8fc7', 'node-ws': '#9fb6dc' };
const base = pngPath.replace(/\.png$/, '');
const gp = [];
const rowsOfPanels = Math.max(1, Math.ceil(PANELS.length / 3));
gp.push(`set terminal pngcairo size 1500,${480 * rowsOfPanels + 30} font "DejaVu Sans,11"`, `set output "${pngPath}"`);
gp.push(`set multiplot layout ${rowsOfPanels},3 title "${(metaGet('chart_title') || title).replace(/"/g, "'")}\\n` +
  `Lower is better in every panel. Bars: median of ${runs} run${runs === 1 ? '' : 's'}; whiskers: min–max; dashed line: herald's target (issue 13)" font ",13"`);
gp.push('set style fill solid 0.9 border -1', 'set boxwidth 0.7', 'set grid ytics lc rgb "#dddddd"', 'unset key',
  'set xrange [-0.6:' + (servers.length - 0.4) + ']', 'set yrange [0:*]', 'set offsets 0,0,graph 0.12,0', 'set tics nomirror',
  `set xtics font ",${servers.length > 5 ? 8 : 9}"`);
PANELS.forEach((p, i) => {
  const dat = `${base}.panel${i}.dat`;
  const lines = servers.map((s, x) => {
    const v = med(s, p.c, p.key);
    const lo = minOf(s, p.c, p.key);
    const hi = maxOf(s, p.c, p.key);
    const ok = Number.isFinite(v);
    return `${x} "${LABEL[s]}" ${ok ? v : 0} ${ok ? lo : 0} ${ok ? hi : 0} ${COLORS[s] ? parseInt(COLORS[s].slice(1), 16) : 0} "${ok ? fmt(v) : 'failed'}"`;
  });
  writeFileSync(dat, lines.join('\n') + '\n');
  const v = verdict(p, 'herald');
  const target = p.abs !== undefined ? p.abs : v.f * p.max;
  const limit = p.abs !== undefined ? `<= ${fmt(p.abs, 0)} B` : `<= ${fmt(p.max, 1)} x floor`;
  const sub = `herald = ${fmt(v.ratio, 2)} x floor; target (dashed) ${limit}: ${v.status}`;
  gp.push(`set title "${p.title}\\n{/*0.85 ${operatingPoint(p.c)}}\\n{/*0.85 ${sub}}" enhanced`);
  gp.push(`plot "${dat}" using 1:3:6:xtic(2) with boxes lc rgb variable, ` +
    `"" using 1:3:4:5 with yerrorbars lc rgb "#222222" pt 7 ps 0, ` +
    `"" using 1:($5):7 with labels offset 0,0.8 font ",10"` +
    (Number.isFinite(target) ? `, ${target} with lines dt 2 lw 2 lc rgb "#333333"` : ''));
});
gp.push('unset multiplot');
const gpPath = `${base}.gp`;
writeFileSync(gpPath, gp.join('\n') + '\n');
let chartOk = true;
try {
  execFileSync('gnuplot', [gpPath], { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (e) {
  chartOk = false;
  console.error(`report: gnuplot failed: ${e.message}`);
}
if (process.env.KEEP_GNUPLOT !== '1') {
  for (let i = 0; i < PANELS.length; ++i) unlinkSync(`${base}.panel${i}.dat`);
  unlinkSync(gpPath);
}
console.log(`report: wrote ${mdPath}${chartOk ? ` and ${pngPath}` : ' (no chart)'}`);
process.exit(chartOk ? 0 : 1);
