#!/bin/bash
# gcc: write a small C program with a header and a Makefile into the mount,
# build it there with make (whose decisions depend on mtimes), run it there.
. "$(dirname "$0")/../lib.sh"
need_cmd gcc make

M=$T/mnt
fs_mount "$M"
mkdir "$M/prog"
cd "$M/prog"
cat >greet.h <<'C'
#define GREETING "hello from the mount"
C
cat >main.c <<'C'
#include <stdio.h>
#include <string.h>
#include "greet.h"
int sum(int n);
int main(int argc, char **argv)
{
	printf("%s %d %d\n", GREETING, sum(100), argc > 1 ? (int)strlen(argv[1]) : 0);
	return 0;
}
C
cat >sum.c <<'C'
int sum(int n) { int s = 0; while (n > 0) s += n--; return s; }
C
printf 'prog: main.o sum.o\n\tgcc -o $@ main.o sum.o\n%%.o: %%.c greet.h\n\tgcc -O2 -Wall -Werror -c $<\n' >Makefile

step "make"
make -s
assert_eq "$(./prog abc)" "hello from the mount 5050 3" "output of the program built and run in the mount"
step "make again: nothing to do"
assert_eq "$(make 2>&1)" "make: 'prog' is up to date." "second make"
step "touch a header: rebuild"
sleep 1.1
sed -i 's/hello/HELLO/' greet.h
make -s
assert_eq "$(./prog)" "HELLO from the mount 5050 0" "output after the rebuild"
step "compile and run straight from the mount"
gcc -O0 -g -o direct main.c sum.c
./direct >out.txt
assert_eq "$(cat out.txt)" "HELLO from the mount 5050 0" "gcc one-shot build"
cp direct "$T/direct.copy"
assert_same_file direct "$T/direct.copy" "binary read back"
compare_backing "$M" prog
cd "$T"
rm -rf "$M/prog"
fs_umount "$M"
