// report.mjs: turns the RESULT lines of a run_suite.sh run into the Markdown report and the
// gnuplot chart. run_suite.sh calls it; it can be re-run on a kept .results.txt:
//
//   node benchmarks/report.mjs RESULTS.txt META.txt OUT.md OUT.png
//
// RESULTS.txt: one line per load_client run, "run=R server=S wall_s=T <the RESULT fields>"
// (status=FAIL lines carry reason="..."). META.txt: "key<TAB>value" lines about the machine
// and the parameters. Writes OUT.md, and OUT.png through gnuplot (its data and script go
// next to OUT.png as .dat and .gp files, then are deleted unless KEEP_GNUPLOT=1).
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';

const [resultsPath, metaPath, mdPath, pngPath] = process.argv.slice(2);
if (!pngPath) {
  console.error('usage: node report.mjs RESULTS.txt META.txt OUT.md OUT.png');
  process.exit(2);
}

const SERVERS = ['herald', 'herald-2t', 'beast', 'websocketpp', 'node-ws'];
const LABEL = { herald: 'herald', 'herald-2t': 'herald --threads 2', beast: 'Boost.Beast', websocketpp: 'websocketpp', 'node-ws': 'Node ws' };
const SCENARIOS = ['hold', 'broadcast', 'unicast', 'churn'];

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
const runs = Math.max(0, ...rows.map((r) => Number(r.run) || 0));

// ---- statistics
const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};
const passed = (server, scenario) =>
  rows.filter((r) => r.server === server && r.scenario === scenario && r.status === 'PASS');
const all = (server, scenario) => rows.filter((r) => r.server === server && r.scenario === scenario);
const values = (server, scenario, key) =>
  passed(server, scenario)
    .map((r) => Number(r[key]))
    .filter((v) => Number.isFinite(v));
const med = (server, scenario, key) => median(values(server, scenario, key));
const minOf = (server, scenario, key) => Math.min(...values(server, scenario, key));
const maxOf = (server, scenario, key) => Math.max(...values(server, scenario, key));
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
const fmtRatio = (v) => (Number.isFinite(v) ? `${fmt(v, v >= 10 ? 1 : 2)}x` : 'n/a');

