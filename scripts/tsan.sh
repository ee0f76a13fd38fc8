#!/bin/sh
# make tsan: the multi-threaded specs (every spec that starts threads, the stress test
# included) on Lua 5.4 under ThreadSanitizer (clang; module and test modules
# instrumented, Debian's liblua not: each lua_State is used by one thread only).
# MTMSG_STRESS_SECONDS=n makes the stress part a long run. Zero reports required.
# Last line: "tsan: PASS ..." or "tsan: FAIL ...".
SAN_NAME=tsan
. "$(dirname "$0")/sanenv.sh"
need_pkgs "clang libclang-rt-14-dev"

SAN="-fsanitize=thread"
# TSAN_VARIANT, TSAN_EXTRA_CFLAGS: another sync backend (scripts/ports.sh c11)
export VARIANT=-tsan${TSAN_VARIANT:-} CC="$CLANG" OPT="-O1 -g -fno-omit-frame-pointer" \
       EXTRA_CFLAGS="$SAN ${TSAN_EXTRA_CFLAGS:-}" EXTRA_LDFLAGS="$SAN"
B=build/$MTMSG_LUAV$VARIANT
rm -rf "$B"
make --no-print-directory -s LUA=$MTMSG_LUAV testmods || { echo "tsan: FAIL (build)"; exit 1; }
build_host "$B" "$SAN"

# The specs that start threads (testthread or native threads of the C API probe).
SPECS=${TSAN_SPECS:-$(grep -lE 'testthread|H\.thread|capiprobe' tests/*_spec.lua | tr '\n' ' ')}
export SPECS
export MTMSG_CHAIN_N=${MTMSG_CHAIN_N:-200000}   # the notifier chain test, shorter under TSan
# halt_on_error=0: report every race, the exit code fails the run (checked below too).
export TSAN_OPTIONS="halt_on_error=0:exitcode=66:allocator_may_return_null=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp"

log=$B/tsan.log
start=$(date +%s)
# (timeout: a hang, ours or of the sanitizer runtime, fails the check instead of stalling)
limit=$((900 + 4 * ${MTMSG_STRESS_SECONDS:-0}))
MTMSG_LUA=$B/luahost timeout -k 10 $limit sh tests/run.sh $MTMSG_LUAV >"$log" 2>&1
rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v '^[●◼✱]*$' | tail -n 40
summary=$(tail -n 1 "$log")
reports=$(grep -c 'WARNING: ThreadSanitizer' "$log")
echo "tsan: specs: $SPECS"
echo "tsan: $summary, $reports ThreadSanitizer reports, $(( $(date +%s) - start )) s"
if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then
    echo "tsan: FAIL (full log in $log)"
    exit 1
fi
echo "tsan: PASS ($summary; 0 ThreadSanitizer reports)"
