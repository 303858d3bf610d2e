#!/usr/bin/python3
"""run.py — fsp-bench on every target in one go, with medians and a chart.

  bench/run.py [--quick | --tiny] [--rounds N] [--warmup N] [--targets LIST]
               [--dir NAME=PATH]... [--out DIR] [--no-install]

Mounts every target at once under a fresh /tmp/fsp-bench.XXXXXX:
  tmpfs        tmpfs (the reference: every ratio is to it)
  ext4         ext4 on a loop device over a sparse image
  memfs        fsp-memfs on /dev/fuse (-o io_uring=off)
  memfs-uring  fsp-memfs on FUSE over io_uring (-o io_uring=on; enable_uring
               is set to Y until the mount has answered, then put back)
  ptfs         fsp-ptfs over tmpfs
  ptfs-ext4    fsp-ptfs over ext4 (loop)
  bindfs, overlayfs (fuse-overlayfs), mergerfs   Debian's, over tmpfs
(--dir NAME=PATH adds a directory that is already there, e.g. a mount made
by someone else; --targets LIST picks targets, comma or space separated.) A
target that cannot be mounted is reported "not available" and left out.

Then runs --warmup rounds (not counted) and --rounds rounds; in each round
every target in turn (the order rotates from round to round) runs
`fsp-bench suite` (WinFsp's fsbench list, see tools/fsp-bench/suite.c) and
the big copy: the bench/mktree.py tree is copied into the target (not
timed), the page cache is dropped, then `cp -a` inside the mount, `diff -r`
and `rm -rf` of the copy are timed together (big_copy, seconds).

Writes to --out (default bench/results): bench.csv and bench.json (medians
per target and test; the JSON also has every round's value, the machine and
the parameters), bench.md (the table) and bench.png (one bar group per test,
each target's speed relative to tmpfs, log scale; made with matplotlib).
Whatever happens, every mount is lazily unmounted, every daemon stopped,
enable_uring put back and the work directory removed. Needs root to mount.
Numbers, not assertions: never part of make check (tests/integration/
bench-smoke.sh runs it once at --tiny size).
"""
import argparse, atexit, datetime, json, os, platform, re, shutil, signal
import statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("BUILD") or os.path.join(ROOT, "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
URING = "/sys/module/fuse/parameters/enable_uring"

# name -> label, in the order of the table and the chart
TARGETS = {
    "tmpfs": "tmpfs",
    "ext4": "ext4 (loop)",
    "memfs": "fsp-memfs /dev/fuse",
    "memfs-uring": "fsp-memfs io_uring",
    "ptfs": "fsp-ptfs over tmpfs",
    "ptfs-ext4": "fsp-ptfs over ext4",
    "bindfs": "bindfs over tmpfs",
    "overlayfs": "fuse-overlayfs over tmpfs",
    "mergerfs": "mergerfs over tmpfs",
}
PACKAGES = {"bindfs": "bindfs", "fuse-overlayfs": "fuse-overlayfs", "mergerfs": "mergerfs"}

# (suite options, tree dirs, tree files) per size
SIZES = {
    "full": (["--files", "1000", "--iter", "10", "--list", "50", "--rdwr-size", "4M",
              "--passes", "25"], 3200, 12000),
    "quick": (["--files", "500", "--iter", "5", "--list", "20", "--rdwr-size", "4M",
               "--passes", "10"], 400, 1500),
    "tiny": (["--files", "20", "--iter", "2", "--list", "2", "--rdwr-size", "1M",
              "--passes", "1"], 20, 60),
}
TESTS = ["file_create", "file_open", "iter.file_open", "file_overwrite", "file_attr",
         "file_list", "file_list_single", "file_list_none", "file_delete", "file_mkdir",
         "file_rmdir", "rdwr_cc_write_page", "rdwr_cc_read_page", "rdwr_cc_write_large",
         "rdwr_cc_read_large", "rdwr_nc_write_page", "rdwr_nc_read_page",
         "rdwr_nc_write_large", "rdwr_nc_read_large", "mmap_write", "mmap_read", "big_copy"]
LOWER_IS_BETTER = {"big_copy"}


def log(msg):
    progress.clear()
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """One status line on stderr, rewritten in place on a terminal."""
    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.shown = False

    def show(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K" + text[:shutil.get_terminal_size().columns - 1])
            sys.stderr.flush()
            self.shown = True

    def clear(self):
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


progress = Progress()


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="fsp-bench.", dir="/tmp")
        self.daemons = []          # Popen objects
        self.uring_old = None
        self.mounts = {}           # target -> directory to work in
        self.unavailable = {}      # target -> reason

    # --- cleanup -----------------------------------------------------------
    def cleanup(self):
        # a second signal must not cut the cleanup short (it would leave
        # mounts behind): from here on they are ignored
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        progress.clear()
        if self.uring_old is not None:
            self.put_uring_back()
        for m in self.my_mounts():
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        for p in self.daemons:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.path.isdir(self.work):
            subprocess.run(["rm", "-rf", "--one-file-system", self.work])

    def my_mounts(self):
        """Mount points under the work directory, deepest first."""
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                p = line.split()[4].replace("\\040", " ")
                if p == self.work or p.startswith(self.work + "/"):
                    out.append(p)
        return sorted(out, reverse=True)

    def put_uring_back(self):
        try:
            with open(URING, "w") as f:
                f.write(self.uring_old)
        except OSError as e:
            log("could not put %s back to %s: %s" % (URING, self.uring_old, e))
        self.uring_old = None

    # --- mounting ------------------------------------------------------------
    def is_mounted(self, d):
        return d in self.my_mounts()

    def tmpfs(self, d):
        os.makedirs(d, exist_ok=True)
        r = run(["mount", "-t", "tmpfs", "-o", "size=12G", "fsp-bench", d])
        if r.returncode:
            raise RuntimeError("mount -t tmpfs: " + r.stdout.strip())

    def ext4(self, d, name):
        img = os.path.join(self.work, name + ".img")
        os.makedirs(d, exist_ok=True)
        with open(img, "w") as f:
            f.truncate(12 << 30)
        r = run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                 img])
        if r.returncode:
            raise RuntimeError("mkfs.ext4: " + r.stdout.strip())
        r = run(["mount", "-o", "loop,noinit_itable", img, d])
        if r.returncode:
            raise RuntimeError("mount -o loop: " + r.stdout.strip())
        os.rmdir(os.path.join(d, "lost+found"))

    def daemon(self, name, cmd, m, timeout=15):
        """Start a FUSE daemon in the foreground; wait until m answers."""
        prog = cmd[0]
        if not os.path.isabs(prog) and not shutil.which(prog):
            raise RuntimeError("%s is not installed" % prog)
        if os.path.isabs(prog) and not os.access(prog, os.X_OK):
            raise RuntimeError("%s is not built (make)" % prog)
        os.makedirs(m, exist_ok=True)
        logf = open(os.path.join(self.work, name + ".log"), "w")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        self.daemons.append(p)
        end = time.monotonic() + timeout
        while not self.is_mounted(m):
            if p.poll() is not None or time.monotonic() > end:
                with open(logf.name) as f:
                    last = (f.read().strip().splitlines() or ["no message"])[-1]
                raise RuntimeError("%s %s: %s" % (os.path.basename(prog),
                                   "exited" if p.poll() is not None else "did not mount", last))
            time.sleep(0.05)
        # the first request waits for INIT: prove that the daemon answers
        if run(["timeout", "10", "stat", m]).returncode:
            raise RuntimeError("%s mounted but does not answer" % os.path.basename(prog))

    def mount(self, t):
        w = self.work
        m = os.path.join(w, "mnt-" + t)
        back = os.path.join(w, "back-" + t)
        memfs = os.path.join(BUILD, "fsp-memfs")
        ptfs = os.path.join(BUILD, "fsp-ptfs")
        if t == "tmpfs":
            self.tmpfs(m)
        elif t == "ext4":
            self.ext4(m, t)
        elif t == "memfs":
            self.daemon(t, [memfs, "-f", "-o", "io_uring=off", m], m)
        elif t == "memfs-uring":
            if not os.path.exists(URING):
                raise RuntimeError("this kernel has no FUSE over io_uring (%s)" % URING)
            with open(URING) as f:
                self.uring_old = f.read().strip()
            try:
                with open(URING, "w") as f:
                    f.write("Y")
                # the kernel looks at enable_uring until the ring is registered:
                # put it back once the mount has answered
                self.daemon(t, [memfs, "-f", "-o", "io_uring=on", m], m)
            finally:
                self.put_uring_back()
        elif t in ("ptfs", "ptfs-ext4"):
            if t == "ptfs":
                self.tmpfs(back)
            else:
                self.ext4(back, t)
            self.daemon(t, [ptfs, "-f", back, m], m)
        elif t == "bindfs":
            self.tmpfs(back)
            self.daemon(t, ["bindfs", "-f", back, m], m)
        elif t == "overlayfs":
            self.tmpfs(back)
            for s in ("lower", "upper", "work"):
                os.makedirs(os.path.join(back, s))
            self.daemon(t, ["fuse-overlayfs", "-f", "-o", "lowerdir=%s/lower,upperdir=%s/upper,"
                            "workdir=%s/work" % (back, back, back), m], m)
        elif t == "mergerfs":
            self.tmpfs(back)
            # cache.files=partial: the page cache, so that shared mmap works
            # (mergerfs's default, direct_io, refuses it)
            self.daemon(t, ["mergerfs", "-f", "-o", "cache.files=partial", back, m], m)
        else:
            raise RuntimeError("unknown target")
        return m

    # --- one round on one target -------------------------------------------
    def suite(self, t, d, status):
        cmd = [os.path.join(BUILD, "fsp-bench"), "suite", d] + SIZES[self.size][0]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = {}
        for line in p.stdout:
            f = line.split()
            if len(f) >= 3:
                try:
                    got[f[0]] = float(f[1])
                except ValueError:
                    got[f[0]] = None     # "-": not supported there
                    self.notes.setdefault(t, set()).add("%s: %s" % (f[0], " ".join(f[3:])))
                status(f[0])
        err = p.stderr.read().strip()
        if p.wait():
            self.notes.setdefault(t, set()).add("suite failed: " + err)
            log("%s: fsp-bench suite failed: %s" % (t, err))
        return got

    def big_copy(self, t, d):
        src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
        r = run(["cp", "-a", self.tree, src])
        if r.returncode:
            log("%s: staging the tree failed: %s" % (t, r.stdout.strip()[-300:]))
            return None
        drop_caches()
        t0 = time.monotonic()
        ok = (run(["cp", "-a", src, dst]).returncode == 0 and
              run(["diff", "-r", src, dst]).returncode == 0 and
              run(["rm", "-rf", dst]).returncode == 0)
        t1 = time.monotonic()
        run(["rm", "-rf", src, dst])
        if not ok:
            self.notes.setdefault(t, set()).add("big copy failed (cp, diff or rm)")
            return None
        return t1 - t0

    # --- the whole run -------------------------------------------------------
    def main(self):
        a = self.args
        self.size = "tiny" if a.tiny else "quick" if a.quick else "full"
        self.notes = {}
        targets = a.targets
        started = datetime.datetime.now(datetime.timezone.utc)
        load0 = os.getloadavg()
        log("work directory %s" % self.work)
        for t in targets:
            if t in a.dirs:
                self.mounts[t] = a.dirs[t]
                continue
            if os.geteuid() != 0:
                self.unavailable[t] = "needs root to mount"
            else:
                try:
                    self.mounts[t] = self.mount(t)
                except (RuntimeError, OSError) as e:
                    self.unavailable[t] = str(e)
            if t in self.unavailable:
                log("%-12s not available: %s" % (t, self.unavailable[t]))
            else:
                log("%-12s mounted at %s" % (t, self.mounts[t]))
        live = [t for t in targets if t in self.mounts]
        if not live:
            log("no target available")
            return 1
        # the tree to copy, on a tmpfs of its own
        tree_fs = os.path.join(self.work, "tree")
        if os.geteuid() == 0:
            self.tmpfs(tree_fs)
        self.tree = os.path.join(tree_fs, "src")
        _, ndirs, nfiles = SIZES[self.size]
        r = run([sys.executable, os.path.join(HERE, "mktree.py"), self.tree, str(ndirs),
                 str(nfiles), "1"])
        if r.returncode:
            log("mktree.py failed: " + r.stdout)
            return 1

        rounds = a.warmup + a.rounds
        values = {t: {} for t in live}
        steps, done, t0 = rounds * len(live), 0, time.monotonic()
        for rnd in range(rounds):
            warm = rnd < a.warmup
            order = live[rnd % len(live):] + live[:rnd % len(live)]
            for t in order:
                d = os.path.join(self.mounts[t], "fsp-bench-%d" % os.getpid())
                os.makedirs(d)

                def status(what, t=t):
                    el = time.monotonic() - t0
                    eta = el / done * (steps - done) if done else 0
                    progress.show("[round %d/%d%s] %s: %s  (%d/%d done, %s elapsed%s)" % (
                        rnd + 1, rounds, " warm-up" if warm else "", t, what, done, steps,
                        fmt_time(el), ", ~%s left" % fmt_time(eta) if done else ""))
                status("starting")
                got = self.suite(t, d, status)
                status("big copy")
                got["big_copy"] = self.big_copy(t, d)
                run(["rm", "-rf", d])
                done += 1
                if not warm:
                    for k, v in got.items():
                        values[t].setdefault(k, []).append(v)
                if not progress.tty:
                    log("[round %d/%d%s] %s done (%d/%d, %s elapsed)" % (
                        rnd + 1, rounds, " warm-up" if warm else "", t, done, steps,
                        fmt_time(time.monotonic() - t0)))
        progress.clear()
        self.write(values, live, started, load0, time.monotonic() - t0)
        return 0

    def write(self, values, live, started, load0, seconds):
        a = self.args
        out = a.out
        os.makedirs(out, exist_ok=True)
        med = {}
        for t in live:
            med[t] = {}
            for k in TESTS:
                vs = [v for v in values[t].get(k, []) if v is not None]
                med[t][k] = statistics.median(vs) if vs else None
        units = dict(UNITS)
        mem = meminfo_gb()
        machine = {"nproc": os.cpu_count(), "memory_gb": mem, "kernel": platform.release(),
                   "cpu": cpu_model(), "load_start": [round(x, 2) for x in load0],
                   "load_end": [round(x, 2) for x in os.getloadavg()]}
        doc = {
            "date": started.strftime("%Y-%m-%d %H:%M UTC"), "seconds": round(seconds, 1),
            "machine": machine, "size": self.size, "suite_options": SIZES[self.size][0],
            "tree": {"dirs": SIZES[self.size][1], "files": SIZES[self.size][2]},
            "warmup_rounds": a.warmup, "rounds": a.rounds,
            "targets": {t: TARGETS.get(t, t) for t in live},
            "not_available": self.unavailable,
            "notes": {t: sorted(n) for t, n in self.notes.items()},
            "units": units, "tests": TESTS, "median": med,
            "values": {t: values[t] for t in live},
        }
        with open(os.path.join(out, "bench.json"), "w") as f:
            json.dump(doc, f, indent=1)
        with open(os.path.join(out, "bench.csv"), "w") as f:
            f.write("test,unit," + ",".join(live) + "\n")
            for k in TESTS:
                f.write("%s,%s,%s\n" % (k, units[k], ",".join(
                    "" if med[t][k] is None else "%.4g" % med[t][k] for t in live)))
        md = markdown(doc, live)
        with open(os.path.join(out, "bench.md"), "w") as f:
            f.write(md)
        print(md)
        for t, n in doc["notes"].items():
            print("note: %s: %s" % (t, "; ".join(n)))
        try:
            chart(doc, live, os.path.join(out, "bench.png"))
        except ImportError as e:
            log("no chart (%s): apt-get install python3-matplotlib" % e)
            return
        log("wrote %s/bench.csv, bench.json, bench.md, bench.png" % out)


