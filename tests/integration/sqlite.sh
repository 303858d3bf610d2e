#!/bin/bash
# sqlite: a database in the mount, 10,000 rows in transactions with the
# rollback journal and with WAL (shared mmap of the -shm file), integrity_check.
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_cmd sqlite3

M=$T/mnt
fs_mount "$M"

# gen_sql N_TX ROWS_PER_TX: inserts in explicit transactions
gen_sql() {
	awk -v ntx="$1" -v per="$2" 'BEGIN {
		id = 0
		for (t = 0; t < ntx; t++) {
			print "BEGIN;"
			for (i = 0; i < per; i++) {
				id++
				printf "INSERT INTO t(id, v, pad) VALUES (%d, %d, printf(\"%%0200d\", %d));\n", id, id * 7, id
			}
			print "COMMIT;"
		}
	}'
}

for mode in delete wal; do
	step "journal_mode=$mode"
	db=$M/test-$mode.db
	sqlite3 "$db" "PRAGMA journal_mode=$mode; CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, pad TEXT); CREATE INDEX tv ON t(v);" >/dev/null
	gen_sql 10 1000 | sqlite3 "$db"
	assert_eq "$(sqlite3 "$db" 'PRAGMA integrity_check;')" "ok" "integrity_check ($mode)"
	assert_eq "$(sqlite3 "$db" 'SELECT count(*), sum(v) FROM t;')" "10000|350035000" "row count and sum ($mode)"
	sqlite3 "$db" "BEGIN; UPDATE t SET v = v + 1 WHERE id % 3 = 0; DELETE FROM t WHERE id % 10 = 0; COMMIT;"
	sqlite3 "$db" "BEGIN; DELETE FROM t; ROLLBACK;"
	assert_eq "$(sqlite3 "$db" 'SELECT count(*) FROM t;')" 9000 "rows after update, delete and a rolled back delete ($mode)"
	sqlite3 "$db" "VACUUM;"
	drop_cache "$db"
	assert_eq "$(sqlite3 "$db" 'PRAGMA integrity_check;')" "ok" "integrity_check after VACUUM ($mode)"
	# two writers at once: sqlite's locking (fcntl locks) must serialize them
	pids=()
	for w in 1 2; do
		(for i in $(seq 1 100); do echo "INSERT INTO t(v, pad) VALUES ($w, 'w');"; done |
			sqlite3 -cmd ".timeout 20000" "$db") &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail "a concurrent sqlite3 writer failed ($mode)"; done
	assert_eq "$(sqlite3 "$db" 'SELECT count(*) FROM t WHERE pad = "w";')" 200 "rows from two concurrent writers ($mode)"
	assert_eq "$(sqlite3 "$db" 'PRAGMA integrity_check;')" "ok" "integrity_check after concurrent writers ($mode)"
	compare_backing "$M"
done
rm -f "$M"/test-*
assert_eq "$(count_entries "$M")" 0 "entries left (journal files removed)"
fs_umount "$M"
