# mtmsg: build, test and check targets.
#   make                 build mtmsg.so for Lua 5.4 (also build/5.4/mtmsg.so)
#   make LUA=5.1|5.2|5.3|5.4|luajit   build for another Lua (build/$(LUA)/)
#   make test            run the test suite on all five Lua versions
#   make check           run the test suite on $(LUA) only
#   make demo            build and run the examples
#   make deps            install the Debian packages the targets need
#   make asan tsan valgrind fuzz bench     see docs/RELIABILITY.md, docs/BENCHMARKS.md

# Lua version to build for: 5.1, 5.2, 5.3, 5.4 or luajit
LUA ?= 5.4
ifeq ($(LUA),luajit)
# Where lua.h is (Debian layout by default)
LUA_INCDIR ?= /usr/include/luajit-2.1
# The interpreter that runs the tests and examples
LUA_BIN ?= luajit
else
LUA_INCDIR ?= /usr/include/lua$(LUA)
LUA_BIN ?= lua$(LUA)
endif
LUA_VERSIONS = 5.1 5.2 5.3 5.4 luajit

# The version lives in the rockspec only (its MTMSG_VERSION define).
ROCKSPEC = rockspecs/mtmsg-scm-0.rockspec
MTMSG_VERSION := $(shell sed -n "s/.*'MTMSG_VERSION=\"\([^\"]*\)\"'.*/\1/p" $(ROCKSPEC))

# Compiler and flags; override CC/CFLAGS/LDFLAGS freely (make CC=clang CFLAGS=-O0)
CC ?= cc
OPT ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wundef -Wmissing-prototypes -Wstrict-prototypes \
       -Wcast-qual -Wpointer-arith -Wwrite-strings -Wno-unused-parameter
CFLAGS ?= $(OPT)
ALL_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) \
             -I$(LUA_INCDIR) -Isrc -Iinclude -DMTMSG_VERSION='"$(MTMSG_VERSION)"' $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=
ALL_LDFLAGS = -shared -pthread $(LDFLAGS) $(EXTRA_LDFLAGS)

BUILD = build/$(LUA)$(VARIANT)
SRCS = $(sort $(wildcard src/*.c))
HDRS = $(wildcard src/*.h include/*.h)
OBJS = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
# Test-only C modules (thread helper, carray provider, C API probe): tests/mod/<name>.c
TESTMODS = $(patsubst tests/mod/%.c,$(BUILD)/%.so,$(wildcard tests/mod/*.c))
# Benchmark C modules: bench/mod/<name>.c
BENCHMODS = $(patsubst bench/mod/%.c,$(BUILD)/%.so,$(wildcard bench/mod/*.c))

.PHONY: all lib testmods benchmods test check demo deps asan tsan valgrind fuzz bench clean

all: lib
ifeq ($(LUA)$(VARIANT),5.4)
	cp $(BUILD)/mtmsg.so mtmsg.so
endif

lib: $(BUILD)/mtmsg.so

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/mtmsg.so: $(OBJS)
	$(CC) $(OBJS) -o $@ $(ALL_LDFLAGS)

$(BUILD)/%.so: tests/mod/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDFLAGS)

$(BUILD)/%.so: bench/mod/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDFLAGS)

testmods: lib $(TESTMODS)
benchmods: lib $(BENCHMODS)

# The whole suite on every Lua version; prints "N passed, M failed" last.
test: deps
	@sh tests/run.sh $(LUA_VERSIONS)

# The suite on $(LUA) only.
check: testmods
	@sh tests/run.sh $(LUA)

demo: deps
	@$(MAKE) --no-print-directory testmods
	@sh examples/run.sh $(LUA)

deps:
	@sh scripts/deps.sh

clean:
	rm -rf build mtmsg.so

# Reliability and speed (see docs/RELIABILITY.md and docs/BENCHMARKS.md)
#   make asan        suite under ASan+UBSan+LSan, then failalloc under ASan
#   make tsan        threaded specs + stress under TSan (MTMSG_STRESS_SECONDS=n: long)
#   make valgrind    suite under memcheck
#   make fuzz        each libFuzzer target FUZZ_SECONDS (default 10) from its corpus
#   make apifuzz     the Lua API fuzzer under ASan+UBSan and TSan, APIFUZZ_SECONDS each
#                    (APIFUZZ_CONFIGS="asan asan-5.1 asan-luajit tsan plain-5.3" picks)
#   make failalloc   allocation-failure injection alone (FAILALLOC=plain: no sanitizer)
#   make stress      the stress spec alone, long (MTMSG_STRESS_SECONDS, default 60)
.PHONY: failalloc stress apifuzz
asan:
	@sh scripts/asan.sh
tsan:
	@sh scripts/tsan.sh
valgrind:
	@sh scripts/valgrind.sh
fuzz:
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)
failalloc:
	@sh scripts/failalloc.sh $(FAILALLOC)
apifuzz:
	@sh scripts/apifuzz.sh $(APIFUZZ_CONFIGS)
stress: testmods
	@MTMSG_STRESS_SECONDS=$${MTMSG_STRESS_SECONDS:-60} SPECS=tests/stress_spec.lua sh tests/run.sh $(LUA)
bench:
	@sh bench/run.sh
