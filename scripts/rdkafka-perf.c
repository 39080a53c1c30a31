/*
 * rdkafka-perf: produces with librdkafka (the client kcat and confluent-kafka are built on), for
 * scripts/bench's side-by-side runs: the load a real client puts on a broker, whichever broker
 * it is. One producer, one topic; every record is the same random value.
 *
 *   rdkafka-perf BOOTSTRAP TOPIC RECORDS RECORD_BYTES [rate=N] [key=value ...]
 *
 * The key=value pairs are librdkafka properties (acks, linger.ms, enable.idempotence, ...).
 * The defaults are acks=all and linger.ms=5. With rate=N, records are produced at N per second
 * and each one's latency is measured from its scheduled time to its delivery report. Prints:
 *   <records/s> records/s <MB/s> MB/s <seconds> s <failed> failed [latency ms p50=.. p99=.. ...]
 *
 * Build: cc -O2 -o rdkafka-perf scripts/rdkafka-perf.c -lrdkafka   (Debian: librdkafka-dev)
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long delivered;
static long failed;
static double *latencies_s; /* per delivered record, with rate=N */

static double now_s(void);

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
    (void)rk;
    (void)opaque;
    if (latencies_s && !message->err) {
        double scheduled = *(double *)message->_private;
        latencies_s[delivered] = now_s() - scheduled;
        free(message->_private);
    }
    if (message->err) {
        if (failed++ == 0) {
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(message->err));
        }
    } else {
        delivered++;
    }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(long count, double p) {
    return count ? latencies_s[(long)((double)(count - 1) * p)] * 1e3 : 0.0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, key, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s=%s: %s\n", key, value, error);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC RECORDS RECORD_BYTES [key=value ...]\n", argv[0]);
        return 2;
    }
    const char *topic = argv[2];
    long records = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", argv[1]);
    set(conf, "acks", "all");
    set(conf, "linger.ms", "5");
    double rate = 0;
    for (int i = 5; i < argc; i++) {
        if (strncmp(argv[i], "rate=", 5) == 0) {
            rate = atof(argv[i] + 5);
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "not key=value: %s\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        set(conf, argv[i], eq + 1);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char error[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!rk) {
        fprintf(stderr, "rd_kafka_new: %s\n", error);
        return 1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char *value = malloc(size ? size : 1);
    srand(42);
    for (size_t i = 0; i < size; i++) {
        value[i] = (char)rand();
    }
    if (rate > 0) {
        latencies_s = calloc((size_t)records, sizeof(double));
    }
    double start = now_s();
    for (long i = 0; i < records; i++) {
        double *scheduled = NULL;
        if (rate > 0) {
            scheduled = malloc(sizeof(double));
            *scheduled = start + (double)i / rate;
            /* Wait without spinning: the client shares the machine with the broker. */
            double wait;
            while ((wait = *scheduled - now_s()) > 0) {
                if (wait > 0.002) {
                    rd_kafka_poll(rk, (int)(wait * 1e3) - 1);
                } else {
                    struct timespec ts = {0, (long)(wait * 1e9)};
                    nanosleep(&ts, NULL);
                }
            }
            rd_kafka_poll(rk, 0);
        }
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value, size, NULL, 0,
                                scheduled) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
                return 1;
            }
            rd_kafka_poll(rk, 1);
        }
        if ((i & 1023) == 0) {
            rd_kafka_poll(rk, 0);
        }
    }
    while (delivered + failed < records) {
        rd_kafka_poll(rk, 10);
        if (now_s() - start > 600) {
            fprintf(stderr, "gave up waiting for deliveries\n");
            break;
        }
    }
    double seconds = now_s() - start;
    printf("%.0f records/s %.1f MB/s %.2f s %ld failed", delivered / seconds,
           (double)delivered * (double)size / seconds / 1e6, seconds, failed);
    if (latencies_s) {
        qsort(latencies_s, (size_t)delivered, sizeof(double), compare_doubles);
        printf(" latency ms p50=%.2f p99=%.2f p99.9=%.2f max=%.2f", percentile_ms(delivered, 0.5),
               percentile_ms(delivered, 0.99), percentile_ms(delivered, 0.999),
               percentile_ms(delivered, 1.0));
    }
    printf("\n");
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(value);
    return failed ? 1 : 0;
}
