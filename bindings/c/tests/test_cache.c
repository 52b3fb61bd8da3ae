/* libcoord's client cache against a real ensemble (COORD_SERVERS / COORD_CA): a handle
 * connected with coord_options.cache reads exists / get / children (blocking and async)
 * from its session's cache; right after every write by another session (or by itself) its
 * next plain read returns the new value, many times over; repeated reads of an unchanged
 * node are hits, writes to cached nodes are invalidations (coord_cache_stats);
 * COORD_READ_LINEARIZABLE and watched reads bypass the cache; COORD_READ_CACHED caches on
 * a handle connected without it. */
#include "common.h"

enum { ITER = 100, HITS_READS = 50 };

static coord_cache_info stats(coord_client *c) {
    coord_cache_info s;
    memset(&s, 0xab, sizeof s); /* a call that wrote nothing shows as garbage */
    CHECK_RC(coord_cache_stats(c, &s), COORD_OK);
    return s;
}

static uint64_t reads(coord_cache_info s) { return s.hits + s.misses; }

/* ---- async completions: copy what the callback is given (it is only borrowed) ---- */
struct done {
    atomic_int count;
    coord_rc rc;
    char data[64];
    size_t children;
    char child[2][64];
    bool has_stat;
    coord_stat stat;
};
static void on_done(coord_rc rc, const coord_result *r, void *ctx) {
    struct done *d = ctx;
    d->rc = rc;
    if (r) {
        if (r->data && r->data_len < sizeof d->data) {
            memcpy(d->data, r->data, r->data_len);
            d->data[r->data_len] = 0;
        }
        d->children = r->children_count;
        for (size_t i = 0; i < r->children_count && i < 2; i++)
            snprintf(d->child[i], sizeof d->child[i], "%s", r->children[i]);
        d->has_stat = r->has_stat;
        d->stat = r->stat;
    }
    atomic_fetch_add(&d->count, 1);
}
#define AWAIT(d) CHECK(wait_for(&(d).count, 1, 20.0) && atomic_load(&(d).count) == 1)

struct watch_rec {
    atomic_int fired;
};
static void on_watch(coord_event_type ev, const char *path, void *ctx) {
    (void)ev;
    (void)path;
    atomic_fetch_add(&((struct watch_rec *)ctx)->fired, 1);
}

/* Whether a blocking get of `path` (read_flags `flags`) returns `want` at `version`. */
static int get_is(coord_client *c, const char *path, int flags, const char *want, int version) {
    coord_buf b;
    coord_stat st;
    coord_rc rc = coord_get(c, path, flags, &b, &st);
    if (rc != COORD_OK) {
        fprintf(stderr, "get %s: %s\n", path, coord_strerror(rc));
        return 0;
    }
    int ok = b.len == strlen(want) && (b.len == 0 || memcmp(b.data, want, b.len) == 0) &&
             st.version == version;
    if (!ok)
        fprintf(stderr, "get %s: '%.*s' v%d, want '%s' v%d\n", path, (int)b.len,
                b.data ? (const char *)b.data : "", st.version, want, version);
    coord_buf_free(&b);
    return ok;
}

/* Whether a blocking children read of `path` gives exactly the names in `want` (sorted). */
static int children_are(coord_client *c, const char *path, const char *const *want, size_t n) {
    coord_strings s;
    coord_stat st;
    coord_rc rc = coord_children(c, path, 0, &s, &st);
    if (rc != COORD_OK) {
        fprintf(stderr, "children %s: %s\n", path, coord_strerror(rc));
        return 0;
    }
    int ok = s.count == n && st.num_children == n;
    for (size_t i = 0; ok && i < n; i++) ok = strcmp(s.items[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "children %s: %zu (", path, s.count);
        for (size_t i = 0; i < s.count; i++) fprintf(stderr, " %s", s.items[i]);
        fprintf(stderr, " ), want %zu\n", n);
    }
    coord_strings_free(&s);
    return ok;
}