// ---- the metrics, per scenario: [key, label, lower is better?]
const METRICS = {
  hold: [
    ['server_bytes_per_session', 'server RSS per idle session (bytes)', true],
    ['logins_per_s', 'logins/s (connect+handshake+login)', false],
    ['login_server_cpu_us_per_login', 'server CPU per login (µs)', true],
    ['login_p99_ms', 'login p99 (ms)', true],
  ],
  broadcast: [
    ['server_cpu_us_per_delivery', 'server CPU per delivery (µs)', true],
    ['deliveries_per_s', 'deliveries/s', false],
    ['lat_p50_ms', 'latency p50 (ms)', true],
    ['lat_p99_ms', 'latency p99 (ms)', true],
    ['lat_max_ms', 'latency max (ms)', true],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
  unicast: [
    ['server_cpu_us_per_message', 'server CPU per message (µs)', true],
    ['delivered_per_s', 'messages/s', false],
    ['lat_p50_ms', 'latency p50 (ms)', true],
    ['lat_p99_ms', 'latency p99 (ms)', true],
    ['lat_max_ms', 'latency max (ms)', true],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
  churn: [
    ['server_cpu_us_per_cycle', 'server CPU per cycle (µs)', true],
    ['cycles_per_s', 'cycles/s', false],
    ['cycle_p99_ms', 'cycle p99 (ms)', true],
    ['server_rss_start', 'server RSS at start (bytes)', null],
    ['server_rss_end', 'server RSS at end (bytes)', null],
    ['server_rss_growth_per_cycle', 'RSS growth per cycle (bytes)', null],
    ['client_cpu_pct', 'load client CPU (% of a core)', null],
  ],
};

// ---- the targets (herald vs Beast, and latency vs the best peer)
const TARGETS = [
  { scenario: 'broadcast', key: 'server_cpu_us_per_delivery', ratio: 1 / 12, text: 'broadcast: server CPU per delivery <= 1/12 of Beast' },
  { scenario: 'hold', key: 'server_bytes_per_session', ratio: 1 / 10, text: 'memory per idle session <= 1/10 of Beast' },
  { scenario: 'unicast', key: 'server_cpu_us_per_message', ratio: 1 / 2, text: 'unicast: server CPU per message <= 1/2 of Beast' },
  { scenario: 'churn', key: 'server_cpu_us_per_cycle', ratio: 2 / 3, text: 'connect+handshake+login+close: server CPU per cycle <= 2/3 of Beast' },
  { scenario: 'broadcast', key: 'lat_p99_ms', best: true, text: 'broadcast latency p99 no worse than the best peer' },
  { scenario: 'unicast', key: 'lat_p99_ms', best: true, text: 'unicast latency p99 no worse than the best peer' },
];
function verdict(t) {
  const h = med('herald', t.scenario, t.key);
  if (t.best) {
    const peers = servers.filter((s) => !s.startsWith('herald')).map((s) => [s, med(s, t.scenario, t.key)]).filter(([, v]) => Number.isFinite(v));
    if (!Number.isFinite(h) || !peers.length) return { status: 'no data', detail: 'missing runs' };
    const [bs, bv] = peers.reduce((a, b) => (b[1] < a[1] ? b : a));
    return {
      status: h <= bv ? 'MET' : 'NOT MET',
      detail: `herald ${fmt(h)} ms, best peer ${LABEL[bs]} ${fmt(bv)} ms (herald/best = ${fmtRatio(h / bv)})`,
    };
  }
  const b = med('beast', t.scenario, t.key);
  if (!Number.isFinite(h) || !Number.isFinite(b)) return { status: 'no data', detail: 'missing runs' };
  const r = h / b;
  return {
    status: r <= t.ratio ? 'MET' : 'NOT MET',
    detail: `herald ${fmt(h)}, Beast ${fmt(b)}: herald/Beast = ${fmt(r, 3)} (target <= ${fmt(t.ratio, 3)}; Beast/herald = ${fmtRatio(b / h)})`,
  };
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
out.push(
  `Every server speaks uid_push_server's protocol on **one thread**` +
    (servers.includes('herald-2t') ? ` (except "herald --threads 2": the multi_thread policy on two)` : '') +
    `; a fresh server process per run; ` +
    `medians of ${runs} run${runs === 1 ? '' : 's'} per server and scenario (interleaved: run r of every server ` +
    `before run r+1). Ratios are to Boost.Beast measured in the same suite; for "lower is better" rows a ratio ` +
    `below 1 means herald uses less. Chart: \`${basename(pngPath)}\`.`,
  '',
);

out.push('## Targets (herald vs Beast)', '', '| target | verdict | numbers |', '| --- | --- | --- |');
for (const t of TARGETS) {
  const v = verdict(t);
  out.push(`| ${t.text} | **${v.status}** | ${v.detail} |`);
}
out.push('');

out.push('## Medians', '');
const header = `| scenario | metric | ${servers.map((s) => LABEL[s]).join(' | ')} | herald/Beast |`;
for (const sc of SCENARIOS) {
  if (!servers.some((s) => all(s, sc).length)) continue;
  out.push(`### ${sc}`, '', header, `| --- | --- | ${servers.map(() => '---:').join(' | ')} | ---: |`);
  for (const [key, label, lower] of METRICS[sc]) {
    const cells = servers.map((s) => {
      const v = med(s, sc, key);
      const n = passed(s, sc).length;
      const total = all(s, sc).length;
      return fmt(v) + (n < total ? ` (${n}/${total} passed)` : '');
    });
    const h = med('herald', sc, key);
    const b = med('beast', sc, key);
    const ratio = lower === null ? '' : fmt(h / b, 3);
    out.push(`| ${sc} | ${label}${lower === true ? ' ↓' : lower === false ? ' ↑' : ''} | ${cells.join(' | ')} | ${ratio} |`);
  }
  const others = servers.map((s) => {
    const v = all(s, sc).map(otherPct).filter(Number.isFinite);
    return v.length ? `${fmt(Math.min(...v), 0)}–${fmt(Math.max(...v), 0)}%` : 'n/a';
  });
  out.push(`| ${sc} | other processes' share of the machine (min–max over runs) | ${others.join(' | ')} | |`, '');
}
out.push('↓ lower is better, ↑ higher is better.', '');

out.push('## Parameters and machine', '', '| | |', '| --- | --- |');
for (const [k, v] of meta) if (k !== 'title' && k !== 'chart_title') out.push(`| ${k} | ${v.replace(/\|/g, '\\|')} |`);
out.push('');

out.push('## Every run', '',
  'other % = CPU that other processes on the machine used during the measured phase, as a share of the whole machine ' +
    '(2 cores); the server and the load client share the same 2 cores.', '',
  '| run | scenario | server | status | key result | server CPU | load client CPU (s) | other % | wall (s) |',
  '| ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: |');
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
  switch (r.scenario) {
    case 'hold': return `${fmt(Number(r.login_server_cpu_us_per_login))} µs/login`;
    case 'broadcast': return `${fmt(Number(r.server_cpu_us_per_delivery))} µs/delivery`;
    case 'unicast': return `${fmt(Number(r.server_cpu_us_per_message))} µs/message`;
    case 'churn': return `${fmt(Number(r.server_cpu_us_per_cycle))} µs/cycle`;
    default: return '';
  }
};
for (const r of [...rows].sort((a, b) => a.run - b.run || SCENARIOS.indexOf(a.scenario) - SCENARIOS.indexOf(b.scenario) || SERVERS.indexOf(a.server) - SERVERS.indexOf(b.server))) {
  const ok = r.status === 'PASS';
  out.push(`| ${r.run} | ${r.scenario} | ${LABEL[r.server] || r.server} | ${ok ? 'PASS' : '**FAIL**'} | ` +
    `${ok ? keyResult(r) : (r.reason || '').replace(/\|/g, '\\|')} | ${ok ? cpuResult(r) : ''} | ` +
    `${ok ? fmt(Number(r.client_cpu_s ?? r.login_client_cpu_s), 2) : ''} | ${fmt(otherPct(r), 0)} | ${fmt(Number(r.wall_s), 1)} |`);
}
out.push('');
if (failures.length) {
  out.push('## Failed runs', '');
  for (const r of failures)
    out.push(`- run ${r.run}, ${r.scenario}, ${LABEL[r.server] || r.server}: ${r.reason || 'no reason recorded'}` +
      (r.log ? ` (log: \`${r.log}\`)` : ''));
  out.push('');
}
out.push('## How to read this', '',
  'See `benchmarks/README.md`: what each scenario measures, and the caveats — the server and the load ' +
    'client share the 2 cores, the kernel\'s loopback TCP work dominates the server CPU figures (most of it ' +
    'is "sys" time), and other processes were running on the machine (their share is in the tables).', '');
writeFileSync(mdPath, out.join('\n'));

// ---- chart: one panel per target metric, a bar per server (median, min–max whiskers),
// herald in its own colour, the dashed line where herald's target lies.
const PANELS = [
  { scenario: 'broadcast', key: 'server_cpu_us_per_delivery', title: 'Broadcast: server CPU per delivery (µs)', ratio: 1 / 12, tlabel: '1/12 of Beast' },
  { scenario: 'hold', key: 'server_bytes_per_session', title: 'Idle session: server memory (bytes)', ratio: 1 / 10, tlabel: '1/10 of Beast' },
  { scenario: 'unicast', key: 'server_cpu_us_per_message', title: 'Unicast: server CPU per message (µs)', ratio: 1 / 2, tlabel: '1/2 of Beast' },
  { scenario: 'churn', key: 'server_cpu_us_per_cycle', title: 'Connect+login+close: server CPU per cycle (µs)', ratio: 2 / 3, tlabel: '2/3 of Beast' },
  { scenario: 'broadcast', key: 'lat_p99_ms', title: 'Broadcast: latency p99 (ms)', best: true, tlabel: 'the best peer' },
  { scenario: 'unicast', key: 'lat_p99_ms', title: 'Unicast: latency p99 (ms)', best: true, tlabel: 'the best peer' },
];
const COLORS = { herald: '#d7301f', 'herald-2t': '#fc8d59', beast: '#4a6fa5', websocketpp: '#6b8fc7', 'node-ws': '#9fb6dc' };
const base = pngPath.replace(/\.png$/, '');
const gp = [];
gp.push(`set terminal pngcairo size 1500,950 font "DejaVu Sans,11"`, `set output "${pngPath}"`);
gp.push(`set multiplot layout 2,3 title "${(metaGet('chart_title') || title).replace(/"/g, "'")}\\n` +
  `Lower is better in every panel. Bars: median of ${runs} run${runs === 1 ? '' : 's'}; whiskers: min–max; dashed line: herald's target" font ",13"`);
gp.push('set style fill solid 0.9 border -1', 'set boxwidth 0.7', 'set grid ytics lc rgb "#dddddd"', 'unset key',
  'set xrange [-0.6:' + (servers.length - 0.4) + ']', 'set yrange [0:*]', 'set offsets 0,0,graph 0.12,0', 'set tics nomirror');
PANELS.forEach((p, i) => {
  const dat = `${base}.panel${i}.dat`;
  const lines = servers.map((s, x) => {
    const v = med(s, p.scenario, p.key);
    const lo = minOf(s, p.scenario, p.key);
    const hi = maxOf(s, p.scenario, p.key);
    const ok = Number.isFinite(v);
    return `${x} "${LABEL[s]}" ${ok ? v : 0} ${ok ? lo : 0} ${ok ? hi : 0} ${COLORS[s] ? parseInt(COLORS[s].slice(1), 16) : 0} "${ok ? fmt(v) : 'failed'}"`;
  });
  writeFileSync(dat, lines.join('\n') + '\n');
  let target = NaN;
  if (p.best) {
    const peers = servers.filter((s) => !s.startsWith('herald')).map((s) => med(s, p.scenario, p.key)).filter(Number.isFinite);
    if (peers.length) target = Math.min(...peers);
  } else {
    target = med('beast', p.scenario, p.key) * p.ratio;
  }
  // Second title line: how herald compares, so the panel reads without the table.
  const h = med('herald', p.scenario, p.key);
  const ref = p.best ? target : med('beast', p.scenario, p.key);
  let line2 = `target (dashed): herald <= ${p.tlabel}`;
  if (Number.isFinite(h) && Number.isFinite(ref) && Number.isFinite(target))
    line2 = p.best
      ? `herald = ${fmt(h / ref, 2)} x the best peer; target (dashed) <= 1: ${h <= target ? 'met' : 'NOT met'}`
      : `herald = ${fmt(h / ref, 3)} x Beast; target (dashed) <= ${p.tlabel.replace(' of Beast', '')}: ${h <= target ? 'met' : 'NOT met'}`;
  gp.push(`set title "${p.title}\\n{/*0.85 ${line2}}" enhanced`);
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
