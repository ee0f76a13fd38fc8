#!/bin/sh
# make bench-flow: bench/flow.lua (a 3-thread pipeline, bound 64 vs unbounded) on Lua 5.4,
# BENCH_FLOW_RUNS runs (3) of each mode at each size in BENCH_FLOW_SIZES ("100000 400000");
# prints every run and the median throughput / peak RSS per mode and size.
cd "$(dirname "$0")/.." || exit 1
make --no-print-directory -s LUA=5.4 testmods >/tmp/mtmsg-bench-flow.log 2>&1 \
    || { cat /tmp/mtmsg-bench-flow.log; exit 1; }
RUNS=${BENCH_FLOW_RUNS:-3}
SIZES=${BENCH_FLOW_SIZES:-"100000 400000"}
out=$(for n in $SIZES; do for mode in bounded unbounded; do
    r=0; while [ $r -lt "$RUNS" ]; do
        LUA_CPATH="build/5.4/?.so" lua5.4 bench/flow.lua $mode $n || exit 1
        r=$((r + 1))
    done
done; done) || { echo "bench-flow: a run failed"; exit 1; }
echo "mode N seconds msgs/s peak_rss_KiB max_queued"
echo "$out"
echo "--- medians (msgs/s, peak RSS KiB, max queued) ---"
echo "$out" | awk '{ k=$1" "$2; n[k]++; t[k,n[k]]=$4; m[k,n[k]]=$5; q[k]=($6>q[k]?$6:q[k]); keys[k]=1 }
    END { for (k in keys) { c=n[k]; for (i=1;i<=c;i++) { a[i]=t[k,i]; b[i]=m[k,i] }
          for (i=1;i<=c;i++) for (j=i+1;j<=c;j++) { if (a[j]<a[i]) {x=a[i];a[i]=a[j];a[j]=x} if (b[j]<b[i]) {x=b[i];b[i]=b[j];b[j]=x} }
          printf "%s %.0f %d %d\n", k, a[int((c+1)/2)], b[int((c+1)/2)], q[k] } }' | sort