static void bad_arguments(coord_client *c) {
    coord_cache_info s;
    coord_buf b;
    coord_strings l;
    struct done d = {0};
    CHECK_RC(coord_cache_stats(NULL, &s), COORD_EBADARGUMENTS);
    CHECK_RC(coord_cache_stats(c, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_cache_stats(NULL, NULL), COORD_EBADARGUMENTS);
    int both = COORD_READ_LINEARIZABLE | COORD_READ_CACHED;
    CHECK_RC(coord_exists(c, "/", both, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(c, "/", both, &b, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_children(c, "/", both, &l, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(c, "/", 4, &b, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_get(c, NULL, COORD_READ_CACHED, &b, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_children(c, "/", COORD_READ_CACHED, NULL, NULL), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aexists(c, "/", both, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aget(c, "/", both, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_achildren(c, "/", both, on_done, &d), COORD_EBADARGUMENTS);
    CHECK_RC(coord_aget(c, "/", COORD_READ_CACHED, NULL, &d), COORD_EBADARGUMENTS);
    CHECK(atomic_load(&d.count) == 0); /* a refused async call never calls back */
}

/* Repeated plain reads of an unchanged node: every one goes through the cache (hits plus
 * misses grow by the number of reads), the first misses, later ones hit. */
static void hits(coord_client *c, const char *node, const char *dir) {
    coord_cache_info before = stats(c);
    int good = 0;
    for (int i = 0; i < HITS_READS; i++) good += get_is(c, node, 0, "v0", 0);
    CHECK(good == HITS_READS);
    coord_cache_info after = stats(c);
    CHECK(reads(after) - reads(before) == HITS_READS);
    CHECK(after.misses > before.misses);
    CHECK(after.hits > before.hits);
    CHECK(after.invalidations == before.invalidations); /* nothing was written */

    before = after;
    coord_stat st;
    struct done de = {0}, dg = {0}, dc = {0};
    for (int i = 0; i < 10; i++) {
        CHECK_RC(coord_exists(c, node, 0, &st), COORD_OK);
        CHECK(st.version == 0 && st.data_length == 2);
        CHECK(children_are(c, dir, NULL, 0));
    }
    CHECK_RC(coord_aexists(c, node, 0, on_done, &de), COORD_OK);
    AWAIT(de);
    CHECK(de.rc == COORD_OK && de.has_stat && de.stat.version == 0);
    CHECK_RC(coord_aget(c, node, 0, on_done, &dg), COORD_OK);
    AWAIT(dg);
    CHECK(dg.rc == COORD_OK && strcmp(dg.data, "v0") == 0 && dg.stat.version == 0);
    CHECK_RC(coord_achildren(c, dir, 0, on_done, &dc), COORD_OK);
    AWAIT(dc);
    CHECK(dc.rc == COORD_OK && dc.children == 0);
    after = stats(c);
    CHECK(reads(after) - reads(before) == 23);
    CHECK(after.hits > before.hits);
}

/* Linearizable and watched reads never touch the cache (their counts do not move). */
static struct watch_rec wdata, wexist, wkids;
static void bypass(coord_client *c, const char *node, const char *dir) {
    coord_cache_info before = stats(c);
    coord_stat st;
    coord_buf b;
    coord_strings s;
    struct done d = {0};
    CHECK(get_is(c, node, COORD_READ_LINEARIZABLE, "v0", 0));
    CHECK_RC(coord_exists(c, node, COORD_READ_LINEARIZABLE, &st), COORD_OK);
    CHECK_RC(coord_children(c, dir, COORD_READ_LINEARIZABLE, &s, NULL), COORD_OK);
    coord_strings_free(&s);
    CHECK_RC(coord_aget(c, node, COORD_READ_LINEARIZABLE, on_done, &d), COORD_OK);
    AWAIT(d);
    CHECK(d.rc == COORD_OK && strcmp(d.data, "v0") == 0);
    CHECK_RC(coord_wget(c, node, on_watch, &wdata, &b, NULL), COORD_OK);
    coord_buf_free(&b);
    CHECK_RC(coord_wexists(c, node, on_watch, &wexist, NULL), COORD_OK);
    CHECK_RC(coord_wchildren(c, dir, on_watch, &wkids, &s, NULL), COORD_OK);
    coord_strings_free(&s);
    coord_cache_info after = stats(c);
    CHECK(after.hits == before.hits && after.misses == before.misses);
}

/* The core promise: after each write by `w` returns, the cached handle `c` sees it at once,
 * although it had just read (and cached) the node before the write. Per round: `w` sets
 * the node, creates child k<i> and deletes k<i-1>; `c` reads after each write. */
static void fresh_after_writes(coord_client *c, coord_client *w, const char *node, const char *dir) {
    coord_cache_info start = stats(c);
    int stale = 0;
    char prev[160] = "", prev_name[32] = "";
    for (int i = 1; i <= ITER; i++) {
        char want[32], want_prev[32], kid[160], name[32];
        snprintf(want, sizeof want, "v%d", i);
        snprintf(want_prev, sizeof want_prev, "v%d", i - 1);
        snprintf(name, sizeof name, "k%04d", i);
        snprintf(kid, sizeof kid, "%s/%s", dir, name);
        coord_stat st, ws;

        /* Warm c's cache: every entry the writes below must invalidate. */
        stale += !get_is(c, node, 0, want_prev, i - 1);
        CHECK_RC(coord_exists(c, node, 0, &st), COORD_OK);
        CHECK_RC(coord_exists(c, kid, 0, NULL), COORD_ENONODE);
        if (prev[0]) CHECK_RC(coord_exists(c, prev, 0, NULL), COORD_OK);
        const char *one[1] = {prev_name};
        stale += !children_are(c, dir, one, prev[0] ? 1 : 0);

        /* 1. w sets the node: c's get and exists (blocking and async) see version i. */
        coord_cache_info pre = stats(c);
        CHECK_RC(coord_set(w, node, (const uint8_t *)want, strlen(want), i - 1, &ws), COORD_OK);
        if (i == 1) CHECK(stats(c).invalidations > pre.invalidations);
        stale += !get_is(c, node, 0, want, i);
        CHECK_RC(coord_exists(c, node, 0, &st), COORD_OK);
        stale += st.version != i || st.mzxid != ws.mzxid;
        struct done dg = {0}, de = {0};
        CHECK_RC(coord_aget(c, node, 0, on_done, &dg), COORD_OK);
        CHECK_RC(coord_aexists(c, node, 0, on_done, &de), COORD_OK);
        AWAIT(dg);
        AWAIT(de);
        stale += dg.rc != COORD_OK || strcmp(dg.data, want) != 0 || dg.stat.version != i;
        stale += de.rc != COORD_OK || de.stat.version != i;

        /* 2. w creates k<i>: c sees it, and its parent's two children. */
        CHECK_RC(coord_create(w, kid, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
        stale += coord_exists(c, kid, 0, NULL) != COORD_OK;
        const char *two[2] = {prev_name, name};
        stale += !children_are(c, dir, prev[0] ? two : two + 1, prev[0] ? 2 : 1);
        struct done dc = {0};
        CHECK_RC(coord_achildren(c, dir, 0, on_done, &dc), COORD_OK);
        AWAIT(dc);
        stale += dc.rc != COORD_OK || dc.children != (prev[0] ? 2u : 1u) ||
                 strcmp(dc.child[prev[0] ? 1 : 0], name) != 0;

        /* 3. w deletes k<i-1>: c no longer sees it. */
        if (prev[0]) {
            CHECK_RC(coord_delete(w, prev, 0), COORD_OK);
            stale += coord_exists(c, prev, 0, NULL) != COORD_ENONODE;
            const char *now[1] = {name};
            stale += !children_are(c, dir, now, 1);
            struct done dx = {0};
            CHECK_RC(coord_aexists(c, prev, 0, on_done, &dx), COORD_OK);
            AWAIT(dx);
            stale += dx.rc != COORD_ENONODE;
        }
        snprintf(prev, sizeof prev, "%s", kid);
        snprintf(prev_name, sizeof prev_name, "%s", name);
    }
    CHECK(stale == 0);
    if (stale) fprintf(stderr, "%d stale reads in %d rounds\n", stale, ITER);
    coord_cache_info end = stats(c);
    printf("cache after %d rounds: %llu hits, %llu misses, %llu invalidations\n", ITER,
           (unsigned long long)(end.hits - start.hits),
           (unsigned long long)(end.misses - start.misses),
           (unsigned long long)(end.invalidations - start.invalidations));
    CHECK(end.hits > start.hits);   /* the warming reads of entries not written since */
    CHECK(end.misses > start.misses);
    /* At least one per set of the cached node; a round's writes each hit a cached node. */
    CHECK(end.invalidations - start.invalidations >= ITER);
    CHECK_RC(coord_delete(w, prev, 0), COORD_OK);
    CHECK(children_are(c, dir, NULL, 0));
}

/* The caching session's own writes: its next read sees them. */
static void own_writes(coord_client *c, const char *node) {
    int stale = 0;
    coord_stat st;
    CHECK_RC(coord_exists(c, node, 0, &st), COORD_OK);
    int v = st.version;
    char last[32];
    snprintf(last, sizeof last, "v%d", ITER);
    stale += !get_is(c, node, 0, last, v); /* left by fresh_after_writes; now cached */
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "own%d", i);
        CHECK_RC(coord_set(c, node, (const uint8_t *)want, strlen(want), v, &st), COORD_OK);
        v = st.version;
        stale += !get_is(c, node, 0, want, v);
        CHECK_RC(coord_set(c, node, NULL, 0, v, &st), COORD_OK);
        v = st.version;
        stale += !get_is(c, node, 0, "", v);
    }
    CHECK(stale == 0);
}

/* COORD_READ_CACHED on a handle connected without the cache: cached per call; plain reads
 * there stay uncached. */
static void per_call(coord_client *w, const char *node) {
    coord_cache_info s0 = stats(w);
    CHECK(s0.hits == 0 && s0.misses == 0 && s0.invalidations == 0);
    coord_stat st;
    /* Linearizable (w may be on a server behind c's writes), then plain: neither cached. */
    CHECK_RC(coord_exists(w, node, COORD_READ_LINEARIZABLE, &st), COORD_OK);
    CHECK(get_is(w, node, 0, "", st.version));
    coord_cache_info s1 = stats(w);
    CHECK(reads(s1) == 0);
    int n = 0;
    while (n < 20 && stats(w).hits == 0) {
        CHECK(get_is(w, node, COORD_READ_CACHED, "", st.version));
        n++;
    }
    coord_cache_info s2 = stats(w);
    CHECK(s2.hits > 0 && s2.misses > 0 && reads(s2) == (uint64_t)n);
}

int main(void) {
    alarm(400);
    make_root("cache");
    char node[160], dir[160];
    under(node, sizeof node, "n");
    under(dir, sizeof dir, "d");

    coord_options o = {0};
    o.cache = true;
    coord_client *c = NULL, *w = NULL;
    CHECK_RC(coord_connect(NULL, &o, &c), COORD_OK);
    CHECK_RC(coord_connect(NULL, NULL, &w), COORD_OK);
    if (!c || !w) {
        coord_close(c);
        coord_close(w);
        return finish("test_cache");
    }
    coord_cache_info s = stats(c);
    CHECK(s.hits == 0 && s.misses == 0 && s.invalidations == 0);
    bad_arguments(c);

    CHECK_RC(coord_create(w, test_root, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_create(w, node, (const uint8_t *)"v0", 2, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_create(w, dir, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);

    hits(c, node, dir);
    bypass(c, node, dir);
    fresh_after_writes(c, w, node, dir);
    CHECK(atomic_load(&wdata.fired) == 1 && atomic_load(&wexist.fired) == 1 &&
          atomic_load(&wkids.fired) == 1);
    own_writes(c, node);
    per_call(w, node);

    CHECK_RC(coord_close(c), COORD_OK);
    CHECK_RC(coord_close(w), COORD_OK);
    return finish("test_cache");
}
