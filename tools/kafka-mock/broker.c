/*
 * Kafka test broker: a thin launcher around librdkafka's in-process mock
 * cluster, which speaks the Kafka wire protocol well enough for kafkajs
 * producers and group consumers (no admin API, no idempotent producer).
 *
 *   broker [-b BROKERS] [TOPIC[:PARTITIONS] ...]
 *
 * Prints the bootstrap address ("127.0.0.1:PORT[,...]") as one line on
 * stdout once the cluster listens, then runs until SIGTERM or SIGINT.
 *
 * Topics named on the command line are created up front. Any other topic is
 * created on first use by the mock's auto-creation, with librdkafka's fixed
 * default of 4 partitions (2.0.2 has no public call to change that default),
 * so a test that needs a particular partition count names the topic here.
 *
 * Build: gcc -O2 -o broker broker.c $(pkg-config --cflags --libs rdkafka)
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define DEFAULT_PARTITIONS 4

static void usage(FILE *out) {
        fprintf(out,
                "usage: broker [-b BROKERS] [TOPIC[:PARTITIONS] ...]\n"
                "  -b BROKERS  number of mock brokers (default 1)\n"
                "  TOPIC       created up front with PARTITIONS partitions "
                "(default %d)\n",
                DEFAULT_PARTITIONS);
}

/* Strict decimal parse: "3x" or "" must be rejected, not read as 3 or 0. */
static int parse_count(const char *s, int *out) {
        char *end;
        long v;
        errno = 0;
        v     = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > INT_MAX)
                return -1;
        *out = (int)v;
        return 0;
}

/* librdkafka logs from its own threads; keep it on stderr so stdout carries
 * nothing but the address line that scripts read. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
        (void)rk;
        fprintf(stderr, "broker: %d %s: %s\n", level, fac, buf);
}

int main(int argc, char **argv) {
        int brokers = 1;
        int first   = 1;
        char errstr[512];
        sigset_t stop;
        int sig = 0;
        int i;

        while (first < argc && argv[first][0] == '-') {
                if (!strcmp(argv[first], "-h") ||
                    !strcmp(argv[first], "--help")) {
                        usage(stdout);
                        return 0;
                }
                if (!strcmp(argv[first], "-b") && first + 1 < argc &&
                    !parse_count(argv[first + 1], &brokers)) {
                        first += 2;
                        continue;
                }
                usage(stderr);
                return 2;
        }

        /* Block the stop signals before librdkafka starts its threads, so
         * they inherit the mask and only sigwait() below ever sees them. */
        sigemptyset(&stop);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);

        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, log_cb);
        /* The handle only hosts the cluster; it never connects anywhere, so
         * its "no bootstrap.servers" notice is noise. */
        if (rd_kafka_conf_set(conf, "log_level", "3", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "broker: %s\n", errstr);
                return 1;
        }

        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "broker: rd_kafka_new: %s\n", errstr);
                return 1;
        }

        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
        if (!mc) {
                fprintf(stderr, "broker: could not create the mock cluster\n");
                rd_kafka_destroy(rk);
                return 1;
        }

        int replication = brokers < 3 ? brokers : 3;
        for (i = first; i < argc; i++) {
                char *name       = strdup(argv[i]);
                char *colon      = strrchr(name, ':');
                int partitions   = DEFAULT_PARTITIONS;
                rd_kafka_resp_err_t err;

                if (colon) {
                        *colon = '\0';
                        if (parse_count(colon + 1, &partitions)) {
                                fprintf(stderr,
                                        "broker: bad partition count in "
                                        "'%s'\n",
                                        argv[i]);
                                free(name);
                                goto fail;
                        }
                }
                if (!*name) {
                        fprintf(stderr, "broker: empty topic name in '%s'\n",
                                argv[i]);
                        free(name);
                        goto fail;
                }
                err = rd_kafka_mock_topic_create(mc, name, partitions,
                                                 replication);
                if (err) {
                        fprintf(stderr, "broker: topic %s: %s\n", name,
                                rd_kafka_err2str(err));
                        free(name);
                        goto fail;
                }
                free(name);
        }

        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);

        while (sigwait(&stop, &sig) != 0)
                ;
        fprintf(stderr, "broker: signal %d, shutting down\n", sig);

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;

fail:
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
}
