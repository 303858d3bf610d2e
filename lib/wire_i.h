/*
 * wire_i.h - fsp's own description of the bytes exchanged with the Linux
 * FUSE driver over /dev/fuse (and over FUSE-over-io-uring).
 *
 * This mirrors the kernel ABI as of FUSE protocol 7.45 (Linux 6.18).  It is
 * written for fsp and does not include <linux/fuse.h>: the names carry an
 * fw_ / FW_ prefix so this header can coexist with the system one.
 *
 * The layouts below are the wire format, so they must not drift.  The size
 * of every struct (and the offset of the fields that were added late) is
 * pinned with _Static_assert; a layout mistake is a build failure, not a
 * corrupted message at runtime.
 *
 * Conventions used here:
 *  - every struct is explicitly padded to a multiple of 8 bytes, so the
 *    layout is identical for 32-bit and 64-bit builds;
 *  - INIT capability bits are given as 64-bit values: bits 0..31 travel in
 *    fw_init_in/out.flags, bits 32..63 (shifted down by 32) in .flags2;
 *  - other flag words are 32 bits wide and use unsigned constants.
 */
#ifndef FSP_WIRE_I_H
#define FSP_WIRE_I_H

#include <stdint.h>
#include <sys/ioctl.h>

/* ------------------------------------------------------------------ */
/* Protocol version and fixed numbers                                  */
/* ------------------------------------------------------------------ */

#define FW_KERNEL_VERSION       7
#define FW_KERNEL_MINOR_VERSION 45

/* Node id the kernel uses for the root of the mount. */
#define FW_ROOT_ID 1

/* A read() from /dev/fuse needs at least this much buffer space. */
#define FW_MIN_READ_BUFFER 8192

/* ------------------------------------------------------------------ */
/* Opcodes (fw_in_header.opcode)                                       */
/* ------------------------------------------------------------------ */

enum fw_opcode {
	FW_LOOKUP               = 1,
	FW_FORGET               = 2,	/* never answered */
	FW_GETATTR              = 3,
	FW_SETATTR              = 4,
	FW_READLINK             = 5,
	FW_SYMLINK              = 6,
	/* 7 is unused */
	FW_MKNOD                = 8,
	FW_MKDIR                = 9,
	FW_UNLINK               = 10,
	FW_RMDIR                = 11,
	FW_RENAME               = 12,
	FW_LINK                 = 13,
	FW_OPEN                 = 14,
	FW_READ                 = 15,
	FW_WRITE                = 16,
	FW_STATFS               = 17,
	FW_RELEASE              = 18,
	/* 19 is unused */
	FW_FSYNC                = 20,
	FW_SETXATTR             = 21,
	FW_GETXATTR             = 22,
	FW_LISTXATTR            = 23,
	FW_REMOVEXATTR          = 24,
	FW_FLUSH                = 25,
	FW_INIT                 = 26,
	FW_OPENDIR              = 27,
	FW_READDIR              = 28,
	FW_RELEASEDIR           = 29,
	FW_FSYNCDIR             = 30,
	FW_GETLK                = 31,
	FW_SETLK                = 32,
	FW_SETLKW               = 33,
	FW_ACCESS               = 34,
	FW_CREATE               = 35,
	FW_INTERRUPT            = 36,
	FW_BMAP                 = 37,
	FW_DESTROY              = 38,
	FW_IOCTL                = 39,
	FW_POLL                 = 40,
	FW_NOTIFY_REPLY         = 41,
	FW_BATCH_FORGET         = 42,	/* never answered */
	FW_FALLOCATE            = 43,
	FW_READDIRPLUS          = 44,
	FW_RENAME2              = 45,
	FW_LSEEK                = 46,
	FW_COPY_FILE_RANGE      = 47,
	FW_SETUPMAPPING         = 48,
	FW_REMOVEMAPPING        = 49,
	FW_SYNCFS               = 50,
	FW_TMPFILE              = 51,
	FW_STATX                = 52,
	FW_COPY_FILE_RANGE_64   = 53,

	/* character-device (CUSE) only */
	FW_CUSE_INIT            = 4096,

	/*
	 * Never sent.  These are FW_CUSE_INIT / FW_INIT as they would read
	 * with the wrong byte order; they are kept out of use so a peer can
	 * detect an endianness mismatch.
	 */
	FW_CUSE_INIT_BSWAP_RESERVED = 1048576,	/* 4096 << 8 */
	FW_INIT_BSWAP_RESERVED      = 436207616	/* 26 << 24 */
};

/* ------------------------------------------------------------------ */
/* Unsolicited notifications (fw_out_header.error when unique == 0)    */
/* ------------------------------------------------------------------ */

enum fw_notify_code {
	FW_NOTIFY_POLL          = 1,
	FW_NOTIFY_INVAL_INODE   = 2,
	FW_NOTIFY_INVAL_ENTRY   = 3,
	FW_NOTIFY_STORE         = 4,
	FW_NOTIFY_RETRIEVE      = 5,
	FW_NOTIFY_DELETE        = 6,
	FW_NOTIFY_RESEND        = 7,	/* 7.40 */
	FW_NOTIFY_INC_EPOCH     = 8,	/* 7.44 */
	FW_NOTIFY_PRUNE         = 9	/* 7.45 */
};

