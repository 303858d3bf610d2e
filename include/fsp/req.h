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
 * got a signal), or once the session is ending (unmounted, aborted). A long
 * callback polls this and returns -EINTR early. */
FSP_API int fsp_req_interrupted(const fsp_req *r);

/* From a read callback only: send the data straight from the file
 * system's own memory, iov[0..n) in order (n <= FSP_READ_IOV_MAX), instead
 * of copying it into the buffer read was given: the reply is written from
 * there into the kernel, one copy instead of two. The memory must stay
 * valid and unchanged until this returns (hold the lock that guards it
 * across the call). At most the size read was asked for is sent; more is
 * -EINVAL and nothing is sent. Returns the number of bytes sent, which the
 * read callback then returns, or a negative errno (also returned by read;
 * -ENOENT: the request was interrupted and needs no answer). */
#define FSP_READ_IOV_MAX 512
struct iovec;
FSP_API ssize_t fsp_reply_read_iov(fsp_req *r, const struct iovec *iov, int n);

/* The session serving this request; never NULL. */
FSP_API fsp_session *fsp_req_session(const fsp_req *r);

/* The opcode name of this request ("LOOKUP", "WRITE", ...), for logs. */
FSP_API const char *fsp_req_opname(const fsp_req *r);

#endif
