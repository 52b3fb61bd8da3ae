/* The leader is killed with SIGKILL while blocking and async C calls are outstanding.
 * Needs a `coordd dev` ensemble (COORD_DEV_DIR, COORDD, COORD_SERVERS, COORD_CA; see
 * run.sh). Asserts: every call returns (ok, or a connection-loss/timeout code) and nothing
 * hangs (alarm); every completion and watch callback runs exactly once; a session whose
 * server was the leader sees JEOPARDY then SAFE and LEADER_FAILED_OVER; both clients work
 * afterwards. The killed server is restarted (its new pid written to n<id>/pid) so that
 * the ensemble is whole again for the next test. */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>

extern char **environ;

static char servers[8][64];
static int n_servers;

/* ---- session events per client ---- */
struct session_log {
    atomic_int n;
    coord_session_event ev[64];
};
static void on_session(coord_session_event ev, void *ctx) {
    struct session_log *l = ctx;
    int i = atomic_load(&l->n);
    if (i < 64) l->ev[i] = ev;
    atomic_fetch_add(&l->n, 1);
}
static int count_event(struct session_log *l, coord_session_event ev) {
    int n = 0, m = atomic_load(&l->n);
    for (int i = 0; i < m && i < 64; i++) n += l->ev[i] == ev;
    return n;
}
static int index_of(struct session_log *l, coord_session_event ev) {
    int m = atomic_load(&l->n);
    for (int i = 0; i < m && i < 64; i++)
        if (l->ev[i] == ev) return i;
    return -1;
}

/* ---- completions and watches, each with its own counter ---- */
enum { ASYNC = 200 };
struct slot {
    atomic_int calls;
    coord_rc rc;
};
static struct slot slots[ASYNC];
static void on_done(coord_rc rc, const coord_result *r, void *ctx) {
    (void)r;
    struct slot *s = ctx;
    s->rc = rc;
    atomic_fetch_add(&s->calls, 1);
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

/* What a call outstanding across the kill may return. */
static int acceptable(coord_rc rc) {
    return rc == COORD_OK || rc == COORD_ECONNECTIONLOSS || rc == COORD_EOPERATIONTIMEOUT ||
           rc == COORD_EREQUESTTIMEOUT;
}

/* ---- blocking callers running across the kill ---- */
static atomic_int stop;
struct caller {
    coord_client *c;
    int id;
    int calls, ok, bad;
    coord_rc last_bad;
};
static void *caller(void *arg) {
    struct caller *w = arg;
    char path[200], v[32];
    snprintf(path, sizeof path, "%s/w%d", test_root, w->id);
    while (!atomic_load(&stop)) {
        int n = snprintf(v, sizeof v, "%d", w->calls);
        coord_rc rc = coord_set(w->c, path, (const uint8_t *)v, (size_t)n, COORD_ANY_VERSION, NULL);
        w->calls++;
        if (rc == COORD_OK) w->ok++;
        if (!acceptable(rc)) w->bad++, w->last_bad = rc;
        coord_buf b;
        rc = coord_get(w->c, path, 0, &b, NULL);
        w->calls++;
        if (rc == COORD_OK) w->ok++, coord_buf_free(&b);
        if (!acceptable(rc)) w->bad++, w->last_bad = rc;
    }
    return NULL;
}

static int find_leader(int *leader_id) {
    for (int i = 0; i < n_servers; i++) {
        coord_server_info info;
        if (coord_server_status(servers[i], NULL, 2000, &info) != COORD_OK) continue;
        if (strcmp(info.role, "leader") == 0) {
            *leader_id = (int)info.id;
            return i;
        }
    }
    return -1;
}

static pid_t read_pid(const char *dir, int id) {
    char p[512];
    snprintf(p, sizeof p, "%s/n%d/pid", dir, id);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1) pid = -1;
    fclose(f);
    return (pid_t)pid;
}

/* Starts `coordd run --config DIR/n<id>/coord.toml` again, logging to its coordd.log. */
static pid_t restart(const char *coordd, const char *dir, int id) {
    char config[512], log[512], pidfile[512];
    snprintf(config, sizeof config, "%s/n%d/coord.toml", dir, id);
    snprintf(log, sizeof log, "%s/n%d/coordd.log", dir, id);
    snprintf(pidfile, sizeof pidfile, "%s/n%d/pid", dir, id);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    char *argv[] = {(char *)coordd, "run", "--config", config, NULL};
    pid_t pid = -1;
    int err = posix_spawn(&pid, coordd, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) return -1;
    FILE *f = fopen(pidfile, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)pid);
        fclose(f);
    }
    return pid;
}

