"""The suite's own checker catches what it should (no broker needed)."""

import pytest

from kclients import Got, make_messages, verify


def as_read(msgs, partitions=2):
    """What a consumer would read if the broker kept everything: a stand-in partitioner that is
    stable per key, offsets from 0 per partition."""
    offsets = {}
    out = []
    for m in msgs:
        p = m.key[-1] % partitions
        o = offsets.get((m.topic, p), 0)
        offsets[(m.topic, p)] = o + 1
        out.append(Got(m.topic, p, o, m.key, m.value, m.headers))
    return out


def _swap_first_two_of_a_partition(g):
    i, j = [k for k, x in enumerate(g) if (x.topic, x.partition) == (g[0].topic, g[0].partition)][:2]
    g = list(g)
    g[i], g[j] = g[j], g[i]
    return g


def _edit_first(g, **change):
    first = g[0]
    fields = dict(topic=first.topic, partition=first.partition, offset=first.offset, key=first.key,
                  value=first.value, headers=first.headers)
    fields.update(change)
    return [Got(**fields)] + g[1:]


def _gap(g):
    return [Got(x.topic, x.partition, x.offset + (5 if x.offset > 10 else 0), x.key, x.value, x.headers) for x in g]


def test_accepts_exact_copy():
    msgs = make_messages(["a", "b"], 200, "x")
    verify(msgs, as_read(msgs))


@pytest.mark.parametrize("damage,complaint", [
    (lambda g: g[:-1], "not read back"),
    (lambda g: g + [g[3]], "duplicate"),
    (_swap_first_two_of_a_partition, "offsets not strictly increasing"),
    (lambda g: _edit_first(g, value=b"zz"), "unexpected"),
    (lambda g: _edit_first(g, headers=()), "headers differ"),
    (lambda g: _edit_first(g, key=b"other"), "key differs"),
    (_gap, "gaps"),
])
def test_rejects(damage, complaint):
    msgs = make_messages(["a", "b"], 200, "x")
    with pytest.raises(AssertionError, match=complaint):
        verify(msgs, damage(as_read(msgs)))


def test_rejects_values_out_of_produce_order():
    msgs = make_messages(["a"], 50, "x")
    got = as_read(msgs, partitions=1)
    swapped = [Got(g.topic, g.partition, g.offset, h.key, h.value, h.headers) for g, h in zip(got, [got[1], got[0]] + got[2:])]
    with pytest.raises(AssertionError, match="order differs"):
        verify(msgs, swapped)
