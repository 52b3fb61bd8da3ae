/* 8 threads on one coord_client at once, each doing a mix of blocking and async ops with
 * their results asserted, plus a shared counter incremented by compare-and-set from every
 * thread: the final value proves no update was lost or applied twice.
 * Reads here are the default (local) kind: linearizable reads issued concurrently with
 * other calls on one session currently get wrong replies (see bindings/c/README.md, known
 * issues); test_basic covers linearizable reads from one thread. */
#include "common.h"

enum { THREADS = 8, ROUNDS = 25, INCREMENTS = 10 };

static coord_client *client;
static char counter[160], shared_dir[160];

struct done {
    atomic_int count;
    coord_rc rc;
    char data[32];
};
static void on_done(coord_rc rc, const coord_result *r, void *ctx) {
    struct done *d = ctx;
    d->rc = rc;
    if (rc == COORD_OK && r && r->data && r->data_len < sizeof d->data) {
        memcpy(d->data, r->data, r->data_len);
        d->data[r->data_len] = 0;
    }
    atomic_fetch_add(&d->count, 1);
}

struct watch_rec {
    atomic_int fired;
    atomic_int type;
};
static void on_watch(coord_event_type ev, const char *path, void *ctx) {
    (void)path;
    struct watch_rec *w = ctx;
    atomic_store(&w->type, ev);
    atomic_fetch_add(&w->fired, 1);
}

static void increment_counter(void) {
    for (int attempt = 0; attempt < 1000; attempt++) {
        coord_buf b;
        coord_stat st;
        if (coord_get(client, counter, COORD_READ_LINEARIZABLE, &b, &st) != COORD_OK) {
            CHECK(!"get counter");
            return;
        }
        char text[32] = {0};
        memcpy(text, b.data, b.len < sizeof text - 1 ? b.len : sizeof text - 1);
        coord_buf_free(&b);
        char next[32];
        int n = snprintf(next, sizeof next, "%ld", strtol(text, NULL, 10) + 1);
        coord_rc rc = coord_set(client, counter, (const uint8_t *)next, (size_t)n, st.version, NULL);
        if (rc == COORD_OK) return;
        if (rc != COORD_EBADVERSION) {
            CHECK_RC(rc, COORD_EBADVERSION);
            return;
        }
    }
    CHECK(!"counter: 1000 conflicts in a row");
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    char mine[200], value[64], kid[240];
    snprintf(mine, sizeof mine, "%s/t%d", test_root, t);
    CHECK_RC(coord_create(client, mine, (const uint8_t *)"start", 5, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    struct watch_rec w = {0};
    for (int i = 0; i < ROUNDS; i++) {
        int n = snprintf(value, sizeof value, "t%d-%d", t, i);
        coord_stat st;
        if (i == ROUNDS - 1) {
            coord_buf wb;
            CHECK_RC(coord_wget(client, mine, on_watch, &w, &wb, NULL), COORD_OK);
            coord_buf_free(&wb);
        }
        CHECK_RC(coord_set(client, mine, (const uint8_t *)value, (size_t)n, i, &st), COORD_OK);
        CHECK(st.version == i + 1 && st.data_length == (uint32_t)n);
        coord_buf b;
        CHECK_RC(coord_get(client, mine, COORD_READ_LINEARIZABLE, &b, &st), COORD_OK);
        CHECK(b.len == (size_t)n && memcmp(b.data, value, (size_t)n) == 0 && st.version == i + 1);
        coord_buf_free(&b);
        CHECK_RC(coord_exists(client, mine, 0, &st), COORD_OK);
        CHECK(st.version == i + 1);
        snprintf(kid, sizeof kid, "%s/k%02d", mine, i);
        CHECK_RC(coord_create(client, kid, NULL, 0, COORD_CREATE_EPHEMERAL, 0, NULL, 0, NULL, NULL), COORD_OK);
        struct done d = {0};
        CHECK_RC(coord_aget(client, mine, 0, on_done, &d), COORD_OK);
        CHECK(wait_for(&d.count, 1, 30) && d.rc == COORD_OK && strcmp(d.data, value) == 0);
        if (i % 5 == 0) {
            char sp[240];
            snprintf(sp, sizeof sp, "%s/t%d-%d", shared_dir, t, i);
            coord_op ops[2] = {
                {COORD_OP_CHECK, mine, NULL, 0, i + 1, 0, 0},
                {COORD_OP_CREATE, sp, (const uint8_t *)value, (size_t)n, 0, 0, 0},
            };
            coord_op_result res[2];
            CHECK_RC(coord_multi(client, ops, 2, res), COORD_OK);
            CHECK(res[1].path && strcmp(res[1].path, sp) == 0);
            coord_op_results_free(res, 2);
        }
        if (i < INCREMENTS) increment_counter();
    }
    CHECK(wait_for(&w.fired, 1, 30) && atomic_load(&w.type) == COORD_EVENT_CHANGED);
    coord_strings kids;
    CHECK_RC(coord_children(client, mine, 0, &kids, NULL), COORD_OK);
    CHECK(kids.count == ROUNDS);
    coord_strings_free(&kids);
    sleep_ms(50);
    CHECK(atomic_load(&w.fired) == 1);
    return NULL;
}

int main(void) {
    alarm(240);
    make_root("threads");
    CHECK_RC(coord_connect(NULL, NULL, &client), COORD_OK);
    if (!client) return finish("test_threads");
    snprintf(counter, sizeof counter, "%s/counter", test_root);
    snprintf(shared_dir, sizeof shared_dir, "%s/shared", test_root);
    CHECK_RC(coord_create(client, test_root, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_create(client, counter, (const uint8_t *)"0", 1, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_create(client, shared_dir, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);

    double start = now_s();
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    coord_buf b;
    coord_stat st;
    CHECK_RC(coord_get(client, counter, COORD_READ_LINEARIZABLE, &b, &st), COORD_OK);
    char text[32] = {0};
    memcpy(text, b.data, b.len < sizeof text - 1 ? b.len : sizeof text - 1);
    coord_buf_free(&b);
    CHECK(strtol(text, NULL, 10) == THREADS * INCREMENTS && st.version == THREADS * INCREMENTS);
    coord_strings kids;
    CHECK_RC(coord_children(client, shared_dir, 0, &kids, &st), COORD_OK);
    CHECK(kids.count == THREADS * ((ROUNDS + 4) / 5) && st.num_children == kids.count);
    coord_strings_free(&kids);
    CHECK_RC(coord_close(client), COORD_OK);
    printf("test_threads: %d threads x %d rounds on one handle in %.2f s, counter %s\n", THREADS,
           ROUNDS, now_s() - start, text);
    return finish("test_threads");
}
