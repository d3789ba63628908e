# luaio -- asyncio for Lua.  Plain GNU make; every variable can be overridden.
#
#   make            CLI (build/luaio), libluaio.a, the luaio.core module
#   make run        run an example (installs missing Debian packages as root)
#   make test       make lint, every spec through the CLI and through stock
#                   lua5.4, then the conformance cases (../shared/conformance;
#                   a missing folder fails -- LUAIO_CONFORMANCE_DIR=DIR names
#                   another, LUAIO_CONFORMANCE=skip skips them); as root it
#                   also installs (PREFIX) and runs the cases against the
#                   installed module
#   make lint       luacheck (.luacheckrc) over lua/ spec/ examples/ bench/
#                   tools/: zero warnings or it fails
#   make check      the specs under ASan/UBSan, stress specs, valgrind
#   make fuzz       libFuzzer targets, FUZZ_TIME seconds each (clang)
#   make bench      benchmarks (never part of the tests)
#   make soak       W6 for 10 minutes, 1 and 2 workers (SOAK_SECONDS=600)
#   make install    PREFIX=/usr/local

CC ?= cc
LUA ?= lua5.4
PKG_CONFIG ?= pkg-config
BUSTED ?= busted
LUACHECK ?= luacheck
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
PCDIR ?= $(LIBDIR)/pkgconfig
LUADIR ?= $(PREFIX)/share/lua/5.4
CMODDIR ?= $(PREFIX)/lib/lua/5.4
LUA_PC ?= lua5.4
VERSION = 0.1.0

LUA_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags $(LUA_PC) 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS ?= $(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null || echo -llua5.4)
# The CLI links Lua statically when liblua5.4.a is installed (LUA_STATIC=0:
# the shared library): no PLT call and no position-independent code of a
# shared library on every Lua API call -- W1, W1wave and W2 ~5 % faster,
# start-up 0.88 -> 0.83 ms.  C modules still find Lua's functions in the
# executable (-rdynamic), even those linked against liblua5.4.so (luasec's
# ssl.so: the dynamic linker binds their calls to the executable first).
LUA_A ?= $(shell $(PKG_CONFIG) --variable=libdir $(LUA_PC) 2>/dev/null)/liblua5.4.a
LUA_STATIC ?= $(shell [ -f "$(LUA_A)" ] && echo 1 || echo 0)
# LUA_BUILD=1 (the default): the CLI's Lua is Debian's lua5.4 source
# package, fetched and built by tools/lua_build.sh ($(B)/lua), and the CLI
# is linked with link-time optimisation across Lua and luaio: W1wave -8 %,
# W2 -9 % instructions (callgrind).  Without those sources (offline) it
# links the installed liblua5.4.a, still with LTO on luaio's side.  The
# sanitizer and fuzzing builds set LUA_BUILD=0: the installed library as
# it is, and no LTO.  It needs GCC (-flto=auto, fat LTO objects): with
# another compiler the default is 0.
LUA_BUILD ?= $(shell $(CC) --version 2>/dev/null | grep -q 'Free Software Foundation' && echo 1 || echo 0)
ifeq ($(LUA_BUILD),1)
CLI_LUA_A = $(B)/lua/liblua.a
CLI_LUA_LIBS = $(CLI_LUA_A)
LTO_CFLAGS = -flto=auto -ffat-lto-objects
CLI_LDFLAGS = -flto=auto
# which Lua, for luaio -v (written by tools/lua_build.sh)
CLI_LUA_FROM = -include $(B)/lua/lua_from.h
else ifeq ($(LUA_STATIC),1)
CLI_LUA_LIBS = $(LUA_A)
else
CLI_LUA_LIBS = $(LUA_LIBS)
endif
UV_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libuv 2>/dev/null)
UV_LIBS ?= $(shell $(PKG_CONFIG) --libs libuv 2>/dev/null || echo -luv)

# GNU readline for the REPL's line editing and history, when installed
# (READLINE=0 to build without it); the REPL loads it on first use.
READLINE ?= $(shell [ -f /usr/include/readline/readline.h ] && echo 1 || echo 0)
ifeq ($(READLINE),1)
CLI_CFLAGS = -DLUAIO_READLINE
CLI_LIBS =                # loaded by the REPL when it starts (dlopen)
endif

