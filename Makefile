# kafka-ws-proxy: plain Makefile, objects under build/ (build-<sanitizer>/ for
# sanitized builds). Targets: all run test unit e2e bench bench-compare fuzz
# format format-check clean setup.

CC       ?= cc
OPT      ?= -O2 -g
WARN     ?= -Wall -Wextra -Wno-unused-parameter
SANITIZER ?=
PYTHON   ?= python3

PKGS     := libuv rdkafka jansson avro-c libcurl
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

ifeq ($(SANITIZER),)
BUILD    ?= build
SANFLAGS :=
else ifeq ($(SANITIZER),address)
BUILD    ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SANITIZER),undefined)
BUILD    ?= build-ubsan
SANFLAGS := -fsanitize=undefined -fno-sanitize-recover=undefined
else ifeq ($(SANITIZER),thread)
BUILD    ?= build-tsan
SANFLAGS := -fsanitize=thread
else
$(error SANITIZER must be address, undefined or thread)
endif
ifneq ($(CI),)
WERROR   := -Werror
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(WERROR) $(SANFLAGS) -I. -I$(LLHTTP_INC) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)
LIBS_ALL   := $(PKG_LIBS) -lcrypto -lpthread -lm

# Every .c under the library folders, at any depth (core/net, codec/json, ...).
LIB_DIRS := core codec auth session commit
LIB_SRC  := $(sort $(shell find $(LIB_DIRS) -name '*.c' 2>/dev/null))
CODEC_SRC := $(sort $(shell find codec -name '*.c'))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LLHTTP_OBJ := $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o $(BUILD)/llhttp/llhttp.o
UNIT_SRC := $(sort $(wildcard test/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
BIN      := $(BUILD)/kafka-ws-proxy
UNIT_BIN := $(BUILD)/unit-tests
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FORMAT_SRC := $(sort $(shell find $(LIB_DIRS) -name '*.[ch]' 2>/dev/null) $(wildcard cmd/*.c test/*.h test/unit/*.[ch] bench/*.c test/fuzz/*.c))

.PHONY: all run test unit unit-asan e2e bench bench-compare fuzz format format-check clean setup

all: $(BIN) $(UNIT_BIN)

setup:
	@bash test/setup.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) $(SANFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@

$(BIN): $(BUILD)/cmd/main.o $(LIB_OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(UNIT_BIN): $(UNIT_OBJ) $(LIB_OBJ) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDFLAGS_ALL) $(LIBS_ALL)

# Dev mode: embedded in-process Kafka-protocol cluster, echo endpoint on.
run: setup-build $(BIN)
	@echo
	@echo "kafka-ws-proxy (dev mode) on ws://127.0.0.1:$${WSPROXY_PORT:-8078}"
	@echo "  health:  curl -s http://127.0.0.1:$${WSPROXY_PORT:-8078}/healthcheck"
	@echo "  brokers: curl -s http://127.0.0.1:$${WSPROXY_PORT:-8078}/kafka/cluster/info"
	@echo "  echo:    python3 -c \"import websocket; w=websocket.create_connection('ws://127.0.0.1:$${WSPROXY_PORT:-8078}/echo'); w.send('hi'); print(w.recv())\""
	@echo "           (or: wscat -c ws://127.0.0.1:$${WSPROXY_PORT:-8078}/echo)"
	@echo "  produce: python3 -c \"import websocket; w=websocket.create_connection('ws://127.0.0.1:$${WSPROXY_PORT:-8078}/socket/in?clientId=me&topic=demo'); w.send('{\\\"value\\\":{\\\"value\\\":\\\"hello\\\"}}'); print(w.recv())\""
	@echo
	WSPROXY_ECHO_ENDPOINT_ENABLED=$${WSPROXY_ECHO_ENDPOINT_ENABLED:-true} ./$(BIN) --dev

.PHONY: setup-build
setup-build:
	@bash test/setup.sh --build-only

# Unit tests (plain and ASan+UBSan), then the end-to-end suite against a real
# Kafka broker started by the harness, then the e2e suite on the ASan build.
test: setup
	$(MAKE) all
	./$(UNIT_BIN)
	$(MAKE) SANITIZER=address all
	ASAN_OPTIONS=detect_leaks=1 ./build-asan/unit-tests
	$(PYTHON) -m pytest -q test/e2e
	KWP_BIN=build-asan/kafka-ws-proxy $(PYTHON) -m pytest -q test/e2e -m "not slow"

unit: all
	./$(UNIT_BIN)

e2e: all
	$(PYTHON) -m pytest -q test/e2e

bench: setup $(BIN) $(BENCH_BIN)
	$(PYTHON) bench/run.py
	$(PYTHON) bench/produce_run.py
	$(PYTHON) bench/consume_run.py

# The proxy CPU per record of an older commit against this tree's build, in
# the same run (bench/README.md, "Comparing two commits"). OLD is checked out
# in a temporary worktree outside build/ (this Makefile includes every .d file
# under build/), only its proxy is built there, with this make's command-line
# variables, and the worktree is removed whatever happens.
ifneq ($(filter bench-compare,$(MAKECMDGOALS)),)
ifeq ($(OLD),)
$(error usage: make bench-compare OLD=<commit-ish>)
endif
endif

bench-compare: setup $(BIN) $(BENCH_BIN)
	@sha=$$(git rev-parse --verify -q --short=12 '$(OLD)^{commit}') || \
	  { echo "bench-compare: OLD=$(OLD) is not a commit" >&2; exit 2; }; \
	wt=$${TMPDIR:-/tmp}/kwp-bench-old-$$sha-$$$$; \
	trap 'git worktree remove --force "$$wt" 2>/dev/null || rm -rf "$$wt"; git worktree prune' EXIT; \
	trap 'exit 130' INT TERM HUP; \
	git worktree add -q --detach "$$wt" $$sha && \
	$(MAKE) -C "$$wt" $(BIN) && \
	echo "bench-compare: old $$sha ($$wt/$(BIN)), new $(BIN)" && { rc=0; \
	KWP_BENCH_BASELINE="$$wt/$(BIN)" KWP_BIN=$(BIN) $(PYTHON) bench/produce_run.py || rc=1; \
	KWP_BENCH_BASELINE="$$wt/$(BIN)" KWP_BIN=$(BIN) $(PYTHON) bench/consume_run.py || rc=1; \
	exit $$rc; }

# libFuzzer targets. Needs clang with its runtime (Debian: clang-14
# libclang-rt-14-dev, which `test/setup.sh --fuzz` installs). Builds each
# target, then runs it FUZZ_TIME seconds on its seed corpus; new inputs go to
# build-fuzz/corpus-<name>/, crashes to build-fuzz/.
FUZZ_CC    ?= $(shell command -v clang 2>/dev/null || echo clang-14)
FUZZ_TIME  ?= 30
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -I. -I$(LLHTTP_INC) $(PKG_CFLAGS)
FUZZ_LIBS  := -lcrypto $(shell pkg-config --libs libuv 2>/dev/null) $(PKG_LIBS) -lm

FUZZ_TARGETS := ws jscan avro_payload avro_json

fuzz:
	@bash test/setup.sh --fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus-$$t; \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -o build-fuzz/fuzz_$$t test/fuzz/fuzz_$$t.c \
	    $(CODEC_SRC) core/base/error.c core/base/sbuf.c $(FUZZ_LIBS); \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz_$$t: $(FUZZ_TIME) s"; \
	  ./build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -max_len=4096 \
	    -artifact_prefix=build-fuzz/ build-fuzz/corpus-$$t test/fuzz/corpus/$$t; \
	done

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-asan build-ubsan build-tsan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