/* ------------------------------------------------------------------ */
/* INIT capability bits (64-bit form; high half goes in flags2)        */
/* ------------------------------------------------------------------ */

#define FW_INIT_ASYNC_READ          (1ULL << 0)
#define FW_INIT_POSIX_LOCKS         (1ULL << 1)
#define FW_INIT_FILE_OPS            (1ULL << 2)
#define FW_INIT_ATOMIC_O_TRUNC      (1ULL << 3)
#define FW_INIT_EXPORT_SUPPORT      (1ULL << 4)
#define FW_INIT_BIG_WRITES          (1ULL << 5)
#define FW_INIT_DONT_MASK           (1ULL << 6)
#define FW_INIT_SPLICE_WRITE        (1ULL << 7)
#define FW_INIT_SPLICE_MOVE         (1ULL << 8)
#define FW_INIT_SPLICE_READ         (1ULL << 9)
#define FW_INIT_FLOCK_LOCKS         (1ULL << 10)
#define FW_INIT_HAS_IOCTL_DIR       (1ULL << 11)
#define FW_INIT_AUTO_INVAL_DATA     (1ULL << 12)
#define FW_INIT_DO_READDIRPLUS      (1ULL << 13)
#define FW_INIT_READDIRPLUS_AUTO    (1ULL << 14)
#define FW_INIT_ASYNC_DIO           (1ULL << 15)
#define FW_INIT_WRITEBACK_CACHE     (1ULL << 16)
#define FW_INIT_NO_OPEN_SUPPORT     (1ULL << 17)
#define FW_INIT_PARALLEL_DIROPS     (1ULL << 18)
#define FW_INIT_HANDLE_KILLPRIV     (1ULL << 19)
#define FW_INIT_POSIX_ACL           (1ULL << 20)
#define FW_INIT_ABORT_ERROR         (1ULL << 21)
#define FW_INIT_MAX_PAGES           (1ULL << 22)
#define FW_INIT_CACHE_SYMLINKS      (1ULL << 23)
#define FW_INIT_NO_OPENDIR_SUPPORT  (1ULL << 24)
#define FW_INIT_EXPLICIT_INVAL_DATA (1ULL << 25)
#define FW_INIT_MAP_ALIGNMENT       (1ULL << 26)
#define FW_INIT_SUBMOUNTS           (1ULL << 27)
#define FW_INIT_HANDLE_KILLPRIV_V2  (1ULL << 28)
#define FW_INIT_SETXATTR_EXT        (1ULL << 29)
#define FW_INIT_EXT                 (1ULL << 30)	/* flags2 is valid */
#define FW_INIT_RESERVED            (1ULL << 31)	/* must stay clear */
/* bits 32.. are carried in flags2 */
#define FW_INIT_SECURITY_CTX        (1ULL << 32)
#define FW_INIT_HAS_INODE_DAX       (1ULL << 33)
#define FW_INIT_CREATE_SUPP_GROUP   (1ULL << 34)
#define FW_INIT_HAS_EXPIRE_ONLY     (1ULL << 35)
#define FW_INIT_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#define FW_INIT_PASSTHROUGH         (1ULL << 37)
#define FW_INIT_NO_EXPORT_SUPPORT   (1ULL << 38)
#define FW_INIT_HAS_RESEND          (1ULL << 39)
#define FW_INIT_ALLOW_IDMAP         (1ULL << 40)
#define FW_INIT_OVER_IO_URING       (1ULL << 41)
#define FW_INIT_REQUEST_TIMEOUT     (1ULL << 42)
/* older spelling of bit 36 */
#define FW_INIT_DIRECT_IO_RELAX     FW_INIT_DIRECT_IO_ALLOW_MMAP

/* CUSE INIT flags */
#define FW_CUSE_UNRESTRICTED_IOCTL  (1u << 0)

/* ------------------------------------------------------------------ */
/* Per-request flag words                                              */
/* ------------------------------------------------------------------ */

/* fw_setattr_in.valid: which fields of the request are meaningful */
#define FW_FATTR_MODE         (1u << 0)
#define FW_FATTR_UID          (1u << 1)
#define FW_FATTR_GID          (1u << 2)
#define FW_FATTR_SIZE         (1u << 3)
#define FW_FATTR_ATIME        (1u << 4)
#define FW_FATTR_MTIME        (1u << 5)
#define FW_FATTR_FH           (1u << 6)
#define FW_FATTR_ATIME_NOW    (1u << 7)
#define FW_FATTR_MTIME_NOW    (1u << 8)
#define FW_FATTR_LOCKOWNER    (1u << 9)
#define FW_FATTR_CTIME        (1u << 10)
#define FW_FATTR_KILL_SUIDGID (1u << 11)

