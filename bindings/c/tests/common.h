/* Shared helpers of libcoord's C tests: assertion counters, timing, the test's root node.
 * Each test prints every failure with its line, then "<name>: N passed, M failed", and
 * exits non-zero on any failure. A test that hangs is killed by alarm() (SIGALRM), which
 * also fails it. */
#ifndef COORD_TEST_COMMON_H
#define COORD_TEST_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include "coord.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int passed, failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) {                                                                       \
            atomic_fetch_add(&passed, 1);                                                 \
        } else {                                                                          \
            atomic_fetch_add(&failed, 1);                                                 \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                 \
    } while (0)

#define CHECK_RC(call, want)                                                              \
    do {                                                                                  \
        coord_rc rc_ = (call);                                                            \
        if (rc_ == (want)) {                                                              \
            atomic_fetch_add(&passed, 1);                                                 \
        } else {                                                                          \
            atomic_fetch_add(&failed, 1);                                                 \
            fprintf(stderr, "FAIL %s:%d: %s = %d (%s), want %s\n", __FILE__, __LINE__,   \
                    #call, (int)rc_, coord_strerror(rc_), #want);                        \
        }                                                                                 \
    } while (0)

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits up to `secs` for *v >= n; returns whether it got there. */
static inline int wait_for(atomic_int *v, int n, double secs) {
    double end = now_s() + secs;
    while (atomic_load(v) < n) {
        if (now_s() > end) return 0;
        sleep_ms(5);
    }
    return 1;
}

/* A root node name unique to this process, and paths under it. */
static char test_root[96];
static inline void make_root(const char *name) {
    snprintf(test_root, sizeof test_root, "/c-%s-%ld-%d", name, (long)time(NULL), (int)getpid());
}
static inline void under(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", test_root, name);
}

static inline int finish(const char *name) {
    int p = atomic_load(&passed), f = atomic_load(&failed);
    printf("%s: %d passed, %d failed\n", name, p, f);
    fflush(stdout);
    return f ? 1 : 0;
}

#endif
