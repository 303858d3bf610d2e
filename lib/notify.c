/* notify.c — messages the library sends to the kernel unasked, and backing
 * file registration for passthrough.
 *
 * Invariants: a notification is one writev on the session fd with unique 0
 * and the notify code in the error field; names are checked (1..NAME_MAX, no
 * NUL inside) before they go out. Never called before INIT completed.
 */
#include "fsp_i.h"
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>

static int send_notify(fsp_session *s, int code, struct iovec *iov, int n)
{
	struct fw_out_header oh;
	size_t len = sizeof(oh);

	if (!s->init_done || s->fd < 0 || atomic_load(&s->dead))
		return -ENOTCONN;
	for (int i = 1; i < n; i++)
		len += iov[i].iov_len;
	oh.len = (uint32_t)len;
	oh.error = code;
	oh.unique = 0;
	iov[0].iov_base = &oh;
	iov[0].iov_len = sizeof(oh);
	ssize_t w = writev(s->fd, iov, n);
	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EIO;
}

static int name_len(const char *name, size_t *len)
{
	if (!name)
		return -EINVAL;
	size_t n = strnlen(name, NAME_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

int fsp_notify_inval_inode(fsp_session *s, uint64_t ino, off_t off, off_t len)
{
	struct fw_notify_inval_inode_out o = { .ino = ino, .off = off, .len = len };
	struct iovec iov[2] = { { 0 }, { &o, sizeof(o) } };
	return send_notify(s, FW_NOTIFY_INVAL_INODE, iov, 2);
}

int fsp_notify_inval_entry(fsp_session *s, uint64_t parent, const char *name)
{
	struct fw_notify_inval_entry_out o;
	size_t n;
	int rc = name_len(name, &n);
	if (rc < 0)
		return rc;
	memset(&o, 0, sizeof(o));
	o.parent = parent;
	o.namelen = (uint32_t)n;
	struct iovec iov[3] = { { 0 }, { &o, sizeof(o) }, { (void *)name, n + 1 } };
	return send_notify(s, FW_NOTIFY_INVAL_ENTRY, iov, 3);
}

int fsp_notify_delete(fsp_session *s, uint64_t parent, uint64_t child, const char *name)
{
	struct fw_notify_delete_out o;
	size_t n;
	int rc = name_len(name, &n);
	if (rc < 0)
		return rc;
	memset(&o, 0, sizeof(o));
	o.parent = parent;
	o.child = child;
	o.namelen = (uint32_t)n;
	struct iovec iov[3] = { { 0 }, { &o, sizeof(o) }, { (void *)name, n + 1 } };
	return send_notify(s, FW_NOTIFY_DELETE, iov, 3);
}

int fsp_backing_open(fsp_session *s, int fd)
{
	struct fw_backing_map m;

	if (!(s->flags & FW_INIT_PASSTHROUGH))
		return -EOPNOTSUPP;
	memset(&m, 0, sizeof(m));
	m.fd = fd;
	int id = ioctl(s->fd, FW_DEV_IOC_BACKING_OPEN, &m);
	return id < 0 ? -errno : id;
}

int fsp_backing_close(fsp_session *s, int backing_id)
{
	uint32_t id = (uint32_t)backing_id;
	if (!(s->flags & FW_INIT_PASSTHROUGH))
		return -EOPNOTSUPP;
	return ioctl(s->fd, FW_DEV_IOC_BACKING_CLOSE, &id) < 0 ? -errno : 0;
}
