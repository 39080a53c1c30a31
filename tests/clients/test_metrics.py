"""`GET /metrics` against real clients: confluent-kafka produces and consumes in a group, and the
scrape counts exactly the records and bytes stored, the requests per API, and the group's lag."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

from kclients import OP_TIMEOUT, Confluent, Msg
from conftest import free_port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=OP_TIMEOUT) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def _value(body: str, series: str) -> float:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the scrape:\n{body[:3000]}")


def test_metrics_follow_confluent_traffic(broker_factory, unique):
    from confluent_kafka import Consumer, TopicPartition

    port = free_port()
    broker = broker_factory({"sprat.metrics.listener": f"127.0.0.1:{port}"})
    bs = broker.bootstrap
    topic = f"{unique}-m"
    Confluent.create_topics(bs, {topic: 2})
    msgs = [Msg(topic, f"k{i}".encode(), b"v" * (10 + i), (), partition=i % 2) for i in range(40)]
    Confluent.produce(bs, msgs, **{"linger.ms": 0})

    body = _scrape(port)
    assert _value(body, f'kafka_server_brokertopicmetrics_messagesin_total{{topic="{topic}"}}') == 40
    stored = sum((broker.log_dir / f"{topic}-{p}" / "00000000000000000000.log").stat().st_size for p in (0, 1))
    assert _value(body, f'kafka_server_brokertopicmetrics_bytesin_total{{topic="{topic}"}}') == stored
    assert _value(body, 'kafka_network_requestmetrics_requests_total{request="Produce"}') >= 1
    assert _value(body, 'kafka_network_requestmetrics_requests_total{request="Metadata"}') >= 1
    for p in (0, 1):
        assert _value(body, f'kafka_log_log_logendoffset{{topic="{topic}",partition="{p}"}}') == 20

    # A group consumes partition 0 and commits 15 of its 20 records: lag 5 there.
    group = f"{unique}-g"
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = 0
        while got < 20:
            m = c.poll(OP_TIMEOUT)
            assert m is not None and m.error() is None, m and m.error()
            got += 1
        c.commit(offsets=[TopicPartition(topic, 0, 15)], asynchronous=False)
    finally:
        c.close()
    body = _scrape(port)
    labels = f'{{consumergroup="{group}",topic="{topic}",partition="0"}}'
    assert _value(body, f"kafka_consumergroup_current_offset{labels}") == 15
    assert _value(body, f"kafka_consumergroup_lag{labels}") == 5
    bytes_out = _value(body, f'kafka_server_brokertopicmetrics_bytesout_total{{topic="{topic}"}}')
    p0 = (broker.log_dir / f"{topic}-0" / "00000000000000000000.log").stat().st_size
    assert bytes_out >= p0, (bytes_out, p0)
    assert re.search(r'kafka_network_requestmetrics_totaltimems_count\{request="Fetch"\} [1-9]', body)

    # Bad HTTP is refused; Kafka clients carry on.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=OP_TIMEOUT)
        raise AssertionError("a 404 was expected")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    assert topic in Confluent.list_topics(bs)

    # Every metric the Grafana dashboard in docs/ queries is one the broker serves.
    dashboard = (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    served = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    queried = set(re.findall(r"\b((?:kafka|sprat)_[a-z_]+?)(?:_bucket)?\b", dashboard))
    assert queried and queried <= served, sorted(queried - served)
