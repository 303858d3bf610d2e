/* fsp/notify.h — telling the kernel that something changed behind its back,
 * and registering backing files for passthrough I/O.
 *
 * All calls may come from any thread, including from inside a callback, once
 * the session is mounted. They return 0 or a negative errno; -ENOENT means the
 * kernel did not have that node or name cached (not an error for most uses).
 * Do not call the inval/delete functions from a callback while holding a lock
 * that another callback of the same node could wait on: the kernel may need
 * that callback to finish first.
 */
#ifndef FSP_NOTIFY_H
#define FSP_NOTIFY_H

#include <fsp/common.h>
#include <sys/types.h>

/* Drop cached attributes of node ino and its cached data in [off, off+len)
 * (len 0: to the end; off < 0: attributes only). */
FSP_API int fsp_notify_inval_inode(fsp_session *s, uint64_t ino, off_t off, off_t len);

/* Drop the cached name `name` in directory node `parent`. */
FSP_API int fsp_notify_inval_entry(fsp_session *s, uint64_t parent, const char *name);

/* `name` in `parent`, which was node `child`, is gone: the kernel drops the
 * name and, if child is a directory, its cached contents. */
FSP_API int fsp_notify_delete(fsp_session *s, uint64_t parent, uint64_t child,
			      const char *name);

/* Passthrough (kernel 6.9+, root): register an open file descriptor as the
 * backing file of opens that return FSP_OPEN_PASSTHROUGH with this id. The
 * kernel keeps its own reference; the caller may close fd afterwards.
 * Returns the id (> 0) or a negative errno (-EOPNOTSUPP when the session did
 * not negotiate passthrough). */
FSP_API int fsp_backing_open(fsp_session *s, int fd);
/* Drop a registration. Opens that use it keep working. */
FSP_API int fsp_backing_close(fsp_session *s, int backing_id);

#endif
