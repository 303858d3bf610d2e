# fsp — build, run, test.
#
#   make            library (static + shared), file systems, tools, examples -> build/
#   make run        build, then mount fsp-memfs at ./mnt in the foreground (Ctrl-C unmounts)
#   make check      build, install missing test dependencies, run every test
#                   (fsp-memfs), then the behavioural ones on fsp-ptfs over ext4,
#                   then every test again over FUSE over io_uring
#   make asan|ubsan|tsan   sanitizer variants of everything, in build-<variant>/
#
# Layout: lib/*.c is the library (one file per layer), include/fsp/ its public
# headers, fs/<name>/*.c one program per file system, tools/<name>/*.c one
# program per tool, examples/*.c one program per file, tests/ the test suites.

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS_BASE = -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE \
              -Iinclude -Ilib -pthread -fPIC $(SAN)
CFLAGS  ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
LDFLAGS ?=
LDLIBS  = -pthread

LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
HDRS     = $(wildcard include/fsp/*.h lib/*.h)

FS_NAMES    = $(notdir $(wildcard fs/*))
TOOL_NAMES  = $(notdir $(wildcard tools/*))
EX_NAMES    = $(basename $(notdir $(wildcard examples/*.c)))
UNIT_NAMES  = $(basename $(notdir $(wildcard tests/unit/*.c)))
HELPER_NAMES = $(basename $(notdir $(wildcard tests/helpers/*.c)))

FS_BIN   = $(foreach n,$(FS_NAMES),$(BUILD)/fsp-$(n))
TOOL_BIN = $(foreach n,$(TOOL_NAMES),$(BUILD)/$(n))
EX_BIN   = $(foreach n,$(EX_NAMES),$(BUILD)/$(n))
UNIT_BIN = $(foreach n,$(UNIT_NAMES),$(BUILD)/unit/$(n))
HELPER_BIN = $(foreach n,$(HELPER_NAMES),$(BUILD)/test/$(n))

.PHONY: all run check check-quick deps asan ubsan tsan clean soak debug bench fuzz install uninstall deb
all: $(BUILD)/libfsp.a $(BUILD)/libfsp.so $(FS_BIN) $(TOOL_BIN) $(EX_BIN) $(UNIT_BIN) $(HELPER_BIN)

$(BUILD)/lib/%.o: lib/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -DFSP_BUILDING_LIB -c $< -o $@

$(BUILD)/libfsp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The version is the one in include/fsp/common.h; the soname carries its
# major number (installed: libfsp.so.MAJOR -> libfsp.so.VERSION).
VERSION := $(shell sed -n 's/^\#define FSP_VERSION_STRING "\(.*\)"/\1/p' include/fsp/common.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
$(BUILD)/libfsp.so: $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libfsp.so.$(SOMAJOR) $^ -o $@ $(LDFLAGS) $(LDLIBS)

# Programs link the static library so that they run from build/ without
# LD_LIBRARY_PATH; the shared library is checked separately (exports test).
define prog_rule
$(1): $(2) $(BUILD)/libfsp.a $(HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $(2) $(BUILD)/libfsp.a -o $$@ $$(LDFLAGS) $$(LDLIBS) $(3)
endef
$(foreach n,$(FS_NAMES),$(eval $(call prog_rule,$(BUILD)/fsp-$(n),$(wildcard fs/$(n)/*.c),)))
$(foreach n,$(TOOL_NAMES),$(eval $(call prog_rule,$(BUILD)/$(n),$(wildcard tools/$(n)/*.c),-lm)))
$(foreach n,$(EX_NAMES),$(eval $(call prog_rule,$(BUILD)/$(n),examples/$(n).c,)))
# File systems built for the tests only (tests/helpers/*.c -> $(BUILD)/test/).
$(foreach n,$(HELPER_NAMES),$(eval $(call prog_rule,$(BUILD)/test/$(n),tests/helpers/$(n).c,)))
# Unit tests named memfs_*.c get fs-memfs compiled in (its main() renamed),
# to drive it in-process without a kernel.
MEMFS_LIB_SRC = $(filter-out fs/memfs/memfs.c,$(wildcard fs/memfs/*.c))
$(foreach n,$(filter-out memfs_%,$(UNIT_NAMES)),$(eval $(call prog_rule,$(BUILD)/unit/$(n),tests/unit/$(n).c,)))
$(foreach n,$(filter memfs_%,$(UNIT_NAMES)),$(eval $(call prog_rule,$(BUILD)/unit/$(n),tests/unit/$(n).c $(MEMFS_LIB_SRC),-Ifs/memfs)))

# fusermount3 (package fuse3) is what `fusermount3 -u mnt` and non-root
# mounts need; as root on a fresh machine, install it.
run: all
	@[ "$$(id -u)" != 0 ] || command -v fusermount3 >/dev/null || \
	  { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends fuse3 >/dev/null; }
	@mkdir -p mnt
	@echo "fsp-memfs mounted at ./mnt; Ctrl-C unmounts"
	./$(BUILD)/fsp-memfs -f mnt

deps:
	@sh tests/deps.sh

# The sanitizer variants are part of check: tests run fsp-stress under them.
# Three runs: everything against fsp-memfs, then the behavioural tests against
# fsp-ptfs over ext4 with the smaller data sets, then everything against
# fsp-memfs over FUSE over io_uring with the smaller data sets (where the
# kernel has it; run.sh sets enable_uring for the run and puts it back). Each prints its own counts;
# the last line sums both, and check fails if either run failed.
CHECK_COUNTS = $(BUILD)/test-counts
check: all deps
	@$(MAKE) --no-print-directory asan tsan >/dev/null
	@rm -f $(CHECK_COUNTS); st=0; \
	BUILD=$(BUILD) FSP_TEST_COUNTS=$(CHECK_COUNTS) sh tests/run.sh || st=1; \
	echo; \
	BUILD=$(BUILD) FSP_TEST_FS=ptfs-ext4 FSP_QUICK=1 FSP_TEST_COUNTS=$(CHECK_COUNTS) \
	  sh tests/run.sh || st=1; \
	echo; \
	runs=2; \
	if [ "$$(id -u)" = 0 ] && [ -w /sys/module/fuse/parameters/enable_uring ]; then \
	  runs=3; \
	  BUILD=$(BUILD) FSP_TEST_TRANSPORT=uring FSP_QUICK=1 FSP_TEST_COUNTS=$(CHECK_COUNTS) \
	    sh tests/run.sh || st=1; \
	else \
	  echo "make check: SKIP the FUSE-over-io_uring run: needs root and a kernel with enable_uring"; \
	  echo "uring-run 0 0 1" >>$(CHECK_COUNTS); \
	fi; \
	echo; \
	cat $(CHECK_COUNTS) 2>/dev/null | awk -v runs=$$runs '{ p += $$2; f += $$3; s += $$4; r = r " " $$1 } \
	  END { if (NR < runs) { print "make check: " runs - NR " of the " runs " runs ended without counts"; f += runs - NR } \
	  print "make check: all runs (" substr(r, 2) "):"; \
	  printf "%d passed, %d failed, %d skipped\n", p, f, s }'; \
	exit $$st

soak: all deps
	@BUILD=$(BUILD) sh tests/soak.sh $(SOAK_ARGS)

check-quick: all
	@BUILD=$(BUILD) FSP_QUICK=1 sh tests/run.sh

debug:
	$(MAKE) BUILD=build-debug OPT=-O0 SAN="-DFSP_DEBUG"
# Side-by-side numbers against tmpfs, ext4 and Debian's FUSE file systems
# (never part of check; the runner apt-gets bindfs, fuse-overlayfs, mergerfs
# and python3-matplotlib if missing). BENCH_ARGS="--quick --rounds N
# --targets LIST"; results in bench/results/ (bench.csv, .json, .md, .png).
bench: all
	@BUILD=$(CURDIR)/$(BUILD) /usr/bin/python3 bench/run.py $(BENCH_ARGS)

# libFuzzer over the whole request path with fsp-memfs behind it (clang).
# FUZZ_SECONDS=N runs that long; make check runs a short budget.
FUZZ_SECONDS ?= 60
FUZZ_BIN = build-fuzz/fuzz_requests
FUZZ_SRC = $(LIB_SRC) $(filter-out fs/memfs/memfs.c,$(wildcard fs/memfs/*.c)) tests/fuzz/fuzz_requests.c
# FSP_DEBUG: the library's FSP__BUG checks abort (a second reply, a handler
# that sent none, a count below zero), so the fuzzer finds them too.
$(FUZZ_BIN): $(FUZZ_SRC) $(HDRS) $(wildcard fs/memfs/*.h fs/memfs/memfs.c) Makefile
	@mkdir -p build-fuzz
	clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -Wno-unused-function -D_GNU_SOURCE -DFSP_DEBUG \
	  -Iinclude -Ilib -Ifs/memfs -pthread -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined $(FUZZ_SRC) -o $@
fuzz: $(FUZZ_BIN)
	@mkdir -p build-fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 build-fuzz/corpus tests/fuzz/corpus

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-DFSP_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
ubsan:
	$(MAKE) BUILD=build-ubsan OPT=-O1 SAN="-DFSP_DEBUG -fsanitize=undefined -fno-sanitize-recover=undefined"
tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-DFSP_DEBUG -fsanitize=thread"

clean:
	rm -rf build build-asan build-ubsan build-tsan build-debug build-fuzz

# ---- install: make install [PREFIX=/usr/local] [DESTDIR=] ; make uninstall ----
# Programs, libfsp.so.VERSION (+ soname and dev links), libfsp.a, headers
# under include/fsp/, libfsp.pc, man pages, the systemd template unit and
# the example. See dist/ for the templates.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/fsp
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL_PROGS = $(FS_BIN) $(foreach n,$(TOOL_NAMES),$(BUILD)/$(n))
MAN_PAGES = $(wildcard man/*.[1-8])
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@VERSION@|$(VERSION)|g'

install: $(BUILD)/libfsp.a $(BUILD)/libfsp.so $(INSTALL_PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/fsp \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 755 $(INSTALL_PROGS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libfsp.so $(DESTDIR)$(LIBDIR)/libfsp.so.$(VERSION)
	ln -sf libfsp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libfsp.so.$(SOMAJOR)
	ln -sf libfsp.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libfsp.so
	install -m 644 $(BUILD)/libfsp.a $(DESTDIR)$(LIBDIR)/
	install -m 644 include/fsp/*.h $(DESTDIR)$(INCDIR)/fsp/
	$(SUBST) dist/libfsp.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/libfsp.pc
	$(SUBST) dist/fsp-memfs@.service >$(DESTDIR)$(UNITDIR)/fsp-memfs@.service
	install -m 644 examples/hello.c $(DESTDIR)$(DOCDIR)/examples/
	for m in $(MAN_PAGES); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
	  gzip -9n <$$m >$(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m).gz || exit 1; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ldconfig || true

# ---- make deb: $(BUILD)/fsp_VERSION_ARCH.deb with dpkg-deb ----
# One package (runtime and development parts together): `make install
# PREFIX=/usr` into a staging root, DEBIAN/control from dist/debian/.
DEB_NAME ?= fsp
DEB_ARCH  = $(shell dpkg --print-architecture)
DEB_ROOT  = $(abspath $(BUILD))/deb-root
DEB_FILE  = $(BUILD)/$(DEB_NAME)_$(VERSION)_$(DEB_ARCH).deb
deb: $(BUILD)/libfsp.a $(BUILD)/libfsp.so $(INSTALL_PROGS)
	@command -v dpkg-deb >/dev/null || { echo "make deb: needs dpkg-deb (package dpkg)"; exit 1; }
	rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)/DEBIAN
	$(MAKE) --no-print-directory install BUILD=$(BUILD) PREFIX=/usr DESTDIR=$(DEB_ROOT) >/dev/null
	sed -e 's|@NAME@|$(DEB_NAME)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
	  -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" \
	  -e "s|@LIBC@|$$(dpkg-query -W -f='$${Version}' libc6 | cut -d- -f1)|" \
	  dist/debian/control.in >$(DEB_ROOT)/DEBIAN/control
	install -m 644 dist/debian/triggers $(DEB_ROOT)/DEBIAN/triggers
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB_FILE)
	@echo "make deb: $(DEB_FILE)"

uninstall:
	rm -f $(foreach p,$(INSTALL_PROGS),$(DESTDIR)$(BINDIR)/$(notdir $(p)))
	rm -f $(DESTDIR)$(LIBDIR)/libfsp.so $(DESTDIR)$(LIBDIR)/libfsp.so.$(SOMAJOR) \
	  $(DESTDIR)$(LIBDIR)/libfsp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libfsp.a \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/libfsp.pc $(DESTDIR)$(UNITDIR)/fsp-memfs@.service
	rm -rf $(DESTDIR)$(INCDIR)/fsp $(DESTDIR)$(DOCDIR)
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$(basename $$m).gz; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ldconfig || true
