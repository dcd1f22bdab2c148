#!/usr/bin/env python3
"""Round-trip latency of one small Kafka message on the local stack.

Usage: python tests/stack/latency.py DIR [--count N] [--size BYTES]
  DIR is a stack started by `scripts/stack.sh up DIR`. Needs the confluent-kafka
  package (librdkafka, the client fleet's services use), e.g. in a venv:
    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install confluent-kafka
(kcat cannot be used for this: its producer holds stdin lines until EOF.)

One producer (linger.ms=0, acks=all) and one consumer assigned to partition 0 of a
fresh topic. Ping-pong: each message is produced only after the previous one was
consumed; a round trip is produce() -> broker -> poll() returning it. Prints
p50/p90/p99/max in ms. Not a ctest test: a measurement, see docs/stack.md.
"""
import argparse, os, sys, time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_END
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64, help="payload bytes")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per message")
    a = ap.parse_args()
    env = dict(l.strip().split("=", 1) for l in open(os.path.join(a.dir, "stack.env")) if "=" in l)
    brokers = env["FLEET_KAFKA_BROKERS"]
    topic = f"latency-{os.getpid()}-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(timeout=30)
    prod = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all"})
    cons = Consumer({"bootstrap.servers": brokers, "group.id": topic,
                     "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    cons.assign([TopicPartition(topic, 0, OFFSET_END)])

    def roundtrip(payload, timeout):
        t0 = time.perf_counter_ns()
        prod.produce(topic, payload, partition=0)
        prod.poll(0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None or m.error():
                continue
            if m.value() == payload:
                return (time.perf_counter_ns() - t0) / 1e6
        return None

    # Warm up until the consumer is positioned and sees our messages (bounded).
    deadline = time.monotonic() + 60
    while roundtrip(b"warm".ljust(a.size, b"."), 1.0) is None:
        if time.monotonic() > deadline:
            raise SystemExit("consumer never saw a warm-up message")
    for _ in range(20):
        roundtrip(b"warm".ljust(a.size, b"."), 5.0)
    rtts = []
    for n in range(a.count):
        r = roundtrip((b"ping %d " % n).ljust(a.size, b"."), a.timeout)
        if r is None:
            raise SystemExit(f"message {n} not consumed within {a.timeout}s")
        rtts.append(r)
    prod.flush(10)
    cons.close()
    admin.delete_topics([topic])
    rtts.sort()
    q = lambda p: rtts[min(len(rtts) - 1, int(p * len(rtts)))]
    print(f"kafka round trip, {a.count} msgs of {a.size} B: p50 {q(.50):.2f} ms  "
          f"p90 {q(.90):.2f} ms  p99 {q(.99):.2f} ms  max {rtts[-1]:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
