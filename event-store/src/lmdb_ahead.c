/* Zeros written ahead of an LMDB environment's last page (es/lmdb_ahead.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "es/lmdb_ahead.h"
#include "sp/log.h"

#include "sp/banned.h"

void es_lmdb_write_ahead(MDB_env *env, int64_t *written_to, const char *what)
{
    static const char zeros[64 * 1024];
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    int64_t used, to, at;

    if (*written_to < 0 || mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0 ||
        mdb_env_get_fd(env, &fd) != 0)
        return;
    used = ((int64_t)info.me_last_pgno + 1) * (int64_t)st.ms_psize;
    if (*written_to - used >= ES_LMDB_AHEAD_CHUNK)
        return;
    at = *written_to > used ? *written_to : used;
    to = used + 2 * ES_LMDB_AHEAD_CHUNK;
    if (to > (int64_t)info.me_mapsize)
        to = (int64_t)info.me_mapsize;
    for (; at < to; at += (int64_t)sizeof(zeros)) {
        size_t len = to - at < (int64_t)sizeof(zeros) ? (size_t)(to - at) : sizeof(zeros);
        if (pwrite(fd, zeros, len, (off_t)at) != (ssize_t)len)
            break;
    }
    if (at < to || fdatasync(fd) != 0) {
        sp_log(SP_LOG_WARN,
               "%s: could not write zeros ahead of the last page (%s); commits go "
               "on without them",
               what, strerror(errno));
        *written_to = -1;
        return;
    }
    *written_to = to;
}

int64_t es_lmdb_file_size(MDB_env *env)
{
    struct stat sb;
    mdb_filehandle_t fd;
    return mdb_env_get_fd(env, &fd) == 0 && fstat(fd, &sb) == 0 ? (int64_t)sb.st_size : -1;
}
