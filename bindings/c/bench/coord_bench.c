/* get/set throughput of libcoord's blocking API: coord_bench get|set THREADS SECONDS
 * [shared]. Each thread does back-to-back calls on a 64-byte value at its own node; with
 * "shared" all threads use one coord_client, else each thread has its own (its own session),
 * as a C service with one handle per worker would. Prints "coord <op> <threads> <handles>
 * <ops/s>". Uses COORD_SERVERS / COORD_CA. */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int set_mode, shared;
static double seconds;
static coord_client *one;
static atomic_long total;
static atomic_int errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    coord_client *c = one;
    if (!shared && coord_connect(NULL, NULL, &c) != COORD_OK) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    char path[64];
    uint8_t value[64];
    memset(value, 'v', sizeof value);
    snprintf(path, sizeof path, "/cbench/k%d", t);
    coord_rc rc = coord_create(c, path, value, sizeof value, 0, 0, NULL, 0, NULL, NULL);
    if (rc != COORD_OK && rc != COORD_ENODEEXISTS) atomic_fetch_add(&errors, 1);
    long n = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 16; i++) {
            if (set_mode) {
                rc = coord_set(c, path, value, sizeof value, COORD_ANY_VERSION, NULL);
            } else {
                coord_buf b;
                rc = coord_get(c, path, 0, &b, NULL);
                if (rc == COORD_OK) coord_buf_free(&b);
            }
            if (rc != COORD_OK) atomic_fetch_add(&errors, 1);
            n++;
        }
    }
    atomic_fetch_add(&total, n);
    if (!shared) coord_close(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: coord_bench get|set THREADS SECONDS [shared]\n");
        return 2;
    }
    set_mode = strcmp(argv[1], "set") == 0;
    int threads = atoi(argv[2]);
    seconds = atof(argv[3]);
    shared = argc > 4 && strcmp(argv[4], "shared") == 0;
    if (threads < 1 || threads > 256 || seconds <= 0) return 2;
    coord_client *setup = NULL;
    coord_rc rc = coord_connect(NULL, NULL, &setup);
    if (rc != COORD_OK) {
        fprintf(stderr, "coord_bench: connect: %s\n", coord_strerror(rc));
        return 1;
    }
    rc = coord_create(setup, "/cbench", NULL, 0, 0, 0, NULL, 0, NULL, NULL);
    if (rc != COORD_OK && rc != COORD_ENODEEXISTS) return 1;
    if (shared) one = setup;
    pthread_t th[256];
    double start = now();
    for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double took = now() - start;
    coord_close(setup);
    printf("coord %s %d %s %.0f\n", argv[1], threads, shared ? "shared" : "own",
           (double)atomic_load(&total) / took);
    if (atomic_load(&errors)) fprintf(stderr, "coord_bench: %d errors\n", atomic_load(&errors));
    return atomic_load(&errors) ? 1 : 0;
}
