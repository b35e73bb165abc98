/*
 * Shared fixture for the command-api HTTP tests (test_api.c, test_social.c,
 * test_kafka.c): the real app on an ephemeral port with its libevent loop in a second
 * thread, a mkdtemp scratch directory, config set-up, and the blocking HTTP call helpers
 * over sp_testsupport. Every helper fails the running cmocka test on error (fail_msg or
 * an assert), so none returns an error code.
 */
#ifndef CMD_TEST_H
#define CMD_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The JWT secret every fixture configures. */
#define CMD_TEST_SECRET "test-secret-0123456789"

struct event;
struct event_base;
struct sp_config;
struct cmd_app;

/* One app under test. Zero it, then cmd_test_fx_init(); owned by the test. */
struct cmd_test_fx {
    char dir[128];           /* scratch directory (removed by cmd_test_fx_fini) */
    char wm_dir[160];        /* <dir>/wm: writemodel.dir */
    struct sp_config *cfg;   /* owned */
    struct event_base *base; /* owned; the app's loop */
    struct event *keepalive; /* owned; keeps the loop dispatching while idle */
    struct cmd_app *app;     /* owned; NULL while stopped */
    pthread_t thread;        /* loop thread, valid while running */
    bool running;            /* the loop thread is dispatching */
    int port;                /* the app's ephemeral HTTP port */
};

/*
 * Create the scratch directory from @p dir_template (mkdtemp pattern, "...XXXXXX"),
 * load the default config and set the keys every test shares (writemodel dir and map
 * size, port 0, cheap argon2, CMD_TEST_SECRET, no rate limit), and create the event base with its
 * keepalive event. Does not start the app.
 */
void cmd_test_fx_init(struct cmd_test_fx *fx, const char *dir_template);

/* Point the embedded LMDB log at <dir>/log with a 64 MiB map. */
void cmd_test_fx_use_lmdb(struct cmd_test_fx *fx);

/* Stop the app if it runs, free the loop and config, remove the scratch directory. */
void cmd_test_fx_fini(struct cmd_test_fx *fx);

/*
 * cmocka teardown for a heap fixture in *@p state (calloc'd, set up with
 * cmd_test_fx_init): cmd_test_fx_fini() and free(). Returns 0.
 */
int cmd_test_teardown(void **state);

/* Remove @p dir and everything under it (nftw, no symlinks followed); fails the test. */
void cmd_test_rm_tree(const char *dir);

/* sp_config_set(@p key, @p value) on the fixture's config; fails the test on error. */
void cmd_test_cfg_set(struct cmd_test_fx *fx, const char *key, const char *value);

/* Run the loop in a thread; returns once it is dispatching (a break before is lost). */
void cmd_test_serve_start(struct cmd_test_fx *fx);

/* Break the loop and join its thread; no-op if it does not run. */
void cmd_test_serve_stop(struct cmd_test_fx *fx);

/* cmd_app_new() on the fixture's config and base, then cmd_test_serve_start(). */
void cmd_test_app_start(struct cmd_test_fx *fx);

/* cmd_test_serve_stop(), then free the app (fx->app becomes NULL). */
void cmd_test_app_stop(struct cmd_test_fx *fx);

/* Current value of the app's metric @p name with @p labels (see sp_metrics_value). */
double cmd_test_metric(struct cmd_test_fx *fx, const char *name, const char *labels);

/*
 * One HTTP request to the app. Returns the status (fails the test if there is no
 * answer). If @p out != NULL the body is parsed as JSON into *out (owned by the caller;
 * fails the test if it is not JSON). If @p ra != NULL the Retry-After header (or "") is
 * copied into @p ra of @p ra_size bytes. @p headers is a NULL-terminated list of
 * "Name: value" lines, or NULL.
 */
int cmd_test_call_full(struct cmd_test_fx *fx,
                       const char *method,
                       const char *path,
                       const char *const *headers,
                       const char *body,
                       json_t **out,
                       char *ra,
                       size_t ra_size);

/* cmd_test_call_full() without Retry-After. */
int cmd_test_call(struct cmd_test_fx *fx,
                  const char *method,
                  const char *path,
                  const char *const *headers,
                  const char *body,
                  json_t **out);

/* The string member @p key of @p o (borrowed); fails the test if there is none. */
const char *cmd_test_jstr(json_t *o, const char *key);

/* Whether the problem answer's errors[] names @p field. */
bool cmd_test_names_field(json_t *problem, const char *field);

/* A blocking TCP connection to 127.0.0.1:@p port (the caller closes it); fails the test. */
int cmd_test_raw_connect(int port);

/*
 * Read what is there (without blocking) on the raw connection @p fd into @p buf of
 * @p size bytes, NUL-terminated, *@p len bytes so far. Returns 0 until EOF, then the
 * answer's HTTP status, or -1 if it is not an HTTP/1.1 answer.
 */
int cmd_test_raw_pump(int fd, char *buf, size_t size, size_t *len);

/*
 * cmd_test_call() that also checks that every success (status < 300) with @p out carries
 * the same consistency token in its Stockpot-Position header and its "position" field.
 */
int cmd_test_call_pos(struct cmd_test_fx *fx,
                      const char *method,
                      const char *path,
                      const char *const *headers,
                      const char *body,
                      json_t **out);

/* A user with a session: its id and "Authorization: Bearer ..." header. */
struct cmd_test_user {
    char id[24];
    char auth[1024];
    const char *h[2]; /* {auth, NULL} */
};

/* Register @p name (password "correct horse") and log in as it, into @p u. */
void cmd_test_user_new(struct cmd_test_fx *fx, const char *name, struct cmd_test_user *u);

/*
 * Status of @p method on the printf-formatted path as @p u (NULL: anonymous), with
 * cmd_test_call_pos's checks; the parsed answer into *@p out (owned) if out != NULL.
 */
__attribute__((format(printf, 6, 7))) int cmd_test_act(struct cmd_test_fx *fx,
                                                       const struct cmd_test_user *u,
                                                       const char *method,
                                                       const char *body,
                                                       json_t **out,
                                                       const char *fmt,
                                                       ...);

/*
 * Every event of @p type in the app's log, in order: an owned array of
 * {stream, version, position, data}. Stops the serving loop meanwhile.
 */
json_t *cmd_test_events(struct cmd_test_fx *fx, const char *type);

/* How many events of @p type the app's log holds. */
size_t cmd_test_count(struct cmd_test_fx *fx, const char *type);

/* One request of cmd_test_one_batch: what to send, and its answer. */
struct cmd_test_raw {
    const char *method, *path;
    const char *auth; /* "Authorization: Bearer ..." line, or "" / NULL */
    const char *body; /* JSON, or NULL for none */
    int status;       /* out: the answer's status */
    char buf[4096];   /* out: the whole answer, NUL-terminated */
};

/*
 * Send the @p n requests on separate connections while the serving loop is stopped, then
 * run the loop from here until all are answered, and assert they were decided in exactly
 * one group-commit batch (stockpot_batches_total grew by one).
 */
void cmd_test_one_batch(struct cmd_test_fx *fx, struct cmd_test_raw *reqs, size_t n);

#endif
