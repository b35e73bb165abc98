/* Runs the stockpot-replay binary (or another program) as a child process for the
 * integration tests. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "replay_test_run.h"

#include "sp/banned.h"

/* Reads all of @p fd into an owned NUL-terminated string. */
static char *read_all(int fd)
{
    char chunk[4096], *buf = calloc(1, 1);
    size_t len = 0;
    ssize_t n;

    assert_non_null(buf);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        buf = realloc(buf, len + (size_t)n + 1);
        assert_non_null(buf);
        memcpy(buf + len, chunk, (size_t)n);
        len += (size_t)n;
        buf[len] = '\0';
    }
    return buf;
}

int replay_test_exec(char **out, char *const *argv)
{
    int fds[2], status = 0;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    *out = read_all(fds[0]);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int replay_test_run(char **out, const char *const *args)
{
    const char *bin = getenv("SP_BINARY_DIR");
    char path[512];
    char *argv[16];
    int argc = 0, rc;

    snprintf(path, sizeof(path), "%s/bin/stockpot-replay", bin ? bin : "..");
    argv[argc++] = path;
    for (size_t i = 0; args[i] != NULL && argc < 15; i++)
        argv[argc++] = strdup(args[i]); /* execv's argv is not const; no malloc after fork */
    argv[argc] = NULL;
    rc = replay_test_exec(out, argv);
    for (int i = 1; i < argc; i++)
        free(argv[i]);
    return rc;
}