/* fw_open_out.open_flags: set by the server in OPEN/OPENDIR/CREATE replies */
#define FW_FOPEN_DIRECT_IO              (1u << 0)
#define FW_FOPEN_KEEP_CACHE             (1u << 1)
#define FW_FOPEN_NONSEEKABLE            (1u << 2)
#define FW_FOPEN_CACHE_DIR              (1u << 3)
#define FW_FOPEN_STREAM                 (1u << 4)
#define FW_FOPEN_NOFLUSH                (1u << 5)
#define FW_FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
#define FW_FOPEN_PASSTHROUGH            (1u << 7)

/* fw_open_in.open_flags / fw_create_in.open_flags: set by the kernel */
#define FW_OPEN_KILL_SUIDGID (1u << 0)

/* fw_release_in.release_flags */
#define FW_RELEASE_FLUSH        (1u << 0)
#define FW_RELEASE_FLOCK_UNLOCK (1u << 1)

/* fw_getattr_in.getattr_flags (also fw_statx_in.getattr_flags) */
#define FW_GETATTR_FH (1u << 0)

/* fw_lk_in.lk_flags */
#define FW_LK_FLOCK (1u << 0)

/* fw_write_in.write_flags */
#define FW_WRITE_CACHE        (1u << 0)
#define FW_WRITE_LOCKOWNER    (1u << 1)
#define FW_WRITE_KILL_SUIDGID (1u << 2)
/* older spelling of bit 2 (it only ever meant suid/sgid) */
#define FW_WRITE_KILL_PRIV    FW_WRITE_KILL_SUIDGID

/* fw_read_in.read_flags (bit 0 is not used) */
#define FW_READ_LOCKOWNER (1u << 1)

/* fw_ioctl_in.flags / fw_ioctl_out.flags */
#define FW_IOCTL_COMPAT       (1u << 0)
#define FW_IOCTL_UNRESTRICTED (1u << 1)
#define FW_IOCTL_RETRY        (1u << 2)
#define FW_IOCTL_32BIT        (1u << 3)
#define FW_IOCTL_DIR          (1u << 4)
#define FW_IOCTL_COMPAT_X32   (1u << 5)
/* upper bound for in_iovs + out_iovs in a retry reply */
#define FW_IOCTL_MAX_IOV      256

/* fw_poll_in.flags */
#define FW_POLL_SCHEDULE_NOTIFY (1u << 0)

/* fw_fsync_in.fsync_flags */
#define FW_FSYNC_FDATASYNC (1u << 0)

/* fw_attr.flags */
#define FW_ATTR_SUBMOUNT (1u << 0)
#define FW_ATTR_DAX      (1u << 1)

/* fw_setxattr_in.setxattr_flags (needs FW_INIT_SETXATTR_EXT) */
#define FW_SETXATTR_ACL_KILL_SGID (1u << 0)

/* fw_notify_inval_entry_out.flags */
#define FW_EXPIRE_ONLY (1u << 0)

/* fw_setupmapping_in.flags */
#define FW_SETUPMAPPING_FLAG_WRITE (1ULL << 0)
#define FW_SETUPMAPPING_FLAG_READ  (1ULL << 1)

/* Top bit of fw_in_header.unique marks a request the kernel re-sent. */
#define FW_UNIQUE_RESEND (1ULL << 63)

/*
 * With FW_INIT_ALLOW_IDMAP, fw_in_header.uid/gid hold this value when the
 * caller's ids cannot be expressed through the mount's id mapping.
 */
#define FW_INVALID_UIDGID ((uint32_t)0xffffffffu)

/* ------------------------------------------------------------------ */
/* Request extensions (appended after the op arguments)                */
/* ------------------------------------------------------------------ */

/*
 * Extension type numbers.  0..FW_MAX_NR_SECCTX overlap with the
 * nr_secctx field of fw_secctx_header; real extension types start above.
 */
enum fw_ext_type {
	FW_MAX_NR_SECCTX = 31,
	FW_EXT_GROUPS    = 32
};

/* ------------------------------------------------------------------ */
/* Compatibility sizes: how long a struct was in older minors          */
/* ------------------------------------------------------------------ */

#define FW_COMPAT_ENTRY_OUT_SIZE     120	/* before 7.9 */
#define FW_COMPAT_ATTR_OUT_SIZE      96	/* before 7.9 */
#define FW_COMPAT_MKNOD_IN_SIZE      8	/* before 7.12 */
#define FW_COMPAT_WRITE_IN_SIZE      24	/* before 7.9 */
#define FW_COMPAT_STATFS_SIZE        48	/* before 7.4 */
#define FW_COMPAT_SETXATTR_IN_SIZE   8	/* without FW_INIT_SETXATTR_EXT */
#define FW_COMPAT_INIT_OUT_SIZE      8	/* before 7.5 */
#define FW_COMPAT_22_INIT_OUT_SIZE   24	/* before 7.23 */

#define FW_CUSE_INIT_INFO_MAX 4096

/* ------------------------------------------------------------------ */
/* Message headers                                                     */
/* ------------------------------------------------------------------ */

/* Starts every request read from the device. */
struct fw_in_header {
	uint32_t len;		/* whole request, this header included */
	uint32_t opcode;	/* enum fw_opcode */
	uint64_t unique;	/* echo in the reply; see FW_UNIQUE_RESEND */
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint16_t total_extlen;	/* extension bytes / 8 (7.38) */
	uint16_t padding;
};