UNITS = {k: "ops/s" for k in TESTS}
UNITS.update({"file_list": "entries/s", "big_copy": "s"})
UNITS.update({k: "MB/s" for k in TESTS if k.startswith(("rdwr_", "mmap_"))})


def ratio(med, t, k):
    """Speed of t relative to tmpfs (1 = as fast; higher is better)."""
    v, b = med[t].get(k), med.get("tmpfs", {}).get(k)
    if not v or not b:
        return None
    return b / v if k in LOWER_IS_BETTER else v / b


def markdown(doc, live):
    med = doc["median"]
    m = doc["machine"]
    lines = ["Medians of %d rounds (after %d warm-up), %s size, %s; %d CPUs, %s GB RAM, "
             "Linux %s, load %s at the start. Each cell: the value, and in brackets its speed "
             "relative to tmpfs (higher is better)." % (
                 doc["rounds"], doc["warmup_rounds"], doc["size"], doc["date"], m["nproc"],
                 m["memory_gb"], m["kernel"], "/".join("%.1f" % x for x in m["load_start"])),
             "",
             "| test | unit | " + " | ".join(doc["targets"][t] for t in live) + " |",
             "| --- | --- |" + " ---: |" * len(live)]
    for k in TESTS:
        cells = []
        for t in live:
            v = med[t][k]
            if v is None:
                cells.append("n/a")
                continue
            r = ratio(med, t, k)
            s = ("%.2f" % v) if k == "big_copy" else "{:,.0f}".format(v)
            cells.append(s + ("" if t == "tmpfs" or r is None else " (%.2f)" % r))
        lines.append("| %s | %s | %s |" % (k, doc["units"][k], " | ".join(cells)))
    if doc["not_available"]:
        lines += ["", "Not available: " + "; ".join(
            "%s (%s)" % (t, r) for t, r in doc["not_available"].items())]
    return "\n".join(lines) + "\n"


