/* libcoord end to end against a real ensemble (COORD_SERVERS / COORD_CA): bad arguments,
 * every data-model op blocking and async, watches, ACLs, multi, the lock and election
 * recipes, and the callback-thread and close rules. */
#include "common.h"

/* ---- session events, recorded with the thread they ran on ---- */
#define MAX_EVENTS 32
static atomic_int n_events;
static coord_session_event events[MAX_EVENTS];
static pthread_t cb_thread;
static atomic_int cb_thread_set, cb_thread_mismatch;

static void note_thread(void) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&cb_thread_set, &expected, 1)) {
        cb_thread = pthread_self();
        atomic_store(&cb_thread_set, 2);
    } else {
        while (atomic_load(&cb_thread_set) != 2) {
        }
        if (!pthread_equal(cb_thread, pthread_self())) atomic_fetch_add(&cb_thread_mismatch, 1);
    }
}

static void on_session(coord_session_event ev, void *ctx) {
    note_thread();
    CHECK(ctx == (void *)&n_events);
    int i = atomic_fetch_add(&n_events, 1);
    if (i < MAX_EVENTS) events[i] = ev;
}

/* ---- watches ---- */
struct watch_rec {
    atomic_int fired;
    atomic_int type;
    char path[128];
};
static void on_watch(coord_event_type ev, const char *path, void *ctx) {
    note_thread();
    struct watch_rec *w = ctx;
    snprintf(w->path, sizeof w->path, "%s", path ? path : "(null)");
    atomic_store(&w->type, ev);
    atomic_fetch_add(&w->fired, 1);
}

/* ---- completions: copies what the callback is given (it is only borrowed) ---- */
struct done {
    atomic_int count;
    coord_rc rc;
    bool had_result;
    char path[128];
    char data[64];
    size_t data_len;
    size_t children;
    size_t acl;
    char acl_scheme[16];
    size_t results;
    coord_rc op0_rc;
    char op0_path[128];
    bool valid;
    bool has_stat;
    coord_stat stat;
};
static void on_done(coord_rc rc, const coord_result *r, void *ctx) {
    note_thread();
    struct done *d = ctx;
    d->rc = rc;
    d->had_result = r != NULL;
    if (r) {
        if (r->path) snprintf(d->path, sizeof d->path, "%s", r->path);
        if (r->data && r->data_len < sizeof d->data) {
            memcpy(d->data, r->data, r->data_len);
            d->data[r->data_len] = 0;
        }
        d->data_len = r->data_len;
        d->children = r->children_count;
        d->acl = r->acl_count;
        if (r->acl_count > 0) snprintf(d->acl_scheme, sizeof d->acl_scheme, "%s", r->acl[0].scheme);
        d->results = r->results_count;
        if (r->results_count > 0) {
            d->op0_rc = r->results[0].rc;
            if (r->results[0].path)
                snprintf(d->op0_path, sizeof d->op0_path, "%s", r->results[0].path);
        }
        d->valid = r->valid;
        d->has_stat = r->has_stat;
        d->stat = r->stat;
    }
    atomic_fetch_add(&d->count, 1);
}
#define AWAIT(d) CHECK(wait_for(&(d).count, 1, 20.0) && atomic_load(&(d).count) == 1)