/* Starts every reply and every notification written to the device. */
struct fw_out_header {
	uint32_t len;		/* whole reply, this header included */
	int32_t  error;		/* 0 or -errno; notify code when unique==0 */
	uint64_t unique;
};

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

struct fw_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;
	uint32_t blksize;
	uint32_t flags;		/* FW_ATTR_* */
};

/* Timestamp in the statx(2) layout. */
struct fw_sx_time {
	int64_t  tv_sec;
	uint32_t tv_nsec;
	int32_t  reserved;
};

/* Same bytes as struct statx from statx(2). */
struct fw_statx {
	uint32_t mask;
	uint32_t blksize;
	uint64_t attributes;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint16_t mode;
	uint16_t spare0[1];
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t attributes_mask;
	struct fw_sx_time atime;
	struct fw_sx_time btime;
	struct fw_sx_time ctime;
	struct fw_sx_time mtime;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t spare2[14];
};

struct fw_kstatfs {
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t bsize;
	uint32_t namelen;
	uint32_t frsize;
	uint32_t padding;
	uint32_t spare[6];
};

struct fw_file_lock {
	uint64_t start;
	uint64_t end;
	uint32_t type;
	uint32_t pid;		/* thread-group id of the lock owner */
};

/* ------------------------------------------------------------------ */
/* Lookup, forget, getattr, setattr, statx                             */
/* ------------------------------------------------------------------ */

/* Reply to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK (and part of CREATE). */
struct fw_entry_out {
	uint64_t nodeid;
	uint64_t generation;	/* (nodeid, generation) never reused */
	uint64_t entry_valid;	/* name cache lifetime, seconds */
	uint64_t attr_valid;	/* attribute cache lifetime, seconds */
	uint32_t entry_valid_nsec;
	uint32_t attr_valid_nsec;
	struct fw_attr attr;
};

struct fw_forget_in {
	uint64_t nlookup;
};

/* One element of the array that follows fw_batch_forget_in. */
struct fw_forget_one {
	uint64_t nodeid;
	uint64_t nlookup;
};

struct fw_batch_forget_in {
	uint32_t count;
	uint32_t dummy;
};

struct fw_getattr_in {
	uint32_t getattr_flags;	/* FW_GETATTR_* */
	uint32_t dummy;
	uint64_t fh;
};

struct fw_attr_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t dummy;
	struct fw_attr attr;
};

struct fw_statx_in {
	uint32_t getattr_flags;	/* FW_GETATTR_* */
	uint32_t reserved;
	uint64_t fh;
	uint32_t sx_flags;	/* AT_STATX_* sync flags */
	uint32_t sx_mask;	/* STATX_* fields wanted */
};

struct fw_statx_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t flags;
	uint64_t spare[2];
	struct fw_statx stat;
};

struct fw_setattr_in {
	uint32_t valid;		/* FW_FATTR_* */
	uint32_t padding;
	uint64_t fh;
	uint64_t size;
	uint64_t lock_owner;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t unused4;
	uint32_t uid;
	uint32_t gid;
	uint32_t unused5;
};

/* ------------------------------------------------------------------ */
/* Namespace operations                                                */
/* ------------------------------------------------------------------ */

/* followed by the name (NUL terminated) */
struct fw_mknod_in {
	uint32_t mode;
	uint32_t rdev;
	uint32_t umask;
	uint32_t padding;
};

/* followed by the name */
struct fw_mkdir_in {
	uint32_t mode;
	uint32_t umask;
};

/* followed by old name and new name */
struct fw_rename_in {
	uint64_t newdir;
};

/* followed by old name and new name; flags are RENAME_* */
struct fw_rename2_in {
	uint64_t newdir;
	uint32_t flags;
	uint32_t padding;
};

/* followed by the new name */
struct fw_link_in {
	uint64_t oldnodeid;
};

/* ------------------------------------------------------------------ */
/* Open, create, release, flush                                        */
/* ------------------------------------------------------------------ */

struct fw_open_in {
	uint32_t flags;		/* open(2) flags */
	uint32_t open_flags;	/* FW_OPEN_* */
};

/* followed by the name */
struct fw_create_in {
	uint32_t flags;		/* open(2) flags */
	uint32_t mode;
	uint32_t umask;
	uint32_t open_flags;	/* FW_OPEN_* */
};

struct fw_open_out {
	uint64_t fh;
	uint32_t open_flags;	/* FW_FOPEN_* */
	int32_t  backing_id;	/* with FW_FOPEN_PASSTHROUGH (7.40) */
};

struct fw_release_in {
	uint64_t fh;
	uint32_t flags;
	uint32_t release_flags;	/* FW_RELEASE_* */
	uint64_t lock_owner;
};

struct fw_flush_in {
	uint64_t fh;
	uint32_t unused;
	uint32_t padding;
	uint64_t lock_owner;
};

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

struct fw_read_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t read_flags;	/* FW_READ_* */
	uint64_t lock_owner;
	uint32_t flags;		/* open(2) flags of the file */
	uint32_t padding;
};

