/* A small service: takes the lock /services/demo/lock, publishes its address as the
 * ephemeral node /services/demo/instance while holding it, checks its sequencer, and leaves.
 * Uses COORD_SERVERS / COORD_CA. */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, coord_rc rc) {
    fprintf(stderr, "coord-service: %s: %s\n", what, coord_strerror(rc));
    return 1;
}

int main(void) {
    coord_client *c = NULL;
    coord_rc rc = coord_connect(NULL, NULL, &c);
    if (rc != COORD_OK) return fail("connect", rc);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", 9000 + (int)(getpid() % 1000));
    coord_create(c, "/services", NULL, 0, 0, 0, NULL, 0, NULL, NULL);
    coord_create(c, "/services/demo", NULL, 0, 0, 0, NULL, 0, NULL, NULL);
    coord_lock *l = NULL;
    int status = 1;
    rc = coord_lock_new(c, "/services/demo/lock", 0, (const uint8_t *)addr, strlen(addr), &l);
    if (rc != COORD_OK) { fail("lock", rc); goto out; }
    bool held = false;
    rc = coord_lock_acquire(l, 10000, &held);
    if (rc != COORD_OK || !held) { fail("acquire", rc); goto out; }
    rc = coord_create(c, "/services/demo/instance", (const uint8_t *)addr, strlen(addr),
                      COORD_CREATE_EPHEMERAL, 0, NULL, 0, NULL, NULL);
    if (rc != COORD_OK) { fail("publish", rc); goto out; }
    coord_buf got;
    rc = coord_get(c, "/services/demo/instance", COORD_READ_LINEARIZABLE, &got, NULL);
    if (rc != COORD_OK) { fail("read back", rc); goto out; }
    int same = got.len == strlen(addr) && memcmp(got.data, addr, got.len) == 0;
    coord_buf_free(&got);
    if (!same) { fprintf(stderr, "coord-service: published address differs\n"); goto out; }
    printf("coord-service: serving at %s\n", addr);
    rc = coord_delete(c, "/services/demo/instance", COORD_ANY_VERSION);
    if (rc != COORD_OK) { fail("unpublish", rc); goto out; }
    rc = coord_lock_release(l);
    if (rc != COORD_OK) { fail("release", rc); goto out; }
    status = 0;
out:
    coord_lock_free(l);
    coord_close(c);
    return status;
}
