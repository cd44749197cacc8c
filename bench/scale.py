#!/usr/bin/env python3
"""The scale bench (issue 24): how the sidecar's memory, idle CPU, start-up, rebalance and
shutdown grow with the partitions it owns. Run through bench/scale.sh (one command).

For each row (P partitions, or T topics × P partitions; record sizes; keys in key mode; a
budget; per-topic metric series) and each build (ours, and --baseline-sidecar side by side):
  1. a topic (or topics) with a backlog of --per-partition records on every partition;
  2. the sidecar starts against the bench receiver; "first delivery" is the time from its
     start to the receiver's first record, "drained" to the last backlog record;
  3. peak RSS (VmHWM) while it drained the backlog; then idle RSS and idle CPU (% of one
     core) over --idle-seconds with nothing to deliver, and the metric series scraped;
  4. a second member joins the group: "join" is the time until both own partitions and
     together own them all; the second then gets SIGTERM: "leave" is the time until the first
     owns every partition again, "2nd exit" the second's SIGTERM-to-exit;
  5. SIGTERM to the first: "exit" is SIGTERM-to-exit with every partition assigned, while a
     second backlog is being delivered (--no-busy-exit: idle).

Figures are printed as a markdown table and written as JSON (--out).
"""

import argparse
import json
import os
import re
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (Bench, Proc, _free_port, cpu_seconds, http_get, log, mib,  # noqa: E402
                 status_kib, wait_for, write_results)