/* followed by the data */
struct fw_write_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t write_flags;	/* FW_WRITE_* */
	uint64_t lock_owner;
	uint32_t flags;		/* open(2) flags of the file */
	uint32_t padding;
};

/* reply to WRITE, and to COPY_FILE_RANGE */
struct fw_write_out {
	uint32_t size;
	uint32_t padding;
};

struct fw_statfs_out {
	struct fw_kstatfs st;
};

struct fw_fsync_in {
	uint64_t fh;
	uint32_t fsync_flags;	/* FW_FSYNC_* */
	uint32_t padding;
};

struct fw_fallocate_in {
	uint64_t fh;
	uint64_t offset;
	uint64_t length;
	uint32_t mode;		/* FALLOC_FL_* */
	uint32_t padding;
};

struct fw_lseek_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t whence;
	uint32_t padding;
};

struct fw_lseek_out {
	uint64_t offset;
};

struct fw_copy_file_range_in {
	uint64_t fh_in;
	uint64_t off_in;
	uint64_t nodeid_out;
	uint64_t fh_out;
	uint64_t off_out;
	uint64_t len;
	uint64_t flags;
};

/* reply to COPY_FILE_RANGE_64 (7.45) */
struct fw_copy_file_range_out {
	uint64_t bytes_copied;
};

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */
/* ------------------------------------------------------------------ */

/*
 * followed by the name and the value.  Without FW_INIT_SETXATTR_EXT only
 * the first FW_COMPAT_SETXATTR_IN_SIZE bytes are sent.
 */
struct fw_setxattr_in {
	uint32_t size;
	uint32_t flags;		/* XATTR_CREATE / XATTR_REPLACE */
	uint32_t setxattr_flags;	/* FW_SETXATTR_* */
	uint32_t padding;
};

/* GETXATTR: followed by the name; LISTXATTR: nothing follows */
struct fw_getxattr_in {
	uint32_t size;
	uint32_t padding;
};

/* reply when the request's size was 0 */
struct fw_getxattr_out {
	uint32_t size;
	uint32_t padding;
};

/* ------------------------------------------------------------------ */
/* Locks, access                                                       */
/* ------------------------------------------------------------------ */

struct fw_lk_in {
	uint64_t fh;
	uint64_t owner;
	struct fw_file_lock lk;
	uint32_t lk_flags;	/* FW_LK_* */
	uint32_t padding;
};

struct fw_lk_out {
	struct fw_file_lock lk;
};

struct fw_access_in {
	uint32_t mask;
	uint32_t padding;
};

/* ------------------------------------------------------------------ */
/* INIT / CUSE_INIT                                                    */
/* ------------------------------------------------------------------ */

struct fw_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;		/* FW_INIT_* bits 0..31 */
	uint32_t flags2;	/* FW_INIT_* bits 32..63, if FW_INIT_EXT */
	uint32_t unused[11];
};

struct fw_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;		/* FW_INIT_* bits 0..31 */
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;	/* FW_INIT_* bits 32..63 */
	uint32_t max_stack_depth;	/* 7.40, with FW_INIT_PASSTHROUGH */
	uint16_t request_timeout;	/* 7.43, seconds, FW_INIT_REQUEST_TIMEOUT */
	uint16_t unused[11];
};

struct fw_cuse_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t unused;
	uint32_t flags;
};

/* followed by device info strings, at most FW_CUSE_INIT_INFO_MAX bytes */
struct fw_cuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t unused;
	uint32_t flags;
	uint32_t max_read;
	uint32_t max_write;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t spare[10];
};

/* ------------------------------------------------------------------ */
/* Interrupt, bmap, ioctl, poll                                        */
/* ------------------------------------------------------------------ */

struct fw_interrupt_in {
	uint64_t unique;	/* the request to interrupt */
};

struct fw_bmap_in {
	uint64_t block;
	uint32_t blocksize;
	uint32_t padding;
};

struct fw_bmap_out {
	uint64_t block;
};

struct fw_ioctl_in {
	uint64_t fh;
	uint32_t flags;		/* FW_IOCTL_* */
	uint32_t cmd;
	uint64_t arg;
	uint32_t in_size;
	uint32_t out_size;
};

struct fw_ioctl_iovec {
	uint64_t base;
	uint64_t len;
};

struct fw_ioctl_out {
	int32_t  result;
	uint32_t flags;		/* FW_IOCTL_* */
	uint32_t in_iovs;
	uint32_t out_iovs;
};

struct fw_poll_in {
	uint64_t fh;
	uint64_t kh;
	uint32_t flags;		/* FW_POLL_* */
	uint32_t events;
};

struct fw_poll_out {
	uint32_t revents;
	uint32_t padding;
};

/* ------------------------------------------------------------------ */
/* Directory listings                                                  */
/* ------------------------------------------------------------------ */

struct fw_dirent {
	uint64_t ino;
	uint64_t off;		/* cookie for the next READDIR */
	uint32_t namelen;
	uint32_t type;		/* DT_* value (mode >> 12) */
	char name[];		/* not NUL terminated */
};

/* READDIRPLUS record: a full lookup reply in front of the entry. */
struct fw_direntplus {
	struct fw_entry_out entry_out;
	struct fw_dirent dirent;
};