# TLS with OpenSSL (libssl-dev) when installed; TLS=0 builds without it
# (TLS calls then raise "built without TLS").  The engine (tls.c) is linked
# into core.so and libluaio; the CLI loads it as the module
# lib/luaio/tls.so on first use (start-up without OpenSSL's ~0.5 ms).
TLS ?= $(shell $(PKG_CONFIG) --exists openssl 2>/dev/null && echo 1 || echo 0)
ifeq ($(TLS),1)
TLS_CFLAGS = $(shell $(PKG_CONFIG) --cflags openssl)
TLS_LIBS = $(shell $(PKG_CONFIG) --libs openssl)
TLS_PC = openssl
LIB_TLS_OBJ = $(B)/obj/tls.o
CLI_TLS_OBJ = $(B)/obj/tls_plugin.o
TLS_MODULE = $(B)/lib/luaio/tls.so
else
LIB_TLS_OBJ = $(B)/obj/tls_none.o
CLI_TLS_OBJ = $(B)/obj/tls_none.o
TLS_MODULE =
endif

OPT ?= -O2 -g
WARN ?= -Wall -Wextra -Werror
CFLAGS ?= $(OPT)
ALL_CFLAGS = $(CFLAGS) $(LTO_CFLAGS) $(WARN) -std=gnu99 -fPIC -fvisibility=hidden \
  -Iruntime $(LUA_CFLAGS) $(UV_CFLAGS) $(TLS_CFLAGS)
LDFLAGS ?=

B ?= build
# The core by floors (docs/design.md): the core, tasks and futures, the
# subsystems, the top.
CORE_SRC = runtime/state.c runtime/errors.c runtime/report.c runtime/sched.c \
  runtime/timer.c runtime/waitlist.c runtime/alloc.c runtime/exit.c \
  runtime/future.c runtime/gather.c runtime/task.c runtime/handle.c runtime/coro.c \
  runtime/signal.c runtime/sigpipe.c runtime/queue.c \
  runtime/stream.c runtime/stream_write.c runtime/stream_tls.c runtime/stream_net.c \
  runtime/tls_link.c runtime/udp.c runtime/request.c runtime/dns.c runtime/fs.c \
  runtime/http_parser.c runtime/ws_frame.c \
  runtime/thread.c runtime/process.c runtime/procinfo.c runtime/poll.c runtime/luv.c \
  runtime/loop.c runtime/init.c runtime/embed.c runtime/embed_task.c \
  runtime/embed_capi.c
CORE_OBJ = $(CORE_SRC:runtime/%.c=$(B)/obj/%.o) $(LLHTTP_OBJ)

