#!/usr/bin/env python3
"""mktree.py DIR [DIRS FILES SEED] — a deterministic tree for the big-copy
benchmark: DIRS directories nested up to depth 8 and FILES files, mostly
small (0-4 KiB), some medium (4-64 KiB), a few large (up to 8 MiB)."""
import os, random, sys

root = sys.argv[1]
ndirs = int(sys.argv[2]) if len(sys.argv) > 2 else 3200
nfiles = int(sys.argv[3]) if len(sys.argv) > 3 else 12000
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)

dirs = [(root, 0)]
os.makedirs(root, exist_ok=True)
for i in range(ndirs):
    parent, depth = rng.choice([d for d in dirs[-50:] if d[1] < 8] or [dirs[0]])
    path = os.path.join(parent, "d%d" % i)
    os.mkdir(path)
    dirs.append((path, depth + 1))
blob = rng.randbytes(8 << 20)
for i in range(nfiles):
    r = rng.random()
    size = rng.randint(0, 4096) if r < 0.85 else rng.randint(4096, 65536) if r < 0.99 \
        else rng.randint(65536, 8 << 20)
    d = rng.choice(dirs)[0]
    off = rng.randint(0, (8 << 20) - size)
    with open(os.path.join(d, "f%d.dat" % i), "wb") as f:
        f.write(blob[off:off + size])
