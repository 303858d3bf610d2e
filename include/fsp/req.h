/* fsp/req.h — what a callback can ask about the request it is serving.
 *
 * An fsp_req is borrowed: valid only while the callback that received it runs,
 * and only on that callback's thread.
 */
#ifndef FSP_REQ_H
#define FSP_REQ_H

#include <fsp/common.h>
#include <sys/types.h>

/* The caller's credentials and process, as the kernel reported them. */
FSP_API uid_t fsp_req_uid(const fsp_req *r);
FSP_API gid_t fsp_req_gid(const fsp_req *r);
FSP_API pid_t fsp_req_pid(const fsp_req *r);

/* The caller's umask for create/mkdir/mknod/tmpfile. The kernel has already
 * applied it to the mode passed in, so most file systems ignore this. */
FSP_API mode_t fsp_req_umask(const fsp_req *r);

/* Supplementary groups of the caller, when the kernel sends them (protocol
 * 7.40+, create-type requests only). Copies up to n into list and returns
 * how many there are in all; 0 when none were sent. */
FSP_API int fsp_req_groups(const fsp_req *r, gid_t *list, int n);

/* Non-zero once the kernel has asked to interrupt this request (the caller
 * got a signal). A long callback polls this and returns -EINTR early. */
FSP_API int fsp_req_interrupted(const fsp_req *r);

/* The session serving this request; never NULL. */
FSP_API fsp_session *fsp_req_session(const fsp_req *r);

/* The opcode name of this request ("LOOKUP", "WRITE", ...), for logs. */
FSP_API const char *fsp_req_opname(const fsp_req *r);

#endif