/* Variable-length records are padded to a multiple of 8 bytes. */
#define FW_REC_ALIGN(x) \
	(((x) + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1))
#define FW_DIRENT_ALIGN(x) FW_REC_ALIGN(x)

#define FW_NAME_OFFSET __builtin_offsetof(struct fw_dirent, name)
#define FW_DIRENT_SIZE(d) \
	FW_DIRENT_ALIGN(FW_NAME_OFFSET + (d)->namelen)

#define FW_NAME_OFFSET_DIRENTPLUS \
	__builtin_offsetof(struct fw_direntplus, dirent.name)
#define FW_DIRENTPLUS_SIZE(d) \
	FW_DIRENT_ALIGN(FW_NAME_OFFSET_DIRENTPLUS + (d)->dirent.namelen)

/* ------------------------------------------------------------------ */
/* Notification payloads (server -> kernel, unique == 0)               */
/* ------------------------------------------------------------------ */

struct fw_notify_poll_wakeup_out {
	uint64_t kh;
};

struct fw_notify_inval_inode_out {
	uint64_t ino;
	int64_t  off;
	int64_t  len;
};

/* followed by the name and a NUL */
struct fw_notify_inval_entry_out {
	uint64_t parent;
	uint32_t namelen;
	uint32_t flags;		/* FW_EXPIRE_ONLY (7.38) */
};

/* followed by the name and a NUL */
struct fw_notify_delete_out {
	uint64_t parent;
	uint64_t child;
	uint32_t namelen;
	uint32_t padding;
};

