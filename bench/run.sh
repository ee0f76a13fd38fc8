#!/bin/sh
# make bench: builds what the benchmarks need, runs bench/bench.lua (Lua 5.4) and draws
# docs/bench.png with gnuplot (installed as gnuplot-nox when missing and we are root).
# Writes bench/results.csv (medians, spreads, ratios, targets), bench/results.md (the
# tables of docs/BENCHMARKS.md), bench/machine.txt and bench/plot.dat.
# Environment: BENCH_RUNS (5), BENCH_SCALE (1; e.g. 0.1 for a smoke run), BENCH_ONLY
# (e.g. "S1,S3"; "SW": only the producer sweep), BENCH_SWEEP (its producer counts,
# "1,2,4,8,15"), BENCH_NOSPIN_SWEEP (0: no spin-off rows), BENCH_ALT_CPATH (another
# build of mtmsg to compare with: "-before" rows; make bench-compare), BENCH_TIMEOUT (seconds
# before a hung run is killed, 900), BENCH_EXT (0: not the extension benchmarks, which
# run after the chart: make bench-tables, bench-flow, bench-eventloop).
cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}
LUA_BIN=${LUA_BIN:-lua5.4}

if ! $MAKE --no-print-directory -s LUA=5.4 testmods benchmods >/tmp/mtmsg-bench-build.log 2>&1; then
    cat /tmp/mtmsg-bench-build.log
    echo "bench: build failed" >&2
    exit 1
fi

if ! command -v gnuplot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing gnuplot-nox"
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox \
          || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox; }; } \
          >/tmp/mtmsg-bench-apt.log 2>&1 || echo "bench: could not install gnuplot-nox (see /tmp/mtmsg-bench-apt.log)" >&2
    else
        echo "bench: gnuplot not found; no chart (as root: apt-get install gnuplot-nox)" >&2
    fi
fi

# The machine, for docs/BENCHMARKS.md.
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc: $(nproc)"
    lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Hypervisor vendor|L2 cache|L3 cache):' | sed 's/  */ /g'
    echo "kernel: $(uname -sr)"
    echo "compiler: $(${CC:-cc} --version 2>/dev/null | head -1)"
    echo "lua: $($LUA_BIN -v 2>&1)"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
} >bench/machine.txt

echo "bench: $LUA_BIN bench/bench.lua (runs ${BENCH_RUNS:-5}, scale ${BENCH_SCALE:-1})"
LUA_CPATH="build/5.4/?.so" timeout "${BENCH_TIMEOUT:-900}" $LUA_BIN bench/bench.lua
rc=$?
if [ $rc -ne 0 ]; then
    [ $rc = 124 ] && echo "bench: killed after ${BENCH_TIMEOUT:-900} s (a hang?)" >&2
    echo "bench: failed (exit $rc)" >&2
    exit 1
fi

if command -v gnuplot >/dev/null 2>&1 && [ -s bench/plot.dat ]; then
    mkdir -p docs
    if gnuplot bench/plot.gp 2>/tmp/mtmsg-bench-gnuplot.log; then
        echo "bench: wrote docs/bench.png"
    else
        cat /tmp/mtmsg-bench-gnuplot.log >&2
        echo "bench: gnuplot failed; no chart" >&2
    fi
fi
echo "bench: results in bench/results.csv, bench/results.md; machine in bench/machine.txt"

# The benchmarks of the extensions (docs/BENCHMARKS.md has their sections), printed here;
# BENCH_EXT=0 skips them. Each is also a make target of its own.
if [ "${BENCH_EXT:-1}" != 0 ]; then
    for t in bench-tables bench-flow bench-eventloop; do
        echo "bench: make $t"
        $MAKE --no-print-directory -s $t || echo "bench: make $t failed" >&2
    done
fi
