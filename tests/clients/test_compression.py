"""Every compression codec, produced by one client and read by another. The codec is also
checked where the broker stored it: the batch attributes in the partition's log segments."""

import pytest

from kclients import CLIENTS, AioKafka, Confluent, KafkaJs, KafkaPython, Kcat, make_messages, stored_batches, verify

CODECS = ["gzip", "snappy", "lz4", "zstd"]
PAIRS = [
    ("confluent-kafka", "kafka-python"),
    ("kafka-python", "aiokafka"),
    ("aiokafka", "kcat"),
    ("kcat", "confluent-kafka"),
]
CASES = [(p, c, codec) for p, c in PAIRS for codec in CODECS] + [
    # kafkajs itself only has gzip (the other codecs are plugins).
    ("kafkajs", "confluent-kafka", "gzip"),
    ("confluent-kafka", "kafkajs", "gzip"),
]
PARTITIONS = 2
COUNT = 600


def produce_compressed(client: str, bs: str, msgs, codec: str):
    if client == "confluent-kafka":
        return Confluent.produce(bs, msgs, **{"compression.type": codec})
    if client == "kafka-python":
        return KafkaPython.produce(bs, msgs, compression_type=codec)
    if client == "aiokafka":
        return AioKafka.produce(bs, msgs, compression_type=codec)
    if client == "kafkajs":
        return KafkaJs.produce(bs, msgs, compression=codec)
    if client == "kcat":
        return Kcat.produce(bs, msgs, compression=codec)
    raise ValueError(client)


@pytest.mark.parametrize("producer,consumer,codec", CASES)
def test_codec(broker, unique, producer, consumer, codec):
    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: PARTITIONS})
    # Compressible text values (a client may send a batch uncompressed if the codec does not
    # make it smaller).
    msgs = make_messages([topic], COUNT, unique, per_message_headers=producer != "kcat", sizes=(100, 1500))
    Kcat.compression_notes.clear()
    deliveries = produce_compressed(producer, broker.bootstrap, msgs, codec)
    got = CLIENTS[consumer].consume(broker.bootstrap, {topic: PARTITIONS}, len(msgs))
    verify(msgs, got, f"{producer} ({codec}) -> {consumer}", deliveries=deliveries or None)
    stored: dict[str, int] = {}
    for b in stored_batches(broker.log_dir, topic):
        stored[b.codec] = stored.get(b.codec, 0) + 1
    hint = ""
    if producer == "kcat" and set(stored) == {"none"}:
        hint = ("; librdkafka <= 2.11 (kcat has 2.0.2) compresses with gzip, snappy or lz4 only if the "
                "broker's ApiVersions range for Produce includes v0 (else it logs 'Broker does not "
                "support compression type ...: not compressing batch'): advertise Produce from v0")
        if Kcat.compression_notes:
            hint += f". kcat said: {Kcat.compression_notes[0].strip()}"
    assert set(stored) == {codec}, (
        f"{producer} was configured with {codec}, but the batches stored on disk by codec are {stored}{hint}")
