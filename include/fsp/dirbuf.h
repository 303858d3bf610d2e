/* fsp/dirbuf.h — filling a directory listing (the readdir callback).
 *
 * The library owns the buffer; a readdir callback adds entries in order until
 * an add returns 1 (no room: that entry was NOT added; return 0 and the kernel
 * asks again from that entry's offset later).
 */
#ifndef FSP_DIRBUF_H
#define FSP_DIRBUF_H

#include <fsp/common.h>
#include <fsp/ops.h>

/* Non-zero when the kernel asked for attributes too (READDIRPLUS): then
 * fsp_dirbuf_add_plus() lets it skip a lookup per entry. */
FSP_API int fsp_dirbuf_is_plus(const fsp_dirbuf *db);

/* Add one name. ino is what d_ino shows, mode gives the type (S_IFMT bits;
 * 0 = unknown), next_off is the offset of the entry that follows. In plus
 * mode the kernel learns no node from this entry: use it for "." and "..".
 * Returns 0 added, 1 no room, -ENAMETOOLONG / -EINVAL for a bad name. */
FSP_API int fsp_dirbuf_add(fsp_dirbuf *db, const char *name, uint64_t ino, mode_t mode,
			   off_t next_off);

/* Add one name with its entry (plus mode). Returns 0 added — one reference to
 * e->obj handed over, exactly as a lookup would — or 1 no room (nothing handed
 * over), or a negative errno (nothing handed over). Outside plus mode this
 * adds the plain name and still takes the reference (given back by forget). */
FSP_API int fsp_dirbuf_add_plus(fsp_dirbuf *db, const char *name, const struct fsp_entry *e,
				off_t next_off);

#endif