def chart(doc, live, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    med = doc["median"]
    others = [t for t in live if t != "tmpfs"]
    if not others:
        others = live
    n = len(others)
    fig, ax = plt.subplots(figsize=(max(10, len(TESTS) * 0.75), 6.5), dpi=100)
    width = 0.8 / n
    cmap = plt.get_cmap("tab10")
    for i, t in enumerate(others):
        xs, ys = [], []
        for j, k in enumerate(TESTS):
            r = ratio(med, t, k) if "tmpfs" in med else (1.0 if med[t][k] else None)
            if r:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r)
        ax.bar(xs, ys, width, label=doc["targets"][t], color=cmap(i % 10))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(TESTS)))
    ax.set_xticklabels(TESTS, rotation=55, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(TESTS) - 0.4)
    ax.set_ylabel("speed relative to tmpfs (tmpfs = 1; higher is better; log scale)")
    m = doc["machine"]
    ax.set_title("fsp-bench: median of %d rounds, %s size, %s — %d CPUs, %s GB, Linux %s" % (
        doc["rounds"], doc["size"], doc["date"], m["nproc"], m["memory_gb"], m["kernel"]),
        fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, n), loc="upper center", bbox_to_anchor=(0.5, -0.32))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass


def fmt_time(s):
    s = int(s)
    return "%d:%02d" % (s // 60, s % 60)


def meminfo_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024)
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def install(targets):
    """apt-get what the chosen targets and the chart need, if missing."""
    want = []
    need = {"bindfs": "bindfs", "overlayfs": "fuse-overlayfs", "mergerfs": "mergerfs"}
    for t, prog in need.items():
        if t in targets and not shutil.which(prog):
            want.append(PACKAGES[prog])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        want.append("python3-matplotlib")
    if not want or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log("installing " + " ".join(want) + " ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + want, env=env)
    if r.returncode:
        log("apt-get install failed; going on without them:\n" + r.stdout[-500:])


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller tests and tree (400 dirs, 1,500 files)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--rounds", type=int, default=3, help="counted rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds, not counted (default 1)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma or space separated (default: all): " + " ".join(TARGETS))
    p.add_argument("--dir", action="append", default=[], metavar="NAME=PATH",
                   help="also run in the existing directory PATH, as target NAME")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="where the results go")
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    a = p.parse_args()
    a.targets = [t for t in re.split(r"[,\s]+", a.targets) if t]
    a.dirs = {}
    for d in a.dir:
        name, sep, path = d.partition("=")
        if not sep or not name or not os.path.isdir(path):
            p.error("--dir wants NAME=PATH with PATH an existing directory: " + d)
        a.dirs[name] = os.path.abspath(path)
        if name not in a.targets:
            a.targets.append(name)
    for t in a.targets:
        if t not in TARGETS and t not in a.dirs:
            p.error("unknown target %s (known: %s)" % (t, " ".join(TARGETS)))
    if a.rounds < 1 or a.warmup < 0:
        p.error("--rounds must be at least 1, --warmup at least 0")
    return a


def main():
    a = parse_args()
    if not a.no_install:
        install(a.targets)
    b = Bench(a)
    atexit.register(b.cleanup)

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    return b.main()


if __name__ == "__main__":
    sys.exit(main())