def assigned(proc):
    """The member's kws_assigned_partitions gauge, or None while it cannot be scraped."""
    try:
        text = http_get(proc.admin + "/metrics", timeout=2)
    except OSError:
        return None
    match = re.search(r"^kws_assigned_partitions (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else None


class Scale(Bench):
    def member(self, name, group, topics, binary, budget, row):
        admin_port = _free_port()
        receiver = self.receivers[0]
        kafka = {"bootstrap_servers": self.bootstrap, "group_id": group, "topics": topics,
                 "auto_offset_reset": "earliest", "commit_interval": "1s",
                 "assignment_strategy": self.args.assignment_strategy,
                 "session_timeout": "10s"}
        if budget:
            kafka["memory_budget"] = budget
        config = {"kafka": kafka,
                  "delivery": {"url": receiver.url, "ordering": row["ordering"],
                               "max_in_flight": self.args.cap, "timeout": "10s"},
                  "admin": {"listen": f"127.0.0.1:{admin_port}",
                            **({"partition_metrics": False} if row["per_topic"] else {})},
                  "log": {"format": "text", "level": "warn"},
                  "shutdown": {"drain_timeout": "20s"}}
        path = os.path.join(self.workdir, f"{name}.yaml")
        with open(path, "w") as f:
            json.dump(config, f)
        proc = Proc(name, [binary, "--config", path], self.workdir)
        proc.admin = f"http://127.0.0.1:{admin_port}"
        return proc

    def layout(self, row, build, binary, budget):
        a = self.args
        topics, partitions, size = row["topics"], row["partitions"], row["size"]
        per_partition, ordering = row["per_partition"], row["ordering"]
        name = (f"{topics}x{partitions}-{size}B-{row['keys'] or 'k'}-{ordering}"
                f"{'-' + row['budget'] if row['budget'] else ''}"
                f"{'-per-topic' if row['per_topic'] else ''}-{build}")
        total = topics * partitions
        names = [f"bench-scale-{name}-{i}-{uuid.uuid4().hex[:6]}" for i in range(topics)]
        records = total * per_partition
        for i, topic in enumerate(names):
            self.run_tool("create-topic", "--bootstrap", self.bootstrap, "--topic", topic,
                          "--partitions", partitions)
            # Four keys per partition unless the row says; sequence numbers distinct across
            # the topics (the receiver counts distinct ones).
            count = partitions * per_partition
            self.run_tool("produce", "--bootstrap", self.bootstrap, "--topic", topic,
                          "--count", count, "--size", size,
                          "--keys", row["keys"] or max(partitions * 4, 1),
                          "--first-seq", i * count,
                          "--batch-size", self.args.producer_batch_size, timeout=1800)
        receiver = self.receivers[0]
        self.reset(receiver)
        group = f"bench-scale-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        first = self.member(f"scale-{name}", group, names, binary, budget, row)
        wait_for("the first delivery", lambda: self.distinct(receiver) >= 1, 120,
                 interval=0.02, proc=first)
        first_delivery = time.monotonic() - started
        cpu_at_first = cpu_seconds(first.pid)
        wait_for("the backlog", lambda: self.distinct(receiver) >= records, 600, proc=first)
        drained = time.monotonic() - started
        # The sidecar's CPU per record while it drained (first delivery to last record).
        drain_cpu_us = (cpu_seconds(first.pid) - cpu_at_first) / max(records - 1, 1) * 1e6
        peak = status_kib(first.pid, "VmHWM")
        # Idle: everything delivered; let the last commits and statistics pass first.
        wait_for("every partition assigned", lambda: assigned(first) == total, 60, proc=first)
        time.sleep(a.settle_seconds)
        cpu_before, t_before = cpu_seconds(first.pid), time.monotonic()
        time.sleep(a.idle_seconds)
        idle_cpu = (cpu_seconds(first.pid) - cpu_before) / (time.monotonic() - t_before)
        idle_rss = status_kib(first.pid, "VmRSS")
        series = sum(1 for line in http_get(first.admin + "/metrics").splitlines()
                     if line and not line.startswith("#"))
        # A second member joins, then leaves.
        joined_at = time.monotonic()
        second = self.member(f"scale-{name}-second", group, names, binary, budget, row)

        def split():
            one, two = assigned(first), assigned(second)
            return one is not None and two is not None and one > 0 and two > 0 \
                and one + two == total
        join = None
        if total > 1:
            wait_for("the second member's share", split, 180, proc=second)
            join = time.monotonic() - joined_at
        else:
            # One partition: the second member stands by; it joined once it can be scraped.
            wait_for("the second member up", lambda: assigned(second) == 0, 180, proc=second)
        left_at = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)
        wait_for("the second member's exit", lambda: not second.alive(), 120)
        second_exit = time.monotonic() - left_at
        wait_for("every partition back", lambda: assigned(first) == total, 180, proc=first)
        leave = time.monotonic() - left_at
        second.stop()
        if a.busy_exit:
            # SIGTERM mid-backlog: a second backlog, and the signal once it is being delivered.
            for i, topic in enumerate(names):
                count = partitions * per_partition
                self.run_tool("produce", "--bootstrap", self.bootstrap, "--topic", topic,
                              "--count", count, "--size", size,
                              "--keys", row["keys"] or max(partitions * 4, 1),
                              "--first-seq", records + i * count,
                              "--batch-size", self.args.producer_batch_size, timeout=1800)
            wait_for("the second backlog's deliveries",
                     lambda: self.distinct(receiver) > records, 120, proc=first)
        stop_at = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        wait_for("the member's exit", lambda: not first.alive(), 120)
        exit_s = time.monotonic() - stop_at
        code = first.stop()
        duplicates = self.stats(receiver).get("duplicates")
        for topic in names:
            # The broker's heap: thousands of partitions collected over a run exhaust it.
            self.run_tool("delete-topic", "--bootstrap", self.bootstrap, "--topic", topic)
        row = {**row, "build": build, "records": records,
               "first_delivery_s": round(first_delivery, 2),
               "drain_s": round(drained, 2),
               "drain_per_s": round(records / max(drained - first_delivery, 1e-3)),
               "drain_cpu_us_per_record": round(drain_cpu_us, 1),
               "peak_rss_mib": mib(peak), "idle_rss_mib": mib(idle_rss),
               "idle_cpu_pct": round(idle_cpu * 100, 2), "metric_series": series,
               "join_s": round(join, 2) if join is not None else None,
               "leave_s": round(leave, 2), "second_exit_s": round(second_exit, 2),
               "exit_s": round(exit_s, 2), "exit_code": code, "duplicates": duplicates}
        log(f"scale {name}: {row}")
        return row

    def run(self):
        a = self.args
        self.receiver(0)
        builds = [("ours", a.sidecar, a.memory_budget)]
        if a.baseline_sidecar:
            builds.append(("base", a.baseline_sidecar, a.base_memory_budget))
        def spec(topics, partitions, size=a.record_size, per_partition=a.per_partition,
                 keys=None, ordering=a.ordering, budget=None, per_topic=False):
            return {"topics": topics, "partitions": partitions, "size": size,
                    "per_partition": per_partition, "keys": keys, "ordering": ordering,
                    "budget": budget, "per_topic": per_topic}
        specs = [spec(1, int(p)) for p in a.partitions_list.split(",") if p]
        specs += [spec(*(int(x) for x in t.split("x"))) for t in a.topics_list.split(",") if t]
        for text in filter(None, a.size_rows.split(",")):
            partitions, size, per = (int(x) for x in text.split(":"))
            specs.append(spec(1, partitions, size=size, per_partition=per))
        for text in filter(None, a.key_rows.split(",")):
            partitions, keys, per = (int(x) for x in text.split(":"))
            specs.append(spec(1, partitions, per_partition=per, keys=keys, ordering="key"))
        for text in filter(None, a.budget_rows.split(",")):
            partitions, budget = text.split(":")
            specs.append(spec(1, int(partitions), budget=budget))
        for text in filter(None, a.per_topic_rows.split(",")):
            specs.append(spec(1, int(text), per_topic=True))
        rows = []
        for row in specs:
            # Builds interleaved per row, so drift in the machine favours neither. Rows of
            # keys only ours has (a budget, per-topic series) run for ours alone.
            for build, binary, budget in builds:
                if build != "ours" and (row["budget"] or row["per_topic"]):
                    continue
                rows.append(self.layout(row, build, binary, row["budget"] or budget))
        return {"scale": rows}


