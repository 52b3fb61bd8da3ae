/* A small service: connects (COORD_SERVERS / COORD_CA), takes the lock /services/demo/lock,
 * publishes its address as the ephemeral node /services/demo/leader while it holds the
 * lock, serves for a while, then unpublishes, releases and leaves. If it dies instead, the
 * session ends and the ephemeral node and the lock go with it.
 *
 *   coord-service [address] [seconds]     (default 127.0.0.1:<9000+pid%1000>, 0 s)
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, coord_rc rc) {
    fprintf(stderr, "coord-service: %s: %s\n", what, coord_strerror(rc));
    return 1;
}

/* Creates a persistent node unless it exists. */
static coord_rc ensure(coord_client *c, const char *path) {
    coord_rc rc = coord_create(c, path, NULL, 0, 0, 0, NULL, 0, NULL, NULL);
    return rc == COORD_ENODEEXISTS ? COORD_OK : rc;
}

int main(int argc, char **argv) {
    char addr[128];
    if (argc > 1)
        snprintf(addr, sizeof addr, "%s", argv[1]);
    else
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 9000 + (int)(getpid() % 1000));
    unsigned serve_s = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;

    coord_client *c = NULL;
    coord_rc rc = coord_connect(NULL, NULL, &c);
    if (rc != COORD_OK) return fail("connect", rc);
    coord_lock *l = NULL;
    int status = 1;
    if ((rc = ensure(c, "/services")) != COORD_OK || (rc = ensure(c, "/services/demo")) != COORD_OK) {
        fail("create /services/demo", rc);
        goto out;
    }
    rc = coord_lock_new(c, "/services/demo/lock", 0, (const uint8_t *)addr, strlen(addr), &l);
    if (rc != COORD_OK) {
        fail("lock", rc);
        goto out;
    }
    bool held = false;
    rc = coord_lock_acquire(l, 10000, &held);
    if (rc != COORD_OK || !held) {
        fail("acquire", rc != COORD_OK ? rc : COORD_EOPERATIONTIMEOUT);
        goto out;
    }
    rc = coord_create(c, "/services/demo/leader", (const uint8_t *)addr, strlen(addr),
                      COORD_CREATE_EPHEMERAL, 0, NULL, 0, NULL, NULL);
    if (rc != COORD_OK) {
        fail("publish", rc);
        goto out;
    }
    coord_buf got;
    coord_stat st;
    rc = coord_get(c, "/services/demo/leader", COORD_READ_LINEARIZABLE, &got, &st);
    if (rc != COORD_OK) {
        fail("read back", rc);
        goto out;
    }
    int same = got.len == strlen(addr) && memcmp(got.data, addr, got.len) == 0;
    coord_buf_free(&got);
    if (!same || st.ephemeral_owner != coord_session_id(c)) {
        fprintf(stderr, "coord-service: the published node is not ours\n");
        goto out;
    }
    printf("coord-service: holding /services/demo/lock, serving at %s (session 0x%llx)\n", addr,
           (unsigned long long)coord_session_id(c));
    fflush(stdout);
    sleep(serve_s);
    if ((rc = coord_delete(c, "/services/demo/leader", COORD_ANY_VERSION)) != COORD_OK) {
        fail("unpublish", rc);
        goto out;
    }
    if ((rc = coord_lock_release(l)) != COORD_OK) {
        fail("release", rc);
        goto out;
    }
    printf("coord-service: unpublished and released\n");
    status = 0;
out:
    coord_lock_free(l);
    coord_close(c);
    return status;
}