/* followed by the data */
struct fw_notify_store_out {
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

struct fw_notify_retrieve_out {
	uint64_t notify_unique;
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

/*
 * Argument of the FW_NOTIFY_REPLY request the kernel sends back for a
 * retrieve; shaped like fw_write_in, and followed by the data.
 */
struct fw_notify_retrieve_in {
	uint64_t dummy1;
	uint64_t offset;
	uint32_t size;
	uint32_t dummy2;
	uint64_t dummy3;
	uint64_t dummy4;
};

/* followed by count uint64_t node ids (7.45) */
struct fw_notify_prune_out {
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

/* ------------------------------------------------------------------ */
/* /dev/fuse ioctls and passthrough backing files                      */
/* ------------------------------------------------------------------ */

struct fw_backing_map {
	int32_t  fd;
	uint32_t flags;
	uint64_t padding;
};

#define FW_DEV_IOC_MAGIC          229
#define FW_DEV_IOC_CLONE          _IOR(FW_DEV_IOC_MAGIC, 0, uint32_t)
#define FW_DEV_IOC_BACKING_OPEN   _IOW(FW_DEV_IOC_MAGIC, 1, struct fw_backing_map)
#define FW_DEV_IOC_BACKING_CLOSE  _IOW(FW_DEV_IOC_MAGIC, 2, uint32_t)

/* ------------------------------------------------------------------ */
/* DAX window mapping (virtiofs)                                       */
/* ------------------------------------------------------------------ */

struct fw_setupmapping_in {
	uint64_t fh;
	uint64_t foffset;	/* file offset */
	uint64_t len;
	uint64_t flags;		/* FW_SETUPMAPPING_FLAG_* */
	uint64_t moffset;	/* offset inside the DAX window */
};

/* followed by count fw_removemapping_one */
struct fw_removemapping_in {
	uint32_t count;
};

struct fw_removemapping_one {
	uint64_t moffset;
	uint64_t len;
};

/* How many removal records fit in one page of the given size. */
#define FW_REMOVEMAPPING_MAX_ENTRY(page_size) \
	((page_size) / sizeof(struct fw_removemapping_one))

struct fw_syncfs_in {
	uint64_t padding;
};

/* ------------------------------------------------------------------ */
/* Request extensions: security contexts and supplementary groups      */
/* ------------------------------------------------------------------ */

/*
 * Security-context block (FW_INIT_SECURITY_CTX): a fw_secctx_header, then
 * nr_secctx times { fw_secctx, NUL-terminated xattr name, label bytes }.
 * header.size covers the whole block.
 */
struct fw_secctx {
	uint32_t size;		/* label length */
	uint32_t padding;
};

struct fw_secctx_header {
	uint32_t size;
	uint32_t nr_secctx;
};

/*
 * Generic extension header; type > FW_MAX_NR_SECCTX tells it apart from
 * a fw_secctx_header.  size includes the header itself.
 */
struct fw_ext_header {
	uint32_t size;
	uint32_t type;		/* enum fw_ext_type */
};

/* payload of an FW_EXT_GROUPS extension */
struct fw_supp_groups {
	uint32_t nr_groups;
	uint32_t groups[];
};

/* ------------------------------------------------------------------ */
/* FUSE-over-io-uring (7.42)                                           */
/* ------------------------------------------------------------------ */

#define FW_URING_IN_OUT_HEADER_SZ 128
#define FW_URING_OP_IN_OUT_SZ     128

/* Ring-entry bookkeeping shared between kernel and server. */
struct fw_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;	/* pass back in fw_uring_cmd_req.commit_id */
	uint32_t payload_sz;	/* bytes used in the payload buffer */
	uint32_t padding;
	uint64_t reserved;
};

/* Header buffer registered with each ring entry. */
struct fw_uring_req_header {
	char in_out[FW_URING_IN_OUT_HEADER_SZ];	/* fw_in_header / fw_out_header */
	char op_in[FW_URING_OP_IN_OUT_SZ];	/* fixed per-opcode argument */
	struct fw_uring_ent_in_out ring_ent_in_out;
};

/* Sub-commands of IORING_OP_URING_CMD on /dev/fuse. */
enum fw_uring_cmd {
	FW_IO_URING_CMD_INVALID          = 0,
	FW_IO_URING_CMD_REGISTER         = 1,
	FW_IO_URING_CMD_COMMIT_AND_FETCH = 2
};

/* Lives in the SQE's command area (needs IORING_SETUP_SQE128). */
struct fw_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t  padding[6];
};

/* ------------------------------------------------------------------ */
/* Layout pins                                                         */
/* ------------------------------------------------------------------ */

#define FW_PIN_SIZE(type, n) \
	_Static_assert(sizeof(struct type) == (n), \
		       "wire layout: sizeof(struct " #type ") != " #n)
#define FW_PIN_OFF(type, field, n) \
	_Static_assert(__builtin_offsetof(struct type, field) == (n), \
		       "wire layout: offsetof(struct " #type ", " #field ") != " #n)

FW_PIN_SIZE(fw_in_header, 40);
FW_PIN_SIZE(fw_out_header, 16);
FW_PIN_SIZE(fw_attr, 88);
FW_PIN_SIZE(fw_sx_time, 16);
FW_PIN_SIZE(fw_statx, 256);
FW_PIN_SIZE(fw_kstatfs, 80);
FW_PIN_SIZE(fw_file_lock, 24);
FW_PIN_SIZE(fw_entry_out, 128);
FW_PIN_SIZE(fw_forget_in, 8);
FW_PIN_SIZE(fw_forget_one, 16);
FW_PIN_SIZE(fw_batch_forget_in, 8);
FW_PIN_SIZE(fw_getattr_in, 16);
FW_PIN_SIZE(fw_attr_out, 104);
FW_PIN_SIZE(fw_statx_in, 24);
FW_PIN_SIZE(fw_statx_out, 288);
FW_PIN_SIZE(fw_setattr_in, 88);
FW_PIN_SIZE(fw_mknod_in, 16);
FW_PIN_SIZE(fw_mkdir_in, 8);
FW_PIN_SIZE(fw_rename_in, 8);
FW_PIN_SIZE(fw_rename2_in, 16);
FW_PIN_SIZE(fw_link_in, 8);
FW_PIN_SIZE(fw_open_in, 8);
FW_PIN_SIZE(fw_create_in, 16);
FW_PIN_SIZE(fw_open_out, 16);
FW_PIN_SIZE(fw_release_in, 24);
FW_PIN_SIZE(fw_flush_in, 24);
FW_PIN_SIZE(fw_read_in, 40);
FW_PIN_SIZE(fw_write_in, 40);
FW_PIN_SIZE(fw_write_out, 8);
FW_PIN_SIZE(fw_statfs_out, 80);
FW_PIN_SIZE(fw_fsync_in, 16);
FW_PIN_SIZE(fw_fallocate_in, 32);
FW_PIN_SIZE(fw_lseek_in, 24);
FW_PIN_SIZE(fw_lseek_out, 8);
FW_PIN_SIZE(fw_copy_file_range_in, 56);
FW_PIN_SIZE(fw_copy_file_range_out, 8);
FW_PIN_SIZE(fw_setxattr_in, 16);
FW_PIN_SIZE(fw_getxattr_in, 8);
FW_PIN_SIZE(fw_getxattr_out, 8);
FW_PIN_SIZE(fw_lk_in, 48);
FW_PIN_SIZE(fw_lk_out, 24);
FW_PIN_SIZE(fw_access_in, 8);
FW_PIN_SIZE(fw_init_in, 64);
FW_PIN_SIZE(fw_init_out, 64);
FW_PIN_SIZE(fw_cuse_init_in, 16);
FW_PIN_SIZE(fw_cuse_init_out, 72);
FW_PIN_SIZE(fw_interrupt_in, 8);
FW_PIN_SIZE(fw_bmap_in, 16);
FW_PIN_SIZE(fw_bmap_out, 8);
FW_PIN_SIZE(fw_ioctl_in, 32);
FW_PIN_SIZE(fw_ioctl_iovec, 16);
FW_PIN_SIZE(fw_ioctl_out, 16);
FW_PIN_SIZE(fw_poll_in, 24);
FW_PIN_SIZE(fw_poll_out, 8);
FW_PIN_SIZE(fw_dirent, 24);
FW_PIN_SIZE(fw_direntplus, 152);
FW_PIN_SIZE(fw_notify_poll_wakeup_out, 8);
FW_PIN_SIZE(fw_notify_inval_inode_out, 24);
FW_PIN_SIZE(fw_notify_inval_entry_out, 16);
FW_PIN_SIZE(fw_notify_delete_out, 24);
FW_PIN_SIZE(fw_notify_store_out, 24);
FW_PIN_SIZE(fw_notify_retrieve_out, 32);
FW_PIN_SIZE(fw_notify_retrieve_in, 40);
FW_PIN_SIZE(fw_notify_prune_out, 16);
FW_PIN_SIZE(fw_backing_map, 16);
FW_PIN_SIZE(fw_setupmapping_in, 40);
FW_PIN_SIZE(fw_removemapping_in, 4);
FW_PIN_SIZE(fw_removemapping_one, 16);
FW_PIN_SIZE(fw_syncfs_in, 8);
FW_PIN_SIZE(fw_secctx, 8);
FW_PIN_SIZE(fw_secctx_header, 8);
FW_PIN_SIZE(fw_ext_header, 8);
FW_PIN_SIZE(fw_supp_groups, 4);
FW_PIN_SIZE(fw_uring_ent_in_out, 32);
FW_PIN_SIZE(fw_uring_req_header, 288);
FW_PIN_SIZE(fw_uring_cmd_req, 24);

/* Fields whose position matters for old peers or was added late. */
FW_PIN_OFF(fw_in_header, unique, 8);
FW_PIN_OFF(fw_in_header, nodeid, 16);
FW_PIN_OFF(fw_in_header, total_extlen, 36);
FW_PIN_OFF(fw_out_header, unique, 8);
FW_PIN_OFF(fw_attr, blksize, 80);
FW_PIN_OFF(fw_attr, flags, 84);
FW_PIN_OFF(fw_entry_out, attr, 40);
FW_PIN_OFF(fw_attr_out, attr, 16);
FW_PIN_OFF(fw_statx, atime, 64);
FW_PIN_OFF(fw_statx, rdev_major, 128);
FW_PIN_OFF(fw_statx, spare2, 144);
FW_PIN_OFF(fw_statx_out, stat, 32);
FW_PIN_OFF(fw_setattr_in, ctime, 48);
FW_PIN_OFF(fw_setattr_in, uid, 76);
FW_PIN_OFF(fw_open_out, backing_id, 12);
FW_PIN_OFF(fw_write_in, lock_owner, 24);
FW_PIN_OFF(fw_setxattr_in, setxattr_flags, 8);
FW_PIN_OFF(fw_init_in, flags2, 16);
FW_PIN_OFF(fw_init_out, max_write, 20);
FW_PIN_OFF(fw_init_out, time_gran, 24);
FW_PIN_OFF(fw_init_out, max_pages, 28);
FW_PIN_OFF(fw_init_out, flags2, 32);
FW_PIN_OFF(fw_init_out, max_stack_depth, 36);
FW_PIN_OFF(fw_init_out, request_timeout, 40);
FW_PIN_OFF(fw_notify_inval_entry_out, flags, 12);
FW_PIN_OFF(fw_lk_in, lk_flags, 40);
FW_PIN_OFF(fw_direntplus, dirent, 128);
FW_PIN_OFF(fw_uring_req_header, op_in, 128);
FW_PIN_OFF(fw_uring_req_header, ring_ent_in_out, 256);
FW_PIN_OFF(fw_uring_cmd_req, qid, 16);

_Static_assert(FW_NAME_OFFSET == 24, "wire layout: dirent name offset");
_Static_assert(FW_NAME_OFFSET_DIRENTPLUS == 152,
	       "wire layout: direntplus name offset");
_Static_assert(FW_COMPAT_22_INIT_OUT_SIZE ==
	       __builtin_offsetof(struct fw_init_out, time_gran),
	       "compat: 7.22 init_out ends before time_gran");
_Static_assert(FW_COMPAT_ENTRY_OUT_SIZE + 8 == sizeof(struct fw_entry_out),
	       "compat: entry_out grew by blksize+flags");
_Static_assert(FW_COMPAT_ATTR_OUT_SIZE + 8 == sizeof(struct fw_attr_out),
	       "compat: attr_out grew by blksize+flags");
_Static_assert(FW_COMPAT_WRITE_IN_SIZE ==
	       __builtin_offsetof(struct fw_write_in, lock_owner),
	       "compat: old write_in stops before lock_owner");
_Static_assert(FW_COMPAT_SETXATTR_IN_SIZE ==
	       __builtin_offsetof(struct fw_setxattr_in, setxattr_flags),
	       "compat: old setxattr_in stops before setxattr_flags");
_Static_assert(FW_COMPAT_MKNOD_IN_SIZE ==
	       __builtin_offsetof(struct fw_mknod_in, umask),
	       "compat: old mknod_in stops before umask");
_Static_assert(FW_COMPAT_STATFS_SIZE ==
	       __builtin_offsetof(struct fw_kstatfs, frsize),
	       "compat: old statfs stops before frsize");
_Static_assert(sizeof(struct fw_notify_retrieve_in) ==
	       sizeof(struct fw_write_in),
	       "retrieve_in must look like write_in");

#undef FW_PIN_SIZE
#undef FW_PIN_OFF

#endif /* FSP_WIRE_I_H */