def size_text(size):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def markdown(rows):
    lines = ["| layout | record | keys, mode | build | records | first delivery s | drain s (records/s) | peak RSS MiB "
             "| drain CPU µs/record | idle RSS MiB | idle CPU % | series | join s | leave s "
             "| 2nd exit s | exit s |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        layout = (f"{r['partitions']} partitions" if r["topics"] == 1
                  else f"{r['topics']} topics × {r['partitions']}")
        if r.get("budget"):
            layout += f", budget {r['budget']}"
        if r.get("per_topic"):
            layout += ", per-topic series"
        keys = f"{r['keys'] or 4 * r['partitions'] * r['topics']}, {r['ordering']}"
        lines.append(f"| {layout} | {size_text(r['size'])} | {keys} | {r['build']} "
                     f"| {r['records']} | {r['first_delivery_s']} "
                     f"| {r['drain_s']} ({r['drain_per_s']}) | {r['peak_rss_mib']} "
                     f"| {r.get('drain_cpu_us_per_record')} "
                     f"| {r['idle_rss_mib']} | {r['idle_cpu_pct']} | {r.get('metric_series')} | {r['join_s']} "
                     f"| {r['leave_s']} | {r['second_exit_s']} | {r['exit_s']} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--broker-pid", type=int)
    parser.add_argument("--tool", required=True, help="target/release/examples/kws-bench")
    parser.add_argument("--sidecar", required=True)
    parser.add_argument("--baseline-sidecar", help="an earlier build, side by side")
    parser.add_argument("--memory-budget", help="kafka.memory_budget for ours (default: "
                        "the sidecar's default)")
    parser.add_argument("--base-memory-budget",
                        help="kafka.memory_budget for the baseline (omit for builds without it)")
    parser.add_argument("--partitions-list", default="1,10,100,1000")
    parser.add_argument("--topics-list", default="20x50",
                        help="TxP layouts: T topics of P partitions each")
    parser.add_argument("--per-partition", type=int, default=200,
                        help="backlog records per partition")
    parser.add_argument("--size-rows", default="100:100:1000,100:10240:50,20:1048576:4,"
                        "10:8388608:3",
                        help="PARTITIONS:RECORD_BYTES:PER_PARTITION rows (one topic)")
    parser.add_argument("--key-rows", default="100:1:1000,100:100000:1000",
                        help="PARTITIONS:KEYS:PER_PARTITION rows in key mode")
    parser.add_argument("--budget-rows", default="1000:16MiB,1000:256MiB",
                        help="PARTITIONS:BUDGET rows, ours only (kafka.memory_budget)")
    parser.add_argument("--per-topic-rows", default="1000",
                        help="PARTITIONS rows with admin.partition_metrics: false, ours only")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--producer-batch-size", type=int, default=1_000_000,
                        help="the backlog producer's batch.size (librdkafka's 1 MB; the Java "
                        "client's 16384): the consumer fetches whole batches")
    parser.add_argument("--ordering", default="partition")
    parser.add_argument("--cap", type=int, default=8)
    parser.add_argument("--assignment-strategy", default="cooperative-sticky")
    parser.add_argument("--no-busy-exit", dest="busy_exit", action="store_false",
                        help="SIGTERM the member idle instead of mid-backlog")
    parser.add_argument("--settle-seconds", type=float, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--out", default="bench/results/scale.json")
    args = parser.parse_args()
    bench = Scale(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    results["settings"] = {k: v for k, v in vars(args).items()
                           if k not in ("tool", "sidecar", "baseline_sidecar", "out")}
    write_results(args.out, results, markdown(results["scale"]))


if __name__ == "__main__":
    main()