# llhttp, Node's HTTP parser: Debian's node-llhttp ships its C sources.
# They are third-party code: built with their own flags (-Wall, not
# -Wextra -Werror: they have unused parameters).
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
LLHTTP_OBJ = $(B)/obj/llhttp_llhttp.o $(B)/obj/llhttp_api.o $(B)/obj/llhttp_http.o
LUA_SRC = $(sort $(wildcard lua/luaio/*.lua))
DEPS = $(wildcard runtime/*.h)

all: $(B)/luaio $(B)/libluaio.a $(B)/libluaio.so $(B)/lib/luaio/core.so $(TLS_MODULE)

$(B)/obj/%.o: runtime/%.c $(DEPS) | $(B)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/obj/http_parser.o: runtime/http_parser.c $(DEPS) | $(B)/obj
	$(CC) $(ALL_CFLAGS) -I$(LLHTTP_INC) -c -o $@ $<

$(B)/obj/llhttp_%.o: $(LLHTTP_DIR)/%.c | $(B)/obj
	$(CC) $(OPT) -Wall -std=gnu99 -fPIC -fvisibility=hidden -I$(LLHTTP_INC) -c -o $@ $<

$(B)/libluaio.a: $(CORE_OBJ) $(LIB_TLS_OBJ) $(B)/obj/stdlib.o
	rm -f $@
	ar rcs $@ $^

$(B)/libluaio.so: $(CORE_OBJ) $(LIB_TLS_OBJ) $(B)/obj/stdlib.o
	$(CC) -shared -Wl,-soname,libluaio.so.0 -o $@ $^ $(LDFLAGS) $(LUA_LIBS) $(UV_LIBS) $(TLS_LIBS)

$(B)/lib/luaio/core.so: $(CORE_OBJ) $(LIB_TLS_OBJ) $(B)/obj/stdlib.o | $(B)/lib/luaio
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(UV_LIBS) $(TLS_LIBS)

$(B)/gen/stdlib.c: $(LUA_SRC) tools/embed.lua | $(B)/gen
	$(LUA) tools/embed.lua $@ $(LUA_SRC)

$(B)/obj/stdlib.o: $(B)/gen/stdlib.c runtime/cli.h | $(B)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/obj/cli.o: runtime/cli.c $(DEPS) Makefile $(CLI_LUA_A) | $(B)/obj
	$(CC) $(ALL_CFLAGS) $(CLI_CFLAGS) $(CLI_LUA_FROM) -c -o $@ $<

# the TLS engine as a module of its own, for the CLI
$(B)/lib/luaio/tls.so: $(B)/obj/tls.o | $(B)/lib/luaio
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(UV_LIBS) $(TLS_LIBS)

$(B)/luaio: $(B)/obj/cli.o $(CORE_OBJ) $(CLI_TLS_OBJ) $(B)/obj/stdlib.o $(CLI_LUA_A)
	$(CC) -o $@ $(filter %.o,$^) $(LDFLAGS) $(CLI_LDFLAGS) $(CLI_LUA_LIBS) $(UV_LIBS) $(CLI_LIBS) \
	  -lm -ldl -rdynamic

$(B)/lua/liblua.a: tools/lua_build.sh $(wildcard $(LUA_A))
	CC="$(CC)" LUA_SYSTEM_A="$(LUA_A)" sh tools/lua_build.sh $(B)/lua

$(B)/obj $(B)/gen $(B)/lib/luaio:
	mkdir -p $@

# ---------------------------------------------------------------- deps
DEB_PKGS = lua5.4 liblua5.4-dev libuv1-dev lua-busted pkg-config gcc make luarocks node-llhttp \
  libreadline-dev libssl-dev openssl lua-check \
  nodejs python3-aiohttp python3-websockets lua-cjson lua-zlib lua-socket lua-sec lua-redis redis-server curl python3 \
  postgresql libpq-dev lua-nginx-redis lua-nginx-dns dnsmasq-base lua-luv patch xz-utils
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root, or apt-get install them)"; exit 1; fi; \
	fi
	@$(MAKE) --no-print-directory node-ws

# Node's ws (the npm registry), for the WebSocket peer specs and W8.
NODE_WS = build/node_ws/node_modules/ws/package.json
node-ws: $(NODE_WS)
$(NODE_WS):
	npm install --silent --prefix build/node_ws ws@8

# ---------------------------------------------------------------- use
run: deps
	$(MAKE) all
	$(B)/luaio examples/hello.lua

SPEC_ENV = LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
  LUA_CPATH="$(CURDIR)/$(B)/lib/?.so;;" LUAIO="$(CURDIR)/$(B)/luaio"

# GUARD: a spec run that hangs fails after 10 minutes instead of eating
# the CI budget (a spec's own watchdog normally fails it much sooner).
GUARD ?= timeout -k 10 600

# luacheck with the repository's .luacheckrc; any warning fails the target.
LINT_DIRS = lua spec examples bench tools
lint: deps
	$(LUACHECK) -q --codes $(LINT_DIRS)

test: deps
	$(MAKE) all
	@echo "== lint"
	$(MAKE) -s lint
	@echo "== specs through the luaio CLI"
	$(SPEC_ENV) $(GUARD) $(BUSTED) --lua=$(CURDIR)/$(B)/luaio -o utfTerminal spec
	@echo "== specs through stock $(LUA)"
	$(SPEC_ENV) $(GUARD) $(BUSTED) --lua=$(LUA) -o utfTerminal spec
	@echo "== embedding API (C hosts in examples/embed), then again under ASan/UBSan"
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" sh examples/embed/run.sh
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" sh examples/cmodule/run.sh
	$(MAKE) -s B=build/asan LUA_BUILD=0 OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/libluaio.a build/asan/luaio
	B=$(CURDIR)/build/asan EMBED_LIBS="$(TLS_LIBS)" EMBED_CFLAGS="-fsanitize=address,undefined -g" \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 sh examples/embed/run.sh
	B=$(CURDIR)/build/asan EMBED_LIBS="$(TLS_LIBS)" EMBED_CFLAGS="-fsanitize=address,undefined -g" \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 sh examples/cmodule/run.sh
	@echo "== a build without OpenSSL (TLS=0): TLS calls raise 'built without TLS'"
	$(MAKE) -s B=build/notls LUA_BUILD=0 TLS=0 build/notls/luaio
	$(SPEC_ENV) build/notls/luaio spec/notls_check.lua
	@echo "== conformance"
	$(SPEC_ENV) sh spec/conformance.sh $(CURDIR)/$(B)/luaio
	@echo "== conformance again, with no LUA_PATH: stock lua5.4 finds the installed module"
	@if [ "$$(id -u)" = 0 ]; then \
	  $(MAKE) -s install >/dev/null && sh spec/conformance.sh $(CURDIR)/$(B)/luaio; \
	else echo "not root: skipped (as root, make test runs make install first)"; fi

# The specs through a CLI built with ASan and UBSan (child processes that
# run stock lua5.4 load the plain build's module).
check:
	$(MAKE) deps DEB_PKGS="$(DEB_PKGS) valgrind"
	$(MAKE) all
	rm -f build/asan/lib/luaio/core.so build/asan/libluaio.so
	$(MAKE) B=build/asan LUA_BUILD=0 OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" sanitized
	LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
	  LUA_CPATH="$(CURDIR)/$(B)/lib/?.so;;" \
	  LUAIO="$(CURDIR)/build/asan/luaio" ASAN_OPTIONS=detect_leaks=0 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(GUARD) $(BUSTED) --lua=$(CURDIR)/build/asan/luaio -o utfTerminal spec
	B=$(CURDIR)/build/asan EMBED_LIBS="$(TLS_LIBS)" EMBED_CFLAGS="-fsanitize=address,undefined -g" \
	  ASAN_OPTIONS=detect_leaks=1 sh examples/embed/run.sh
	B=$(CURDIR)/build/asan EMBED_LIBS="$(TLS_LIBS)" EMBED_CFLAGS="-fsanitize=address,undefined -g" \
	  ASAN_OPTIONS=detect_leaks=1 sh examples/cmodule/run.sh
	@echo "== the embedding hosts, and the C module under lua5.4, under valgrind (memcheck, the plain build)"
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" VALGRIND=1 sh examples/embed/run.sh
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" VALGRIND=1 sh examples/cmodule/run.sh
	@echo "== stress (bounded, loopback only)"
	@# (descriptors: 20,500, or the hard limit when it is lower; the 10,000-
	@# connection specs need ~10,200 in each of their two processes and fail
	@# when they cannot have them)
	ulimit -n 20500 2>/dev/null || ulimit -n "$$(ulimit -H -n)" 2>/dev/null; \
	  $(SPEC_ENV) $(GUARD) $(BUSTED) --lua=$(CURDIR)/$(B)/luaio -o utfTerminal spec/stress
	@echo "== the specs under valgrind (memcheck, the plain build)"
	$(SPEC_ENV) LUAIO_BIN=$(CURDIR)/$(B)/luaio $(GUARD) $(BUSTED) --lua=$(CURDIR)/tools/valgrind-luaio \
	  --exclude-tags=timing -o utfTerminal $(VALGRIND_SPECS)

# libFuzzer targets (clang): spec/fuzz/<target>.lua run by spec/fuzz/fuzz_main.c
# against a libluaio built with ASan/UBSan.  FUZZ_TIME seconds per target;
# new inputs go to build/fuzz/corpus/<target>, the committed corpus
# (spec/fuzz/corpus/<target>) is read as seeds.
FUZZ_TARGETS = stream_reader marshal tls http_parser ws_frame
FUZZ_TIME ?= 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined

fuzz:
	$(MAKE) deps DEB_PKGS="$(DEB_PKGS) clang"
	rm -f build/fuzz/crash-* build/fuzz/leak-* build/fuzz/timeout-*
	$(MAKE) B=build/fuzz LUA_BUILD=0 CC=clang OPT="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  READLINE=0 build/fuzz/libluaio.a
	@for t in $(FUZZ_TARGETS); do \
	  clang -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -Iruntime $(LUA_CFLAGS) $(UV_CFLAGS) \
	    -DFUZZ_SCRIPT='"$(CURDIR)/spec/fuzz/'$$t'.lua"' spec/fuzz/fuzz_main.c \
	    build/fuzz/libluaio.a $(LUA_LIBS) $(UV_LIBS) $(TLS_LIBS) -lpthread -ldl -lm \
	    -o build/fuzz/fuzz_$$t || exit 1; \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "== fuzz $$t for $(FUZZ_TIME) s"; \
	  ASAN_OPTIONS=detect_leaks=0 build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) \
	    -max_len=2048 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus/$$t spec/fuzz/corpus/$$t 2>&1 | \
	    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|fuzz:|SUMMARY|INFO: seed)" ; \
	  [ -z "$$(ls build/fuzz/crash-* build/fuzz/leak-* build/fuzz/timeout-* 2>/dev/null)" ] || \
	    { echo "fuzz $$t: a finding is in build/fuzz/"; exit 1; }; \
	done

# Under valgrind: every spec file but those that mostly start other
# processes (the CLI, REPL, examples, docs, packaging: those run the plain
# build, unwatched, and slowly; the HTTP client's, whose peers are Node and
# Python servers it races against real-time deadlines of 20-300 ms; the
# cosocket Redis spec's, whose redis-server children it starts and kills);
# #timing specs need real parallelism, which valgrind's
# one-thread-at-a-time scheduling takes away.
VALGRIND_SPECS = $(filter-out spec/cli_spec.lua spec/repl_spec.lua spec/examples_spec.lua \
  spec/docs_spec.lua spec/packaging_spec.lua spec/http_client_spec.lua \
  spec/cosocket_redis_spec.lua, $(wildcard spec/*_spec.lua))

BENCH_BIN = $(B)/bench/loadgen $(B)/bench/loadgen_ws $(B)/bench/echo_uv
ifeq ($(TLS),1)
BENCH_BIN += $(B)/bench/loadgen_tls
endif

# one driver (loadgen.c), a transport each
$(B)/bench/loadgen: bench/loadgen.c bench/loadgen_plain.c bench/loadgen.h | $(B)/bench
	$(CC) $(OPT) -Wall -Wextra $(UV_CFLAGS) -o $@ bench/loadgen.c bench/loadgen_plain.c $(UV_LIBS)

$(B)/bench/loadgen_ws: bench/loadgen.c bench/loadgen_ws.c bench/loadgen.h | $(B)/bench
	$(CC) $(OPT) -Wall -Wextra $(UV_CFLAGS) -o $@ bench/loadgen.c bench/loadgen_ws.c $(UV_LIBS)

$(B)/bench/loadgen_tls: bench/loadgen.c bench/loadgen_tls.c bench/loadgen.h | $(B)/bench
	$(CC) $(OPT) -Wall -Wextra $(UV_CFLAGS) $(TLS_CFLAGS) -o $@ bench/loadgen.c bench/loadgen_tls.c $(UV_LIBS) $(TLS_LIBS)

$(B)/bench/%: bench/%.c | $(B)/bench
	$(CC) $(OPT) -Wall -Wextra $(UV_CFLAGS) -o $@ $< $(UV_LIBS)

$(B)/bench:
	mkdir -p $@

bench: all $(BENCH_BIN)
	sh bench/run.sh $(CURDIR)/$(B)/luaio

# W6 for SOAK_SECONDS (600) against --workers 1 and 2: RSS flat, no
# error, descriptors back (bench/soak.sh; never part of the tests)
soak: all
	sh bench/soak.sh $(CURDIR)/$(B)/luaio

# ROCK=1 (luarocks make): only the module, the Lua files and the CLI.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/luaio $(DESTDIR)$(CMODDIR)/luaio
	install -m 755 $(B)/luaio $(DESTDIR)$(BINDIR)/luaio
	install -m 644 $(LUA_SRC) $(DESTDIR)$(LUADIR)/luaio/
	install -m 755 $(B)/lib/luaio/core.so $(DESTDIR)$(CMODDIR)/luaio/core.so
	if [ -n "$(TLS_MODULE)" ]; then \
	  install -m 755 $(TLS_MODULE) $(DESTDIR)$(CMODDIR)/luaio/tls.so; fi
	if [ -z "$(ROCK)" ]; then \
	  install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR) && \
	  install -m 644 $(B)/libluaio.a $(DESTDIR)$(LIBDIR)/libluaio.a && \
	  install -m 755 $(B)/libluaio.so $(DESTDIR)$(LIBDIR)/libluaio.so.$(VERSION) && \
	  ln -sf libluaio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libluaio.so.0 && \
	  ln -sf libluaio.so.0 $(DESTDIR)$(LIBDIR)/libluaio.so && \
	  install -m 644 runtime/luaio.h $(DESTDIR)$(INCDIR)/luaio.h && \
	  install -m 644 runtime/luaio_module.h $(DESTDIR)$(INCDIR)/luaio_module.h && \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LUA_PC@|$(LUA_PC)|g' -e 's|@TLS_PC@|$(TLS_PC)|g' luaio.pc.in > $(DESTDIR)$(PCDIR)/luaio.pc && \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@INCDIR@|$(INCDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@LUA_CFLAGS@|$(LUA_CFLAGS)|g' \
	    luaio-module.pc.in > $(DESTDIR)$(PCDIR)/luaio-module.pc; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/luaio $(DESTDIR)$(LIBDIR)/libluaio.a \
	  $(DESTDIR)$(LIBDIR)/libluaio.so $(DESTDIR)$(LIBDIR)/libluaio.so.0 \
	  $(DESTDIR)$(LIBDIR)/libluaio.so.$(VERSION) $(DESTDIR)$(INCDIR)/luaio.h \
	  $(DESTDIR)$(INCDIR)/luaio_module.h $(DESTDIR)$(PCDIR)/luaio-module.pc \
	  $(DESTDIR)$(PCDIR)/luaio.pc $(DESTDIR)$(CMODDIR)/luaio/core.so \
	  $(DESTDIR)$(CMODDIR)/luaio/tls.so
	rm -f $(addprefix $(DESTDIR)$(LUADIR)/luaio/,$(notdir $(LUA_SRC)))
	-rmdir $(DESTDIR)$(LUADIR)/luaio $(DESTDIR)$(CMODDIR)/luaio 2>/dev/null

clean:
	rm -rf build

# A sanitizer build: the CLI, libluaio.a and the CLI's TLS module only --
# never a core.so, which an uninstrumented lua5.4 that finds it cannot
# load ("ASan runtime does not come first").
sanitized: $(B)/luaio $(B)/libluaio.a $(TLS_MODULE)

# examples/pg: PostgreSQL from many tasks through libpq's non-blocking API
# (Debian libpq-dev); spec/pg_spec.lua builds it.
PG_CFLAGS ?= -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
$(B)/examples/pg/core.so: examples/pg/pg.c runtime/luaio.h runtime/luaio_module.h
	mkdir -p $(dir $@)
	$(CC) $(OPT) $(WARN) -std=gnu99 -fPIC -shared -Iruntime $(LUA_CFLAGS) $(UV_CFLAGS) \
	  $(PG_CFLAGS) -o $@ $< -lpq

pg-example: $(B)/examples/pg/core.so

embed-test: all
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" sh examples/embed/run.sh
	B=$(CURDIR)/$(B) EMBED_LIBS="$(TLS_LIBS)" sh examples/cmodule/run.sh

.PHONY: all deps node-ws run test lint check fuzz bench soak install uninstall clean embed-test sanitized \
  pg-example
