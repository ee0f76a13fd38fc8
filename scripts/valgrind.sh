#!/bin/sh
# make valgrind: the whole busted suite on Lua 5.4 under valgrind memcheck (Debian's lua5.4
# running busted; mtmsg and the test modules built with -O1 -g). Zero errors, zero bytes
# definitely lost: --errors-for-leak-kinds=definite makes a definite leak an error, and
# any error makes valgrind exit with 99. Threads run serialized under valgrind, so the
# stress test runs short (MTMSG_STRESS_MESSAGES, default 500 here).
# Last line: "valgrind: PASS ..." or "valgrind: FAIL ...".
SAN_NAME=valgrind
. "$(dirname "$0")/sanenv.sh"
need_pkgs "valgrind"

export VARIANT=-valgrind OPT="-O1 -g"
B=build/$MTMSG_LUAV$VARIANT
rm -rf "$B"
make --no-print-directory -s LUA=$MTMSG_LUAV testmods || { echo "valgrind: FAIL (build)"; exit 1; }

export MTMSG_STRESS_MESSAGES=${MTMSG_STRESS_MESSAGES:-500}
export MTMSG_CHAIN_N=${MTMSG_CHAIN_N:-200000}   # the notifier chain test, shorter under valgrind
# --keep-debuginfo: Lua dlcloses the modules when the state closes, before the leak check
export MTMSG_RUNNER="valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite --keep-debuginfo=yes \
--suppressions=$PWD/scripts/valgrind.supp --fair-sched=yes"
log=$B/valgrind.log
start=$(date +%s)
timeout -k 10 1800 sh tests/run.sh $MTMSG_LUAV >"$log" 2>&1
rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v '^[●◼✱]*$' | tail -n 40
summary=$(tail -n 1 "$log")
reports=$(grep -cE '^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination)|definitely lost in' "$log")
echo "valgrind: $summary, $reports memcheck reports, $(( $(date +%s) - start )) s"
if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then
    echo "valgrind: FAIL (full log in $log)"
    exit 1
fi
echo "valgrind: PASS ($summary; 0 memcheck errors, 0 bytes definitely lost)"
