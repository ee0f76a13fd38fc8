#!/bin/sh
# Profiles of the S1, S2 and S3 paths (docs/BENCHMARKS.md, "Where the time goes").
#   S1: instructions per addmsg+nextmsg pair and per floor pair (valgrind callgrind; the
#       call tree is in $OUT/callgrind.s1.*, read it with callgrind_annotate --inclusive=yes
#       --tree=calling); S2/S3/S4: futex system calls and CPU time (perf stat), and a
#       sampled profile of S2 ($OUT/perf.s2.data; perf report --sort pid,dso,sym).
# Hardware counters are not needed (VMs often lack them). OUT defaults to /tmp/mtmsg-prof.
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/mtmsg-prof}
mkdir -p "$OUT"
make --no-print-directory -s LUA=5.4 testmods benchmods || exit 1
export LUA_CPATH="build/5.4/?.so"
N=100000
if command -v valgrind >/dev/null 2>&1; then
    base=$(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.s1.empty" \
           lua5.4 bench/prof/s1.lua 0 mtmsg 2>&1 | sed -n 's/.*Collected : //p')
    for w in mtmsg floor; do
        ir=$(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.s1.$w" \
             lua5.4 bench/prof/s1.lua $N $w 2>&1 | sed -n 's/.*Collected : //p')
        echo "S1 $w: $(( (ir - base) / N )) instructions per pair ($OUT/callgrind.s1.$w)"
    done
else
    echo "profile: valgrind not found, no instruction counts" >&2
fi
if command -v perf >/dev/null 2>&1; then
    for s in "S2 1000000" "S3 100000" "S4 1000000"; do
        echo "== $s (mtmsg side only)"
        perf stat -x, -e syscalls:sys_enter_futex,context-switches,task-clock \
            lua5.4 bench/prof/mt.lua $s 2>&1 | awk -F, '/^S[0-9]/ {print; next}
            NF > 2 {printf "  %s %s\n", $3, $1}'
    done
    perf record -q -F 5000 -g -o "$OUT/perf.s2.data" lua5.4 bench/prof/mt.lua S2 1000000 \
        >/dev/null 2>&1 && echo "sampled profile of S2: $OUT/perf.s2.data"
else
    echo "profile: perf not found" >&2
fi