static void bad_arguments(coord_client *c) {
    coord_buf b = {0};
    coord_strings s = {0};
    coord_acl_list al = {0};
    coord_stat st;
    bool flag;
    const char *bad = "/\xff\xfe";
    struct done d = {0};
    CHECK_RC(coord_connect(NULL, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(NULL, "/x", NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, NULL, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, bad, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, "/x", NULL, 5, 0, 0, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, "/x", NULL, 0, 99, 0, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, "/x", NULL, 0, 0, -5, NULL, 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_create(c, "/x", NULL, 0, 0, 0, NULL, 2, NULL, NULL), COORD_EBADARGUMENTS);
    coord_acl nul_scheme = {COORD_PERM_ALL, NULL, "anyone"};
    CHECK_RC(coord_create(c, "/x", NULL, 0, 0, 0, &nul_scheme, 1, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_delete(c, NULL, -1), COORD_EBADARGUMENTS);
    CHECK_RC(coord_delete(NULL, "/x", -1), COORD_EBADARGUMENTS);
    CHECK_RC(coord_delete(c, bad, -1), COORD_EBADARGUMENTS);
    CHECK_RC(coord_exists(c, NULL, 0, &st), COORD_EBADARGUMENTS);
    CHECK_RC(coord_exists(c, "/", 7, &st), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(c, "/", 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(NULL, "/", 0, &b, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(c, bad, 0, &b, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_set(c, "/", NULL, 3, -1, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_set(c, NULL, NULL, 0, -1, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_children(c, "/", 0, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_children(c, bad, 0, &s, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_wexists(c, "/", NULL, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_wget(c, "/", on_watch, NULL, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_wchildren(c, bad, on_watch, NULL, &s, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get_acl(c, "/", NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get_acl(c, NULL, &al, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_set_acl(c, "/", NULL, 1, -1, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_sync(c, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_sync(NULL, "/"), COORD_EBADARGUMENTS);
    CHECK_RC(coord_add_auth(c, NULL, NULL, 0), COORD_EBADARGUMENTS);
    CHECK_RC(coord_add_auth(c, "digest", NULL, 4), COORD_EBADARGUMENTS);
    CHECK_RC(coord_check_sequencer(c, NULL, 4, &flag), COORD_EBADARGUMENTS);
    CHECK_RC(coord_check_sequencer(c, (const uint8_t *)"x", 1, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_multi(c, NULL, 2, NULL), COORD_EBADARGUMENTS);
    coord_op badop = {77, "/x", NULL, 0, -1, 0, 0};
    CHECK_RC(coord_multi(c, &badop, 1, NULL), COORD_EBADARGUMENTS);
    coord_op nullpath = {COORD_OP_SET, NULL, NULL, 0, -1, 0, 0};
    CHECK_RC(coord_multi(c, &nullpath, 1, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_acreate(c, "/x", NULL, 0, 0, 0, NULL, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_acreate(c, bad, NULL, 0, 0, 0, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_adelete(NULL, "/x", -1, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aexists(c, NULL, 0, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aget(c, "/", 3, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aset(c, "/", NULL, 1, -1, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_achildren(c, bad, 0, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_async(c, NULL, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aget_acl(c, "/", NULL, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aset_acl(c, "/", NULL, 1, -1, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_amulti(c, NULL, 1, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aadd_auth(c, bad, NULL, 0, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_acheck_sequencer(c, NULL, 1, on_done, &d), COORD_EBADARGUMENTS);
    CHECK(atomic_load(&d.count) == 0); /* a refused async call never calls back */
    coord_lock *l = NULL;
    coord_election *e = NULL;
    CHECK_RC(coord_lock_new(NULL, "/l", 0, NULL, 0, &l), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_new(c, bad, 0, NULL, 0, &l), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_new(c, "/l", 0, NULL, 0, NULL), COORD_EBADARGUMENTS);
    CHECK(l == NULL);
    CHECK_RC(coord_lock_acquire(NULL, 0, &flag), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_release(NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_sequencer(NULL, &b), COORD_EBADARGUMENTS);
    CHECK(!coord_lock_is_held(NULL));
    CHECK_RC(coord_election_new(c, NULL, NULL, 0, &e), COORD_EBADARGUMENTS);
    CHECK_RC(coord_election_campaign(NULL, 0, &flag), COORD_EBADARGUMENTS);
    CHECK_RC(coord_election_resign(NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_election_leader(NULL, &b, NULL), COORD_EBADARGUMENTS);
    CHECK(e == NULL);
    CHECK_RC(coord_server_status(NULL, NULL, 0, NULL), COORD_EBADARGUMENTS);
    CHECK(coord_session_id(NULL) == 0);
    /* Frees accept NULL and empty values; closing NULL is a no-op. */
    coord_buf_free(NULL);
    coord_buf_free(&b);
    coord_strings_free(NULL);
    coord_strings_free(&s);
    coord_acl_list_free(NULL);
    coord_string_free(NULL);
    coord_op_results_free(NULL, 3);
    coord_lock_free(NULL);
    coord_election_free(NULL);
    CHECK_RC(coord_close(NULL), COORD_OK);
}

static void data_model(coord_client *c) {
    char a[160], seqp[160], ttlp[160], eph[160];
    char *created = NULL;
    coord_stat st;
    coord_buf b;
    CHECK_RC(coord_create(c, test_root, (const uint8_t *)"r", 1, 0, 0, NULL, 0, &created, &st), COORD_OK);
    CHECK(created && strcmp(created, test_root) == 0 && st.version == 0 && st.data_length == 1);
    coord_string_free(created);
    CHECK_RC(coord_create(c, test_root, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_ENODEEXISTS);
    CHECK_RC(coord_create(c, "no-slash", NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_EINVALIDPATH);
    under(a, sizeof a, "a");
    CHECK_RC(coord_create(c, a, (const uint8_t *)"hello", 5, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_get(c, a, 0, &b, &st), COORD_OK);
    CHECK(b.len == 5 && memcmp(b.data, "hello", 5) == 0 && st.version == 0 && st.ephemeral_owner == 0);
    coord_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    coord_buf_free(&b); /* a second free of the emptied buf is harmless */
    CHECK_RC(coord_set(c, a, (const uint8_t *)"x", 1, 7, NULL), COORD_EBADVERSION);
    CHECK_RC(coord_set(c, a, (const uint8_t *)"world", 5, 0, &st), COORD_OK);
    CHECK(st.version == 1 && st.data_length == 5);
    CHECK_RC(coord_get(c, a, COORD_READ_LINEARIZABLE, &b, &st), COORD_OK);
    CHECK(b.len == 5 && memcmp(b.data, "world", 5) == 0 && st.version == 1);
    coord_buf_free(&b);
    CHECK_RC(coord_set(c, a, NULL, 0, COORD_ANY_VERSION, &st), COORD_OK);
    CHECK_RC(coord_get(c, a, 0, &b, &st), COORD_OK);
    CHECK(b.len == 0 && b.data == NULL && st.version == 2);
    CHECK_RC(coord_exists(c, a, COORD_READ_LINEARIZABLE, &st), COORD_OK);
    CHECK(st.version == 2);
    CHECK_RC(coord_exists(c, "/nope/nope", 0, &st), COORD_ENONODE);
    CHECK_RC(coord_get(c, "/nope/nope", 0, &b, NULL), COORD_ENONODE);
    under(seqp, sizeof seqp, "s-");
    CHECK_RC(coord_create(c, seqp, NULL, 0, COORD_CREATE_SEQUENTIAL | COORD_CREATE_EPHEMERAL, 0,
                          NULL, 0, &created, &st), COORD_OK);
    CHECK(created && strlen(created) == strlen(seqp) + 10 && strncmp(created, seqp, strlen(seqp)) == 0);
    CHECK(st.ephemeral_owner == coord_session_id(c));
    CHECK_RC(coord_delete(c, created, 5), COORD_EBADVERSION);
    CHECK_RC(coord_delete(c, created, 0), COORD_OK);
    CHECK_RC(coord_exists(c, created, 0, NULL), COORD_ENONODE);
    coord_string_free(created);
    under(eph, sizeof eph, "eph");
    CHECK_RC(coord_create(c, eph, NULL, 0, COORD_CREATE_EPHEMERAL, 0, NULL, 0, NULL, NULL), COORD_OK);
    char under_eph[200];
    snprintf(under_eph, sizeof under_eph, "%s/child", eph);
    CHECK_RC(coord_create(c, under_eph, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_ENOCHILDRENFOREPHEMERALS);
    under(ttlp, sizeof ttlp, "ttl");
    CHECK_RC(coord_create(c, ttlp, NULL, 0, 0, 60000, NULL, 0, NULL, NULL), COORD_OK);
    coord_strings kids;
    CHECK_RC(coord_children(c, test_root, COORD_READ_LINEARIZABLE, &kids, &st), COORD_OK);
    CHECK(kids.count == 3 && st.num_children == 3);
    int seen_a = 0, seen_eph = 0, seen_ttl = 0;
    for (size_t i = 0; i < kids.count; i++) {
        seen_a += strcmp(kids.items[i], "a") == 0;
        seen_eph += strcmp(kids.items[i], "eph") == 0;
        seen_ttl += strcmp(kids.items[i], "ttl") == 0;
    }
    CHECK(seen_a == 1 && seen_eph == 1 && seen_ttl == 1);
    coord_strings_free(&kids);
    CHECK(kids.items == NULL && kids.count == 0);
    CHECK_RC(coord_delete(c, test_root, -1), COORD_ENOTEMPTY);
    CHECK_RC(coord_sync(c, test_root), COORD_OK);

    /* ACLs and auth. */
    coord_acl_list acl;
    CHECK_RC(coord_get_acl(c, a, &acl, &st), COORD_OK);
    CHECK(acl.count == 1 && acl.items[0].perms == COORD_PERM_ALL &&
          strcmp(acl.items[0].scheme, "world") == 0 && strcmp(acl.items[0].id, "anyone") == 0);
    coord_acl_list_free(&acl);
    CHECK(acl.items == NULL && acl.count == 0);
    CHECK_RC(coord_add_auth(c, "digest", (const uint8_t *)"bob:secret", 10), COORD_OK);
    coord_acl mine = {COORD_PERM_ALL, "auth", ""};
    CHECK_RC(coord_set_acl(c, a, &mine, 1, 5, NULL), COORD_EBADVERSION);
    CHECK_RC(coord_set_acl(c, a, &mine, 1, COORD_ANY_VERSION, &st), COORD_OK);
    CHECK(st.aversion == 1);
    CHECK_RC(coord_set_acl(c, a, &mine, 0, COORD_ANY_VERSION, NULL), COORD_EINVALIDACL);
    CHECK_RC(coord_get_acl(c, a, &acl, NULL), COORD_OK);
    CHECK(acl.count == 1 && strcmp(acl.items[0].scheme, "digest") == 0 &&
          strncmp(acl.items[0].id, "bob:", 4) == 0);
    coord_acl_list_free(&acl);
}

static void other_session_sees_acl(const char *path) {
    coord_client *o = NULL;
    CHECK_RC(coord_connect(NULL, NULL, &o), COORD_OK);
    if (!o) return;
    coord_buf b;
    CHECK_RC(coord_get(o, path, 0, &b, NULL), COORD_ENOAUTH);
    CHECK_RC(coord_add_auth(o, "digest", (const uint8_t *)"bob:secret", 10), COORD_OK);
    CHECK_RC(coord_get(o, path, 0, &b, NULL), COORD_OK);
    coord_buf_free(&b);
    CHECK_RC(coord_close(o), COORD_OK);
}

static void multi(coord_client *c) {
    char m1[160], a[160];
    under(m1, sizeof m1, "m1");
    under(a, sizeof a, "a");
    coord_op ops[2] = {
        {COORD_OP_CREATE, m1, (const uint8_t *)"1", 1, 0, 0, 0},
        {COORD_OP_CHECK, a, NULL, 0, 99, 0, 0},
    };
    coord_op_result res[2];
    CHECK_RC(coord_multi(c, ops, 2, res), COORD_EBADVERSION);
    CHECK(res[0].rc == COORD_ERUNTIMEINCONSISTENCY || res[0].rc == COORD_OK);
    CHECK(res[1].rc == COORD_EBADVERSION);
    coord_op_results_free(res, 2);
    CHECK_RC(coord_exists(c, m1, 0, NULL), COORD_ENONODE); /* nothing applied */
    ops[1].version = 2;
    CHECK_RC(coord_multi(c, ops, 2, res), COORD_OK);
    CHECK(res[0].rc == COORD_OK && res[0].path && strcmp(res[0].path, m1) == 0 && res[1].rc == COORD_OK);
    coord_op_results_free(res, 2);
    CHECK(res[0].path == NULL);
    coord_op set_then_delete[2] = {
        {COORD_OP_SET, m1, (const uint8_t *)"22", 2, 0, 0, 0},
        {COORD_OP_CHECK, m1, NULL, 0, 1, 0, 0},
    };
    CHECK_RC(coord_multi(c, set_then_delete, 2, res), COORD_OK);
    CHECK(res[0].stat.version == 1);
    coord_op_results_free(res, 2);
    CHECK_RC(coord_multi(c, NULL, 0, NULL), COORD_OK);
}

static void watches(coord_client *c) {
    char m1[160], w[160];
    under(m1, sizeof m1, "m1");
    under(w, sizeof w, "w");
    coord_buf b;
    coord_strings s;
    struct watch_rec data = {0}, created = {0}, child = {0}, deleted = {0};
    CHECK_RC(coord_wget(c, m1, on_watch, &data, &b, NULL), COORD_OK);
    CHECK(b.len == 2 && memcmp(b.data, "22", 2) == 0);
    coord_buf_free(&b);
    CHECK_RC(coord_wexists(c, w, on_watch, &created, NULL), COORD_ENONODE);
    CHECK_RC(coord_wchildren(c, test_root, on_watch, &child, &s, NULL), COORD_OK);
    coord_strings_free(&s);
    CHECK_RC(coord_set(c, m1, (const uint8_t *)"3", 1, COORD_ANY_VERSION, NULL), COORD_OK);
    CHECK_RC(coord_create(c, w, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK(wait_for(&data.fired, 1, 10) && wait_for(&created.fired, 1, 10) && wait_for(&child.fired, 1, 10));
    CHECK(atomic_load(&data.type) == COORD_EVENT_CHANGED && strcmp(data.path, m1) == 0);
    CHECK(atomic_load(&created.type) == COORD_EVENT_CREATED && strcmp(created.path, w) == 0);
    CHECK(atomic_load(&child.type) == COORD_EVENT_CHILD && strcmp(child.path, test_root) == 0);
    CHECK_RC(coord_wexists(c, w, on_watch, &deleted, NULL), COORD_OK);
    CHECK_RC(coord_delete(c, w, -1), COORD_OK);
    CHECK(wait_for(&deleted.fired, 1, 10) && atomic_load(&deleted.type) == COORD_EVENT_DELETED);
    /* One-shot: later changes do not fire them again. */
    CHECK_RC(coord_set(c, m1, (const uint8_t *)"4", 1, COORD_ANY_VERSION, NULL), COORD_OK);
    CHECK_RC(coord_sync(c, m1), COORD_OK);
    sleep_ms(200);
    CHECK(atomic_load(&data.fired) == 1 && atomic_load(&created.fired) == 1 &&
          atomic_load(&child.fired) == 1 && atomic_load(&deleted.fired) == 1);
}

static void async_ops(coord_client *c) {
    char p[160], m2[160];
    under(p, sizeof p, "async");
    under(m2, sizeof m2, "m2");
    struct done d1 = {0}, d2 = {0}, d3 = {0}, d4 = {0}, d5 = {0}, d6 = {0}, d7 = {0}, d8 = {0},
                d9 = {0}, d10 = {0}, d11 = {0}, d12 = {0}, d13 = {0};
    CHECK_RC(coord_acreate(c, p, (const uint8_t *)"v0", 2, 0, 0, on_done, &d1), COORD_OK);
    AWAIT(d1);
    CHECK(d1.rc == COORD_OK && strcmp(d1.path, p) == 0 && d1.has_stat && d1.stat.version == 0);
    CHECK_RC(coord_aset(c, p, (const uint8_t *)"v1", 2, 0, on_done, &d2), COORD_OK);
    AWAIT(d2);
    CHECK(d2.rc == COORD_OK && d2.has_stat && d2.stat.version == 1);
    CHECK_RC(coord_aget(c, p, COORD_READ_LINEARIZABLE, on_done, &d3), COORD_OK);
    AWAIT(d3);
    CHECK(d3.rc == COORD_OK && d3.data_len == 2 && strcmp(d3.data, "v1") == 0 && d3.stat.version == 1);
    CHECK_RC(coord_aexists(c, p, 0, on_done, &d4), COORD_OK);
    AWAIT(d4);
    CHECK(d4.rc == COORD_OK && d4.has_stat && d4.stat.data_length == 2);
    CHECK_RC(coord_achildren(c, test_root, 0, on_done, &d5), COORD_OK);
    AWAIT(d5);
    CHECK(d5.rc == COORD_OK && d5.children == 5); /* a eph ttl m1 async */
    CHECK_RC(coord_async(c, p, on_done, &d6), COORD_OK);
    AWAIT(d6);
    CHECK(d6.rc == COORD_OK && !d6.has_stat);
    CHECK_RC(coord_aget_acl(c, p, on_done, &d7), COORD_OK);
    AWAIT(d7);
    CHECK(d7.rc == COORD_OK && d7.acl == 1 && strcmp(d7.acl_scheme, "world") == 0);
    coord_acl all = {COORD_PERM_ALL, "world", "anyone"};
    CHECK_RC(coord_aset_acl(c, p, &all, 1, 0, on_done, &d8), COORD_OK);
    AWAIT(d8);
    CHECK(d8.rc == COORD_OK && d8.stat.aversion == 1);
    coord_op ops[2] = {
        {COORD_OP_CREATE, m2, NULL, 0, 0, 0, 0},
        {COORD_OP_CHECK, p, NULL, 0, 1, 0, 0},
    };
    CHECK_RC(coord_amulti(c, ops, 2, on_done, &d9), COORD_OK);
    AWAIT(d9);
    CHECK(d9.rc == COORD_OK && d9.results == 2 && d9.op0_rc == COORD_OK && strcmp(d9.op0_path, m2) == 0);
    CHECK_RC(coord_amulti(c, ops, 2, on_done, &d10), COORD_OK);
    AWAIT(d10);
    CHECK(d10.rc == COORD_ENODEEXISTS && d10.had_result && d10.results == 2 && d10.op0_rc == COORD_ENODEEXISTS);
    CHECK_RC(coord_aadd_auth(c, "digest", (const uint8_t *)"eve:pw", 6, on_done, &d11), COORD_OK);
    AWAIT(d11);
    CHECK(d11.rc == COORD_OK);
    CHECK_RC(coord_adelete(c, "/nope/nope", -1, on_done, &d12), COORD_OK);
    AWAIT(d12);
    CHECK(d12.rc == COORD_ENONODE && !d12.had_result);
    CHECK_RC(coord_acheck_sequencer(c, (const uint8_t *)"junk", 4, on_done, &d13), COORD_OK);
    AWAIT(d13);
    CHECK(d13.rc == COORD_EBADARGUMENTS);
    /* Many in flight at once: each completes once, in the order they were made. */
    enum { N = 64 };
    static struct done many[N];
    memset(many, 0, sizeof many);
    for (int i = 0; i < N; i++) CHECK_RC(coord_aget(c, p, 0, on_done, &many[i]), COORD_OK);
    for (int i = 0; i < N; i++) {
        AWAIT(many[i]);
        CHECK(many[i].rc == COORD_OK && strcmp(many[i].data, "v1") == 0);
    }
    struct done del = {0};
    CHECK_RC(coord_adelete(c, m2, 0, on_done, &del), COORD_OK);
    AWAIT(del);
    CHECK(del.rc == COORD_OK);
}

static void recipes(coord_client *c, coord_client *c2) {
    char lockp[160], elp[160];
    under(lockp, sizeof lockp, "lock");
    under(elp, sizeof elp, "election");
    coord_lock *l = NULL, *l2 = NULL;
    CHECK_RC(coord_lock_new(c, lockp, 0, (const uint8_t *)"me", 2, &l), COORD_OK);
    CHECK_RC(coord_lock_new(c2, lockp, 0, (const uint8_t *)"other", 5, &l2), COORD_OK);
    bool got = false;
    CHECK_RC(coord_lock_acquire(l, 5000, &got), COORD_OK);
    CHECK(got && coord_lock_is_held(l));
    bool got2 = true;
    CHECK_RC(coord_lock_acquire(l2, 300, &got2), COORD_OK);
    CHECK(!got2 && !coord_lock_is_held(l2)); /* held by the other session: times out */
    coord_buf seq;
    CHECK_RC(coord_lock_sequencer(l, &seq), COORD_OK);
    CHECK(seq.len > 0 && seq.data != NULL);
    bool valid = false;
    CHECK_RC(coord_check_sequencer(c2, seq.data, seq.len, &valid), COORD_OK);
    CHECK(valid);
    char fenced[160];
    under(fenced, sizeof fenced, "fenced");
    coord_op guarded[2] = {
        {COORD_OP_CHECK_SEQUENCER, NULL, seq.data, seq.len, 0, 0, 0},
        {COORD_OP_CREATE, fenced, NULL, 0, 0, 0, 0},
    };
    coord_op_result res[2];
    CHECK_RC(coord_multi(c, guarded, 2, res), COORD_OK);
    coord_op_results_free(res, 2);
    CHECK_RC(coord_lock_release(l), COORD_OK);
    CHECK(!coord_lock_is_held(l));
    CHECK_RC(coord_check_sequencer(c, seq.data, seq.len, &valid), COORD_OK);
    CHECK(!valid);
    guarded[1].path = lockp; /* any op: the check fails first */
    CHECK_RC(coord_multi(c, guarded, 2, res), COORD_ESTALESEQUENCER);
    coord_op_results_free(res, 2);
    CHECK_RC(coord_check_sequencer(c, (const uint8_t *)"junk", 4, &valid), COORD_EBADARGUMENTS);
    coord_buf_free(&seq);
    CHECK_RC(coord_lock_release(l), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_sequencer(l, &seq), COORD_EBADARGUMENTS);
    CHECK_RC(coord_lock_acquire(l2, 5000, &got2), COORD_OK);
    CHECK(got2 && coord_lock_is_held(l2));
    CHECK_RC(coord_lock_release(l2), COORD_OK);
    coord_lock_free(l);
    coord_lock_free(l2);

    coord_election *e = NULL, *e2 = NULL;
    CHECK_RC(coord_election_new(c, elp, (const uint8_t *)"addr:1", 6, &e), COORD_OK);
    CHECK_RC(coord_election_new(c2, elp, (const uint8_t *)"addr:2", 6, &e2), COORD_OK);
    coord_buf v;
    uint64_t term = 0, term2 = 0;
    CHECK_RC(coord_election_leader(e, &v, &term), COORD_ENONODE);
    bool leading = false;
    CHECK_RC(coord_election_campaign(e, 5000, &leading), COORD_OK);
    CHECK(leading);
    bool leading2 = true;
    CHECK_RC(coord_election_campaign(e2, 300, &leading2), COORD_OK);
    CHECK(!leading2);
    CHECK_RC(coord_sync(c2, elp), COORD_OK); /* c2 may be on another server: catch up */
    CHECK_RC(coord_election_leader(e2, &v, &term), COORD_OK);
    CHECK(v.len == 6 && memcmp(v.data, "addr:1", 6) == 0 && term != 0);
    coord_buf_free(&v);
    CHECK_RC(coord_election_resign(e), COORD_OK);
    CHECK_RC(coord_election_leader(e, &v, &term2), COORD_ENONODE);
    CHECK_RC(coord_election_campaign(e2, 5000, &leading2), COORD_OK);
    CHECK(leading2);
    CHECK_RC(coord_sync(c, elp), COORD_OK);
    CHECK_RC(coord_election_leader(e, &v, &term2), COORD_OK);
    CHECK(v.len == 6 && memcmp(v.data, "addr:2", 6) == 0 && term2 > term);
    coord_buf_free(&v);
    CHECK_RC(coord_election_resign(e2), COORD_OK);
    coord_election_free(e);
    coord_election_free(e2);
}

/* Closing from inside a callback is allowed. */
struct close_ctx {
    coord_client *c;
    atomic_int closed;
    coord_rc rc;
};
static void close_from_callback(coord_rc rc, const coord_result *r, void *ctx) {
    (void)r;
    struct close_ctx *cc = ctx;
    CHECK(rc == COORD_OK);
    cc->rc = coord_close(cc->c);
    atomic_store(&cc->closed, 1);
}

int main(void) {
    alarm(240);
    make_root("basic");
    CHECK(strcmp(coord_strerror(COORD_ENONODE), "no such node") == 0);
    CHECK(strcmp(coord_strerror(12345), "unknown error code") == 0);
    CHECK(coord_strerror(COORD_EPANIC) != NULL);

    coord_client *c = NULL;
    CHECK_RC(coord_connect("not-an-address", NULL, &c), COORD_EBADARGUMENTS);
    CHECK(c == NULL);
    CHECK_RC(coord_connect("\xff", NULL, &c), COORD_EBADARGUMENTS);
    coord_options o = {0};
    o.session_cb = on_session;
    o.session_ctx = &n_events;
    o.ca_path = "/nonexistent/ca.pem";
    CHECK(coord_connect(NULL, &o, &c) != COORD_OK && c == NULL);
    o.ca_path = NULL;
    CHECK_RC(coord_connect(NULL, &o, &c), COORD_OK);
    if (!c) return finish("test_basic");
    CHECK(coord_session_id(c) != 0);
    CHECK(wait_for(&n_events, 1, 5) && events[0] == COORD_SESSION_CONNECTED);
    coord_client *c2 = NULL;
    CHECK_RC(coord_connect(NULL, NULL, &c2), COORD_OK);
    if (!c2) return finish("test_basic");
    CHECK(coord_session_id(c2) != coord_session_id(c));

    bad_arguments(c);
    data_model(c);
    char a[160];
    under(a, sizeof a, "a");
    other_session_sees_acl(a);
    multi(c);
    watches(c);
    async_ops(c);
    recipes(c, c2);

    /* Every callback ran on one library thread, never on this one. */
    CHECK(atomic_load(&cb_thread_set) == 2 && atomic_load(&cb_thread_mismatch) == 0);
    CHECK(!pthread_equal(cb_thread, pthread_self()));

    /* An armed watch fires COORD_EVENT_LOST at close, async calls in flight complete, and
     * the session callback gets CLOSED last; all before coord_close returns. */
    struct watch_rec lost = {0};
    CHECK_RC(coord_wexists(c, "/never-created-here", on_watch, &lost, NULL), COORD_ENONODE);
    struct done inflight[16];
    memset(inflight, 0, sizeof inflight);
    for (int i = 0; i < 16; i++) CHECK_RC(coord_aget(c, a, 0, on_done, &inflight[i]), COORD_OK);
    CHECK_RC(coord_close(c), COORD_OK);
    CHECK(atomic_load(&lost.fired) == 1 && atomic_load(&lost.type) == COORD_EVENT_LOST);
    for (int i = 0; i < 16; i++) {
        CHECK(atomic_load(&inflight[i].count) == 1);
        CHECK(inflight[i].rc == COORD_OK || inflight[i].rc == COORD_EAPIERROR);
    }
    int ne = atomic_load(&n_events);
    CHECK(ne == 2 && events[0] == COORD_SESSION_CONNECTED && events[ne - 1] == COORD_SESSION_CLOSED);

    /* Closing from a completion callback works (the callback thread ends after it). */
    struct close_ctx cc = {c2, 0, COORD_EPANIC};
    CHECK_RC(coord_aexists(c2, "/", 0, close_from_callback, &cc), COORD_OK);
    CHECK(wait_for(&cc.closed, 1, 10));
    CHECK(cc.rc == COORD_OK);
    sleep_ms(100); /* the detached callback thread ends once that callback returned */
    return finish("test_basic");
}
