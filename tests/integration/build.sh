#!/bin/bash
# build: the code builds warning-free with clang as well as gcc (-Wall
# -Wextra -Werror), and the shared library exports only the public fsp_*
# names (the library is built with -fvisibility=hidden; internals are fsp__).
# timeout: 400
. "$(dirname "$0")/../lib.sh"
need_memfs "checks the build, not a file system"
need_cmd clang
need_cmd nm

cd "$ROOT"
make -s BUILD="$T/clang" CC=clang all >"$T/clang.log" 2>&1 ||
	fail "clang build failed: $(grep -m5 -E 'error|warning' "$T/clang.log")"

so=$BUILD_DIR/libfsp.so
[ -f "$so" ] || fail "no $so"
nm -D --defined-only "$so" | awk '{print $3}' | sort >"$T/exports"
[ -s "$T/exports" ] || fail "libfsp.so exports nothing"
bad=$(grep -v -E '^fsp_[a-z]' "$T/exports" || true)
[ -z "$bad" ] || fail "libfsp.so exports names outside the fsp_ API: $(echo $bad)"
# every exported name is declared in a public header
for sym in $(cat "$T/exports"); do
	grep -q -w "$sym" include/fsp/*.h || fail "$sym is exported but not in include/fsp/"
done
echo "exports: $(wc -l <"$T/exports") fsp_ names"
