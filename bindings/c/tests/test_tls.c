/* Client certificates from C: a server of its own that requires them (`[tls] client_auth =
 * "required"`), certificates made with `coordd cert client`; a session with alice's
 * certificate is `x509:CN=alice` for ACLs, bob's is not, and without a certificate there is
 * no session. Needs COORDD (tests/run.sh exports it). */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>

extern char **environ;

static char dir[256];

static int free_port(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &n) != 0) {
        perror("free port");
        exit(2);
    }
    close(s);
    return ntohs(a.sin_port);
}

/* Runs `coordd cert client --ca <dir>/data/tls --name NAME --out <dir>/clients`. */
static int issue(const char *coordd, const char *name) {
    char ca[320], out[320];
    snprintf(ca, sizeof ca, "%s/data/tls", dir);
    snprintf(out, sizeof out, "%s/clients", dir);
    char *argv[] = {(char *)coordd, "cert", "client", "--ca", ca, "--name", (char *)name,
                    "--out", out, NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&pid, coordd, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 1;
    if (rc == 0) waitpid(pid, &status, 0);
    return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static coord_rc connect_as(const char *servers, const char *name, coord_client **c) {
    char ca[320], cert[320], key[320];
    snprintf(ca, sizeof ca, "%s/data/tls/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/clients/%s.pem", dir, name ? name : "");
    snprintf(key, sizeof key, "%s/clients/%s.key", dir, name ? name : "");
    coord_options o = {0};
    o.ca_path = ca;
    o.connect_timeout_ms = 3000;
    if (name) {
        o.cert_path = cert;
        o.key_path = key;
    }
    return coord_connect(servers, &o, c);
}

int main(void) {
    alarm(120);
    const char *coordd = getenv("COORDD");
    if (!coordd) {
        fprintf(stderr, "test_tls: COORDD is not set (run through tests/run.sh)\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/coord-c-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    int port = free_port();
    char cfg[320], servers[64], log[320];
    snprintf(cfg, sizeof cfg, "%s/coord.toml", dir);
    snprintf(log, sizeof log, "%s/coordd.log", dir);
    snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "id = 1\nclient_addr = \"127.0.0.1:%d\"\ndata_dir = \"%s/data\"\n"
            "[tls]\nclient_auth = \"required\"\n",
            port, dir);
    fclose(f);
    char *argv[] = {(char *)coordd, "run", "--config", cfg, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t server;
    if (posix_spawn(&server, coordd, &fa, NULL, argv, environ) != 0) {
        perror("spawn coordd");
        return 2;
    }
    posix_spawn_file_actions_destroy(&fa);
    char ca_key[320];
    snprintf(ca_key, sizeof ca_key, "%s/data/tls/ca.key", dir);
    struct stat st;
    for (int i = 0; i < 600 && stat(ca_key, &st) != 0; i++) sleep_ms(50);
    CHECK(issue(coordd, "alice"));
    CHECK(issue(coordd, "bob"));

    coord_client *alice = NULL, *bob = NULL, *bare = NULL;
    coord_rc rc = COORD_ECONNECTIONLOSS;
    for (int i = 0; i < 100 && rc != COORD_OK; i++) {
        rc = connect_as(servers, "alice", &alice);
        if (rc != COORD_OK) sleep_ms(100);
    }
    CHECK_RC(rc, COORD_OK);
    CHECK_RC(connect_as(servers, "bob", &bob), COORD_OK);
    if (alice && bob) {
        coord_acl only_alice = {COORD_PERM_ALL, "x509", "CN=alice"};
        CHECK_RC(coord_create(alice, "/alice", (const uint8_t *)"a", 1, 0, 0, &only_alice, 1,
                              NULL, NULL),
                 COORD_OK);
        coord_buf data = {0};
        CHECK_RC(coord_get(alice, "/alice", 0, &data, NULL), COORD_OK);
        CHECK(data.len == 1 && data.data && data.data[0] == 'a');
        coord_buf_free(&data);
        CHECK_RC(coord_get(bob, "/alice", 0, &data, NULL), COORD_ENOAUTH);
        CHECK_RC(coord_set(bob, "/alice", (const uint8_t *)"b", 1, COORD_ANY_VERSION, NULL),
                 COORD_ENOAUTH);
    }
    /* No certificate: the TLS handshake fails, no session. */
    CHECK_RC(connect_as(servers, NULL, &bare), COORD_ECONNECTIONLOSS);
    CHECK(bare == NULL);
    /* A key without a certificate is a bad argument. */
    char ca_pem[320];
    snprintf(ca_pem, sizeof ca_pem, "%s/data/tls/ca.pem", dir);
    coord_options half = {0};
    half.ca_path = ca_pem;
    half.key_path = "/nonexistent.key";
    CHECK_RC(coord_connect(servers, &half, &bare), COORD_EBADARGUMENTS);
    if (alice) CHECK_RC(coord_close(alice), COORD_OK);
    if (bob) CHECK_RC(coord_close(bob), COORD_OK);
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    char rm[320];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) fprintf(stderr, "test_tls: could not remove %s\n", dir);
    return finish("test_tls");
}
