/* fsp/common.h — things every fsp header needs: the export macro, versions,
 * opaque handle types.
 *
 * Conventions of the whole API (read once, they hold everywhere):
 *  - Every call that can fail returns 0 (or a non-negative count) on success
 *    and a negative errno value on failure. errno is never used to report.
 *  - File system callbacks follow the same rule: return 0 / count, or -errno.
 *    The library range-checks what callbacks return: a value outside
 *    [-4095, -1] that is negative is replaced by -EIO and logged once.
 *  - Who owns memory is written on every call. "Borrowed" means valid only
 *    until the callback returns; copy what you keep.
 */
#ifndef FSP_COMMON_H
#define FSP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef FSP_BUILDING_LIB
#define FSP_API __attribute__((visibility("default")))
#else
#define FSP_API
#endif

#define FSP_VERSION_MAJOR 0
#define FSP_VERSION_MINOR 1
#define FSP_VERSION_STRING "0.1.0"

/* The node id the kernel uses for the root directory. A file system's root
 * object is always reported with this id. */
#define FSP_ROOT_INO 1

/* One mounted file system: the session. Created by fsp_session_new(), freed by
 * fsp_session_free(). Opaque. */
typedef struct fsp_session fsp_session;

/* One request from the kernel, as seen by a callback. Borrowed: valid only
 * while the callback that received it runs. Opaque. */
typedef struct fsp_req fsp_req;

/* The buffer a readdir callback fills. Borrowed, valid during the callback. */
typedef struct fsp_dirbuf fsp_dirbuf;

/* Library version as a string, e.g. "0.1.0". */
FSP_API const char *fsp_version(void);

#endif
