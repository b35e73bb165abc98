/* Test helper: run the stockpot-replay binary of the build tree and collect its output. */
#ifndef REPLAY_TEST_RUN_H
#define REPLAY_TEST_RUN_H

/**
 * Run `stockpot-replay <args...>` from $SP_BINARY_DIR/bin ("../bin" when unset) with stderr
 * merged into stdout, and wait for it to end.
 *
 * @param[out] out  everything it wrote, NUL-terminated; owned: free()
 * @param args      NULL-terminated arguments, at most 14 are passed; borrowed
 * @return its exit status; -1 if it did not exit (killed by a signal). Fails the test if
 *         the pipe, fork or wait fails.
 */
int replay_test_run(char **out, const char *const *args);

/**
 * Run @p argv (argv[0] looked up in PATH) with stderr merged into stdout.
 * @param[out] out  everything it wrote, NUL-terminated; owned: free()
 * @return its exit status; -1 if it did not exit (killed by a signal); 127 if it could not
 *         be started. Fails the test if the child cannot be forked.
 */
int replay_test_exec(char **out, char *const *argv);

#endif
