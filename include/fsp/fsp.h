/* fsp/fsp.h — everything a file system program needs. See each header. */
#ifndef FSP_FSP_H
#define FSP_FSP_H

#include <fsp/common.h>
#include <fsp/ops.h>
#include <fsp/req.h>
#include <fsp/dirbuf.h>
#include <fsp/notify.h>
#include <fsp/session.h>

#endif
