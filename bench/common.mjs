// Shared by the bench/*.mjs scripts: tests/browser's harness (installed on
// first use), the seed's Node server, percentiles, and /proc readings (CPU of
// a whole process tree, RSS, the machine's own busy time).

import { execSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BROWSER_TESTS = join(ROOT, 'tests', 'browser');
export const log = (s) => process.stderr.write(`${s}\n`);

// ------------------------------------------------------------ dependencies

/** tests/browser/harness.mjs, after `npm ci` there if its packages are missing. */
export async function loadHarness() {
  if (!existsSync(join(BROWSER_TESTS, 'node_modules', 'playwright-core'))) {
    log('# npm ci in tests/browser');
    execSync('npm ci --no-audit --no-fund --loglevel=error', { cwd: BROWSER_TESTS, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return import(join(BROWSER_TESTS, 'harness.mjs'));
}

/**
 * The seed server's directory, ready to run: SEED_SERVER_DIR (default
 * ../shared/bench/seed-server, read only) copied to SEED_BENCH_DIR (default
 * $TMPDIR/seed-bench) with its npm dependencies installed, as compare.sh does.
 */
export function seedServerDir() {
  const src = resolve(process.env.SEED_SERVER_DIR ?? join(ROOT, '..', 'shared', 'bench', 'seed-server'));
  const work = resolve(process.env.SEED_BENCH_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'seed-bench'));
  if (!existsSync(join(work, 'node_modules', 'socket.io'))) {
    if (!existsSync(join(src, 'server.js'))) throw new Error(`no seed server at ${src}/server.js (set SEED_SERVER_DIR)`);
    log(`# installing the seed server in ${work}`);
    mkdirSync(work, { recursive: true });
    for (const f of readdirSync(src)) {
      if (/^package(-lock)?\.json$|\.m?js$/.test(f)) copyFileSync(join(src, f), join(work, f));
    }
    execSync('npm ci --no-audit --no-fund --loglevel=error', { cwd: work, stdio: ['ignore', 'inherit', 'inherit'] });
  } else if (!existsSync(join(work, 'server.js'))) {
    copyFileSync(join(src, 'server.js'), join(work, 'server.js'));
  }
  return work;
}

// ------------------------------------------------------------ statistics

/** Nearest-rank percentile of a sorted array. */
export function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

export function summarize(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  const r = (x) => (x === null ? null : Math.round(x * 10) / 10);
  return { p50: r(pct(v, 50)), p95: r(pct(v, 95)), min: r(v[0] ?? null), max: r(v.at(-1) ?? null), n: v.length };
}

// ------------------------------------------------------------------ /proc

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const read = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // the process is gone
  }
};

/** {comm, ppid, ticks: utime+stime, start} of one process, or null. */
export function procStat(pid) {
  const s = read(`/proc/${pid}/stat`);
  if (!s) return null;
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const close = s.lastIndexOf(')');
  const f = s.slice(close + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
  return { comm: s.slice(s.indexOf('(') + 1, close), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), start: Number(f[19]) };
}

/** The pid and all its descendants (through every thread's children list). */
export function processTree(pid) {
  const out = [];
  const todo = [pid];
  const seen = new Set();
  while (todo.length) {
    const p = todo.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    const tasks = (() => {
      try {
        return readdirSync(`/proc/${p}/task`);
      } catch {
        return null;
      }
    })();
    if (!tasks) continue;
    out.push(p);
    for (const t of tasks) {
      const c = read(`/proc/${p}/task/${t}/children`);
      if (c) for (const k of c.trim().split(/\s+/).filter(Boolean)) todo.push(Number(k));
    }
  }
  return out;
}

/** A process's name for the record: its comm, plus Chromium's --type (renderer, gpu-process, utility:...). */
export function procLabel(pid, comm) {
  const cmd = read(`/proc/${pid}/cmdline`);
  if (!cmd) return comm;
  // Chromium rewrites its children's command lines (setproctitle): one
  // space-separated string instead of NUL-separated arguments.
  const args = cmd.split(/[\0 ]/);
  const type = args.find((a) => a.startsWith('--type='))?.slice(7);
  if (!type) return comm;
  const sub = args.find((a) => a.startsWith('--utility-sub-type='))?.slice(19).split('.').at(-1);
  return `${comm}:${type}${sub ? `:${sub}` : ''}`;
}

/**
 * CPU time of a process tree over a window, robust to processes that come
 * and go: `sample()` (call it every second or so) remembers each process's
 * latest utime+stime, keyed by pid and start time; `seconds()` is the sum of
 * the increase since the first sample (a process first seen later counts
 * from zero: it started inside the window). A process that exits between
 * two samples loses at most one interval of its time. Threads are sampled
 * the same way, for a breakdown by process type and thread name.
 */
export class TreeCpu {
  constructor(rootPid) {
    this.root = rootPid;
    this.procs = new Map(); // key -> {first, last, label}
    this.threads = new Map(); // key -> {first, last, label}
    this.started = false;
  }

  #note(map, key, ticks, label) {
    const e = map.get(key);
    if (e) e.last = ticks;
    else map.set(key, { first: this.started ? 0 : ticks, last: ticks, label });
  }

  sample() {
    for (const pid of processTree(this.root)) {
      const st = procStat(pid);
      if (!st) continue;
      const key = `${pid}/${st.start}`;
      const label = this.procs.get(key)?.label ?? procLabel(pid, st.comm);
      this.#note(this.procs, key, st.ticks, label);
      let tids = [];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue;
      }
      for (const tid of tids) {
        const t = procStat(`${pid}/task/${tid}`);
        if (t) this.#note(this.threads, `${key}/${tid}/${t.start}`, t.ticks, `${label} / ${t.comm}`);
      }
    }
    this.started = true;
  }

  seconds() {
    let t = 0;
    for (const e of this.procs.values()) t += e.last - e.first;
    return t / CLK_TCK;
  }

  static #group(map, top) {
    const m = {};
    for (const e of map.values()) m[e.label] = (m[e.label] ?? 0) + (e.last - e.first) / CLK_TCK;
    return Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, top);
  }

  /** [label, seconds] per process type, largest first. */
  byProcess(top = 20) {
    return TreeCpu.#group(this.procs, top);
  }

  /** [label, seconds] per process type and thread name, largest first. */
  byThread(top = 12) {
    return TreeCpu.#group(this.threads, top);
  }

  processes() {
    return this.procs.size;
  }
}

