/* xattr.c — extended attributes, a short list per node under node->lock.
 *
 * Namespaces user., trusted. and security. are stored; system. (ACLs) and
 * anything else is -EOPNOTSUPP. Linux limits: names up to 255 bytes
 * (-ERANGE), values up to 64 KiB (-E2BIG). Each attribute is one allocation,
 * charged to fs->mem_bytes like file data. A replaced value is swapped in
 * whole, so readers never see half of one.
 */
#include "memfs_i.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

struct memfs_xattr {
	struct memfs_xattr *next;
	size_t nlen, vlen;
	char data[];            /* name, NUL, value */
};

static size_t xa_size(const struct memfs_xattr *x)
{
	return sizeof(*x) + x->nlen + 1 + x->vlen;
}

static int check_name(const char *name, size_t *lenp)
{
	static const char *const prefixes[] = { "user.", "trusted.", "security." };
	size_t len = strnlen(name, MEMFS_XATTR_NAME_MAX + 1);

	if (len == 0 || len > MEMFS_XATTR_NAME_MAX)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t plen = strlen(prefixes[i]);

		if (strncmp(name, prefixes[i], plen) == 0) {
			if (len == plen)
				return -EINVAL;
			*lenp = len;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

/* The link that points at `name`, or the list's final NULL link. */
static struct memfs_xattr **find(struct memfs_node *n, const char *name, size_t len)
{
	struct memfs_xattr **pp = &n->xattrs;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->nlen == len && memcmp((*pp)->data, name, len) == 0)
			break;
	return pp;
}

void memfs_xattr_free_all(struct memfs *fs, struct memfs_node *n)
{
	struct memfs_xattr *x, *next;

	for (x = n->xattrs; x; x = next) {
		next = x->next;
		memfs_free(fs, x, xa_size(x));
	}
	n->xattrs = NULL;
}

int memfs_setxattr(fsp_req *r, void *obj, const char *name, const void *value,
		   size_t size, int flags)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	struct memfs_xattr *nx = NULL, *old = NULL, **pp;
	size_t len;
	int rc;

	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (size > MEMFS_XATTR_SIZE_MAX)
		return -E2BIG;
	nx = memfs_alloc(fs, sizeof(*nx) + len + 1 + size, &rc);
	if (!nx)
		return rc;
	nx->nlen = len;
	nx->vlen = size;
	memcpy(nx->data, name, len + 1);
	if (size)
		memcpy(nx->data + len + 1, value, size);

	pthread_rwlock_wrlock(&n->lock);
	pp = find(n, name, len);
	if (*pp && (flags & XATTR_CREATE)) {
		rc = -EEXIST;
	} else if (!*pp && (flags & XATTR_REPLACE)) {
		rc = -ENODATA;
	} else {
		old = *pp;
		nx->next = old ? old->next : NULL;
		*pp = nx;
		nx = NULL;
		n->ctime = memfs_now();
	}
	pthread_rwlock_unlock(&n->lock);
	if (old)
		memfs_free(fs, old, xa_size(old));
	if (nx)
		memfs_free(fs, nx, xa_size(nx));
	return rc;
}

ssize_t memfs_getxattr(fsp_req *r, void *obj, const char *name, void *buf, size_t size)
{
	struct memfs_node *n = obj;
	struct memfs_xattr *x;
	size_t len;
	ssize_t rc;

	(void)r;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	pthread_rwlock_rdlock(&n->lock);
	x = *find(n, name, len);
	if (!x) {
		rc = -ENODATA;
	} else if (size == 0) {
		rc = (ssize_t)x->vlen;
	} else if (size < x->vlen) {
		rc = -ERANGE;
	} else {
		memcpy(buf, x->data + x->nlen + 1, x->vlen);
		rc = (ssize_t)x->vlen;
	}
	pthread_rwlock_unlock(&n->lock);
	return rc;
}

ssize_t memfs_listxattr(fsp_req *r, void *obj, char *buf, size_t size)
{
	struct memfs_node *n = obj;
	struct memfs_xattr *x;
	size_t need = 0;
	ssize_t rc;

	(void)r;
	pthread_rwlock_rdlock(&n->lock);
	for (x = n->xattrs; x; x = x->next)
		need += x->nlen + 1;
	if (size == 0) {
		rc = (ssize_t)need;
	} else if (size < need) {
		rc = -ERANGE;
	} else {
		char *p = buf;

		for (x = n->xattrs; x; x = x->next) {
			memcpy(p, x->data, x->nlen + 1);
			p += x->nlen + 1;
		}
		rc = (ssize_t)need;
	}
	pthread_rwlock_unlock(&n->lock);
	return rc;
}

int memfs_removexattr(fsp_req *r, void *obj, const char *name)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	struct memfs_xattr *x, **pp;
	size_t len;
	int rc;

	rc = check_name(name, &len);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&n->lock);
	pp = find(n, name, len);
	x = *pp;
	if (x) {
		*pp = x->next;
		n->ctime = memfs_now();
	}
	pthread_rwlock_unlock(&n->lock);
	if (!x)
		return -ENODATA;
	memfs_free(fs, x, xa_size(x));
	return 0;
}
