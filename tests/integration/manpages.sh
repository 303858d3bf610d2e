#!/bin/bash
# manpages: every program has a man page, and each page lists exactly the
# options its program's --help lists: every option --help shows is a tagged
# item (.TP) of the page, and every tagged item of the page is in --help.
# Both sides are read the same way: an "item" is the start of a help line
# up to the column gap ("  -o size=BYTES   limit...": a gap, or a line that
# starts with "-") or a .TP tag line of
# the page, split at ", " " | " and "/"; each part gives its option name
# (-x, --long, -o NAME[=V] gives -o and NAME, a bare NAME or NAME=V or
# COMMAND ARGS); help lines indented more than 8 columns continue a
# description. The checker is first run on a help text and a page that
# differ on purpose, and must report both differences. fsp(7) must exist,
# name every program, and every page must format without groff warnings.
# timeout: 60
. "$(dirname "$0")/../lib.sh"
need_memfs "checks documentation, not a file system"
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || skip "does not depend on the transport: runs in the /dev/fuse run only"
need_cmd python3 man

cat >"$T/check.py" <<'PY'
import re, sys

NAME = re.compile(r"^(--?[A-Za-z][A-Za-z0-9-]*|[a-z_][a-z0-9_]*)$")
ARG = re.compile(r"^\[?[A-Z][A-Za-z0-9_.|]*\]?(\.\.\.)?$")

def names(spec, strict):
    """Option names in one item line (help: strict; man tag: lenient)."""
    out = set()
    for part in re.split(r", | \| |/", spec.strip()):
        part = part.strip()
        if part.startswith("-o ") or part == "-o":
            out.add("-o")
            part = part[3:].strip()
        if not part or part.startswith("..."):
            continue
        words = part.split()
        head = re.split(r"[=\[{]", words[0])[0]
        if not NAME.match(head) or words[0][len(head):].startswith("["):
            continue   # not a name, or a placeholder like opt[,opt...]
        if strict and not all(ARG.match(w) for w in words[1:]):
            continue   # a sentence, not an option
        if strict and "=" in words[0] and len(words) > 1:
            continue
        out.add(head)
    return out

def help_items(text):
    items = set()
    for line in text.splitlines():
        # an item starts near the left margin; deeper lines continue a description
        m = re.match(r"^ {1,8}(\S.*?)(\s{2,}\S|$)", line)
        # an item has its description after a column gap, or starts with "-"
        if m and (m.group(2).strip() or m.group(1).startswith("-")):
            items |= names(m.group(1), True)
    return items

def roff_text(line):
    """A macro line (.B, .BR, .BI, ...) as the text it shows."""
    m = re.match(r"^\.(B|I|BR|RB|BI|IB|IR|RI)\s+(.*)$", line)
    if not m:
        return None if line.startswith(".") else line
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', m.group(2))
    args = [a or b for a, b in args]
    join = " " if m.group(1) in ("B", "I") else ""
    text = join.join(args)
    return text.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")

def man_items(text):
    items = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ".TP" and i + 1 < len(lines):
            tag = roff_text(lines[i + 1])
            if tag:
                items |= names(tag, False)
    return items

def compare(prog, help_text, man_text):
    h, m = help_items(help_text), man_items(man_text)
    problems = ["%s: --help lists %s, the man page does not" % (prog, o) for o in sorted(h - m)]
    problems += ["%s: the man page lists %s, --help does not" % (prog, o) for o in sorted(m - h)]
    return h, problems

if __name__ == "__main__":
    prog, help_file, man_file = sys.argv[1:4]
    h, problems = compare(prog, open(help_file).read(), open(man_file).read())
    print("%s: %d options: %s" % (prog, len(h), " ".join(sorted(h))))
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)
PY

step "the checker finds a difference either way"
cat >"$T/h.txt" <<'TXT'
usage: demo [options] DIR
  -q, --quiet        say less
  --bogus-option N   only in --help
  -o size=BYTES      a size
     continuation of a sentence, not an option
TXT
cat >"$T/m.1" <<'TXT'
.TH DEMO 1
.SH OPTIONS
.TP
.BR \-q ", " \-\-quiet
Say less.
.TP
.BI "\-o size=" bytes
A size.
.TP
.B \-\-only\-in\-man
Only here.
TXT
rc=0; python3 "$T/check.py" demo "$T/h.txt" "$T/m.1" >"$T/self.out" || rc=$?
cat "$T/self.out"
[ $rc = 1 ] || fail "the checker did not fail on a help text and a page that differ"
grep -q -- "--help lists --bogus-option" "$T/self.out" || fail "the checker missed an option only in --help"
grep -q -- "man page lists --only-in-man" "$T/self.out" || fail "the checker missed an option only in the page"
grep -q "continuation\|sentence" "$T/self.out" && fail "the checker took a sentence for an option"

# every program make install installs: fs/NAME -> fsp-NAME, tools/NAME -> NAME
progs=()
for d in "$ROOT"/fs/*/; do d=${d%/}; progs+=("fsp-${d##*/}"); done
for d in "$ROOT"/tools/*/; do d=${d%/}; progs+=("${d##*/}"); done
echo "programs: ${progs[*]}"

step "each program's --help against its page"
bad=0
for p in "${progs[@]}"; do
	page=$ROOT/man/$p.1
	[ -f "$page" ] || { echo "no man page man/$p.1"; bad=1; continue; }
	"$BUILD_DIR/$p" --help >"$T/$p.help" 2>&1 || fail "$p --help failed"
	python3 "$T/check.py" "$p" "$T/$p.help" "$page" || bad=1
done
[ $bad = 0 ] || fail "man pages and --help differ (above)"

step "fsp(7) and formatting"
[ -f "$ROOT/man/fsp.7" ] || fail "no man/fsp.7"
sed 's/\\-/-/g' "$ROOT/man/fsp.7" >"$T/fsp.7.txt"
for p in "${progs[@]}"; do
	grep -q "^\.BR $p (1)" "$T/fsp.7.txt" || fail "fsp(7) does not refer to $p(1)"
done
for page in "$ROOT"/man/*.[1-8]; do
	w=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l ${page##*/} failed: $w"
	[ -z "$w" ] || fail "${page##*/} formats with warnings: $w"
done
echo "manpages: $(ls "$ROOT"/man/*.[1-8] | wc -l) pages; --help and the pages agree"