int main(void) {
    alarm(200);
    make_root("failover");
    const char *all = getenv("COORD_SERVERS"), *dir = getenv("COORD_DEV_DIR"),
               *coordd = getenv("COORDD");
    CHECK(all && dir && coordd);
    if (!all || !dir || !coordd) return finish("test_failover");
    char list[512];
    snprintf(list, sizeof list, "%s", all);
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s && n_servers < 8;
         s = strtok_r(NULL, ",", &save))
        snprintf(servers[n_servers++], sizeof servers[0], "%s", s);
    CHECK(n_servers == 3);

    int leader_id = 0;
    int li = find_leader(&leader_id);
    CHECK(li >= 0);
    if (li < 0) return finish("test_failover");
    pid_t leader_pid = read_pid(dir, leader_id);
    CHECK(leader_pid > 0);

    /* K's only server is the leader, so its session's server is the one killed; M may be on
     * any server. */
    struct session_log klog = {0}, mlog = {0};
    coord_options ko = {0}, mo = {0};
    ko.session_cb = on_session;
    ko.session_ctx = &klog;
    ko.session_timeout_ms = 30000;
    mo.session_cb = on_session;
    mo.session_ctx = &mlog;
    mo.session_timeout_ms = 30000;
    coord_client *k = NULL, *m = NULL;
    CHECK_RC(coord_connect(servers[li], &ko, &k), COORD_OK);
    CHECK_RC(coord_connect(NULL, &mo, &m), COORD_OK);
    if (!k || !m) return finish("test_failover");
    CHECK_RC(coord_create(m, test_root, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    char watched[200], eph[200];
    snprintf(watched, sizeof watched, "%s/watched", test_root);
    snprintf(eph, sizeof eph, "%s/k-ephemeral", test_root);
    CHECK_RC(coord_create(m, watched, (const uint8_t *)"0", 1, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    CHECK_RC(coord_create(k, eph, NULL, 0, COORD_CREATE_EPHEMERAL, 0, NULL, 0, NULL, NULL), COORD_OK);
    struct caller callers[4];
    for (int i = 0; i < 4; i++) {
        callers[i] = (struct caller){i % 2 ? m : k, i, 0, 0, 0, COORD_OK};
        char p[200];
        snprintf(p, sizeof p, "%s/w%d", test_root, i);
        CHECK_RC(coord_create(m, p, NULL, 0, 0, 0, NULL, 0, NULL, NULL), COORD_OK);
    }
    struct watch_rec kw = {0};
    coord_buf wb;
    CHECK_RC(coord_wget(k, watched, on_watch, &kw, &wb, NULL), COORD_OK);
    coord_buf_free(&wb);
    CHECK(wait_for(&klog.n, 1, 5) && klog.ev[0] == COORD_SESSION_CONNECTED);
    CHECK(wait_for(&mlog.n, 1, 5) && mlog.ev[0] == COORD_SESSION_CONNECTED);

    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, caller, &callers[i]);
    /* Async calls in flight on both clients at the moment of the kill. */
    for (int i = 0; i < ASYNC; i++) {
        coord_client *c = i % 2 ? m : k;
        char p[200];
        snprintf(p, sizeof p, "%s/w%d", test_root, i % 4);
        coord_rc rc = i % 3 ? coord_aset(c, p, (const uint8_t *)"a", 1, COORD_ANY_VERSION, on_done, &slots[i])
                            : coord_aget(c, p, 0, on_done, &slots[i]);
        CHECK_RC(rc, COORD_OK);
        if (i == ASYNC / 2) {
            CHECK(kill(leader_pid, SIGKILL) == 0);
            printf("test_failover: killed leader %d (pid %ld) with calls outstanding\n", leader_id,
                   (long)leader_pid);
        }
    }
    double killed_at = now_s();

    /* K is in jeopardy (its only server is gone) until that server is back. */
    CHECK(wait_for(&klog.n, 2, 20) && klog.ev[1] == COORD_SESSION_JEOPARDY);
    sleep_ms(1500); /* the blocking callers keep calling meanwhile */
    pid_t again = restart(coordd, dir, leader_id);
    CHECK(again > 0);

    /* M works as soon as the survivors elected a leader. */
    char v[8];
    int mok = 0;
    for (int i = 0; i < 200 && !mok; i++) {
        mok = coord_set(m, watched, (const uint8_t *)"1", 1, COORD_ANY_VERSION, NULL) == COORD_OK;
        if (!mok) sleep_ms(100);
    }
    CHECK(mok);
    printf("test_failover: writes accepted again %.1f s after the kill\n", now_s() - killed_at);

    /* K resumes its session on the restarted server: SAFE, then LEADER_FAILED_OVER. */
    double wait_until = now_s() + 60;
    while (now_s() < wait_until && (index_of(&klog, COORD_SESSION_SAFE) < 0 ||
                                    index_of(&klog, COORD_SESSION_LEADER_FAILED_OVER) < 0))
        sleep_ms(50);
    int safe = index_of(&klog, COORD_SESSION_SAFE), failed_over = index_of(&klog, COORD_SESSION_LEADER_FAILED_OVER);
    CHECK(safe == 2);
    CHECK(failed_over > safe);
    CHECK(count_event(&klog, COORD_SESSION_EXPIRED) == 0);
    printf("test_failover: session on the killed server resumed (SAFE) %.1f s after the kill\n",
           now_s() - killed_at);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);

    /* Every call returned an acceptable code; every completion ran exactly once. */
    int calls = 0, ok = 0, bad = 0;
    for (int i = 0; i < 4; i++) {
        calls += callers[i].calls, ok += callers[i].ok, bad += callers[i].bad;
        if (callers[i].bad)
            fprintf(stderr, "caller %d: last unexpected code %d (%s)\n", i, callers[i].last_bad,
                    coord_strerror(callers[i].last_bad));
    }
    /* Reads are sent again after a resume and writes may land on a live server, so every
       call may succeed; none may fail with a code other than loss or timeout. */
    CHECK(bad == 0 && ok > 0 && calls >= ok);
    int async_ok = 0, async_once = 0, async_acceptable = 0;
    for (int i = 0; i < ASYNC; i++) {
        CHECK(wait_for(&slots[i].calls, 1, 30));
        async_once += atomic_load(&slots[i].calls) == 1;
        async_ok += slots[i].rc == COORD_OK;
        async_acceptable += acceptable(slots[i].rc);
    }
    CHECK(async_once == ASYNC && async_acceptable == ASYNC);
    printf("test_failover: blocking calls %d (%d ok), async calls %d (%d ok), all returned\n", calls,
           ok, ASYNC, async_ok);

    /* The watch K left before the kill fires once, for a change made after it. */
    CHECK(wait_for(&kw.fired, 1, 20) && atomic_load(&kw.type) == COORD_EVENT_CHANGED);
    /* Both sessions work again, and K's ephemeral survived (the session was never lost). */
    CHECK_RC(coord_exists(k, eph, COORD_READ_LINEARIZABLE, NULL), COORD_OK);
    for (int i = 0; i < 3; i++) {
        int n = snprintf(v, sizeof v, "k%d", i);
        CHECK_RC(coord_set(k, watched, (const uint8_t *)v, (size_t)n, COORD_ANY_VERSION, NULL), COORD_OK);
        coord_buf b;
        CHECK_RC(coord_get(m, watched, COORD_READ_LINEARIZABLE, &b, NULL), COORD_OK);
        CHECK(b.len == (size_t)n && memcmp(b.data, v, (size_t)n) == 0);
        coord_buf_free(&b);
    }
    struct slot after = {0};
    CHECK_RC(coord_aget(k, watched, 0, on_done, &after), COORD_OK);
    CHECK(wait_for(&after.calls, 1, 10) && after.rc == COORD_OK);
    /* If M's server was the leader too, it went through JEOPARDY then SAFE. */
    int mj = index_of(&mlog, COORD_SESSION_JEOPARDY);
    CHECK(mj < 0 || index_of(&mlog, COORD_SESSION_SAFE) > mj);

    /* The restarted server is part of the ensemble again. */
    int back = 0;
    for (int i = 0; i < 150 && !back; i++) {
        coord_server_info info;
        back = coord_server_status(servers[li], NULL, 2000, &info) == COORD_OK &&
               (strcmp(info.role, "follower") == 0 || strcmp(info.role, "leader") == 0);
        if (!back) sleep_ms(100);
    }
    CHECK(back);
    int new_leader = 0;
    CHECK(find_leader(&new_leader) >= 0 && new_leader != 0);

    CHECK_RC(coord_close(k), COORD_OK);
    CHECK_RC(coord_close(m), COORD_OK);
    CHECK(klog.ev[atomic_load(&klog.n) - 1] == COORD_SESSION_CLOSED);
    CHECK(mlog.ev[atomic_load(&mlog.n) - 1] == COORD_SESSION_CLOSED);
    CHECK(atomic_load(&kw.fired) == 1 && atomic_load(&after.calls) == 1);
    for (int i = 0; i < ASYNC; i++) CHECK(atomic_load(&slots[i].calls) == 1);
    return finish("test_failover");
}
