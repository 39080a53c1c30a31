/*
 * rdkafka-perf: produces with librdkafka (the client kcat and confluent-kafka are built on), for
 * scripts/bench's side-by-side runs: the load a real client puts on a broker, whichever broker
 * it is. One producer, one topic; every record is the same random value.
 *
 *   rdkafka-perf BOOTSTRAP TOPIC RECORDS RECORD_BYTES [key=value ...]
 *
 * The key=value pairs are librdkafka properties (acks, linger.ms, enable.idempotence, ...).
 * The defaults are acks=all and linger.ms=5. Prints one line:
 *   <records/s> records/s <MB/s> MB/s <seconds> s <failed> failed
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

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
    (void)rk;
    (void)opaque;
    if (message->err) {
        if (failed++ == 0) {
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(message->err));
        }
    } else {
        delivered++;
    }
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
    for (int i = 5; i < argc; i++) {
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
    double start = now_s();
    for (long i = 0; i < records; i++) {
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value, size, NULL, 0,
                                NULL) != 0) {
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
    printf("%.0f records/s %.1f MB/s %.2f s %ld failed\n", delivered / seconds,
           (double)delivered * (double)size / seconds / 1e6, seconds, failed);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(value);
    return failed ? 1 : 0;
}