/** The machine's busy and total CPU seconds so far (all cores), from /proc/stat. */
export function machineCpu() {
  const line = read('/proc/stat').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest* are inside user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / CLK_TCK, total: (busy + idle + iowait) / CLK_TCK };
}

/** Bytes received so far on the loopback interface (every process's loopback traffic). */
export function loopbackBytes() {
  const m = /^\s*lo:\s*(\d+)/m.exec(read('/proc/net/dev') ?? '');
  return m ? Number(m[1]) : null;
}

/** VmRSS of one process in KiB, or null. */
export function rssKb(pid) {
  const s = read(`/proc/${pid}/status`);
  const m = s && /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
  return m ? Number(m[1]) : null;
}

/** Direct children of `pid` (all its threads'). */
export function childrenOf(pid) {
  return processTree(pid).filter((p) => procStat(p)?.ppid === pid);
}

/** A short description of the machine, for the record. */
export function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(read('/proc/cpuinfo') ?? '')?.[1] ?? '?';
  const cores = (read('/proc/cpuinfo') ?? '').split('\n').filter((l) => l.startsWith('processor')).length;
  const mem = /MemTotal:\s+(\d+)/.exec(read('/proc/meminfo') ?? '')?.[1];
  const load = (read('/proc/loadavg') ?? '').split(' ').slice(0, 3).join(' ');
  return { cpu, cores, mem_gib: mem ? Math.round(Number(mem) / 1048576) : null, loadavg: load };
}
