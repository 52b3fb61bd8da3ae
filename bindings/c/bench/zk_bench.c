/* get/set throughput of ZooKeeper's C client (libzookeeper_mt, synchronous zoo_get/zoo_set):
 * zk_bench SERVERS get|set THREADS SECONDS [shared]. Same workload as coord_bench: a 64-byte
 * value at the thread's own node, back-to-back calls; each thread its own zhandle_t unless
 * "shared". Prints "zookeeper <op> <threads> <handles> <ops/s>". */
#define _DEFAULT_SOURCE
#define THREADED /* the synchronous API of libzookeeper_mt */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

static const char *servers;
static int set_mode, shared;
static double seconds;
static zhandle_t *one;
static atomic_long total;
static atomic_int errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh, (void)type, (void)path;
    if (state == ZOO_CONNECTED_STATE) atomic_store((atomic_int *)ctx, 1);
}

static atomic_int connected_flags[257];
static zhandle_t *connect_zk(int slot) {
    zhandle_t *zh = zookeeper_init(servers, watcher, 10000, NULL, &connected_flags[slot], 0);
    for (int i = 0; zh && i < 1000 && !atomic_load(&connected_flags[slot]); i++) usleep(10000);
    if (zh && !atomic_load(&connected_flags[slot])) {
        zookeeper_close(zh);
        return NULL;
    }
    return zh;
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    zhandle_t *zh = shared ? one : connect_zk(t);
    if (!zh) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    char path[64], buf[128];
    char value[64];
    memset(value, 'v', sizeof value);
    snprintf(path, sizeof path, "/cbench/k%d", t);
    int rc = zoo_create(zh, path, value, sizeof value, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) atomic_fetch_add(&errors, 1);
    long n = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 16; i++) {
            if (set_mode) {
                rc = zoo_set(zh, path, value, sizeof value, -1);
            } else {
                int len = sizeof buf;
                rc = zoo_get(zh, path, 0, buf, &len, NULL);
            }
            if (rc != ZOK) atomic_fetch_add(&errors, 1);
            n++;
        }
    }
    atomic_fetch_add(&total, n);
    if (!shared) zookeeper_close(zh);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: zk_bench SERVERS get|set THREADS SECONDS [shared]\n");
        return 2;
    }
    servers = argv[1];
    set_mode = strcmp(argv[2], "set") == 0;
    int threads = atoi(argv[3]);
    seconds = atof(argv[4]);
    shared = argc > 5 && strcmp(argv[5], "shared") == 0;
    if (threads < 1 || threads > 256 || seconds <= 0) return 2;
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *setup = connect_zk(256);
    if (!setup) {
        fprintf(stderr, "zk_bench: cannot connect to %s\n", servers);
        return 1;
    }
    int rc = zoo_create(setup, "/cbench", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) return 1;
    if (shared) one = setup;
    pthread_t th[256];
    double start = now();
    for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double took = now() - start;
    zookeeper_close(setup);
    printf("zookeeper %s %d %s %.0f\n", argv[2], threads, shared ? "shared" : "own",
           (double)atomic_load(&total) / took);
    if (atomic_load(&errors)) fprintf(stderr, "zk_bench: %d errors\n", atomic_load(&errors));
    return atomic_load(&errors) ? 1 : 0;
}
