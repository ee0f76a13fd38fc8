#!/bin/sh
# Entry point for a fresh Debian machine: installs what is missing (make and the C
# compiler included, through scripts/deps.sh), builds mtmsg and runs the examples.
# Needs nothing but a POSIX sh; as root it runs apt-get, otherwise it prints the
# apt-get command to run and stops. With make at hand, `make demo` does the same.
cd "$(dirname "$0")" || exit 1
sh scripts/deps.sh || exit 1
exec make --no-print-directory demo
