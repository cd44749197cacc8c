#!/usr/bin/env python3
"""The routes bench (issue 25): what routing costs per record. Run through bench/routes.sh.

One backlog (--records of --record-size bytes over --keys keys `key-0`…, --partitions
partitions) is drained, in one run and in alternation (--rounds times each, the median
kept), by the sidecar configured as:
  - no routes: `delivery` alone (the single route of old, no fanout);
  - 1 route, 1 filter: a CEL filter every record passes (one fanout lane per partition);
  - 1 route, 10 rules: ten first-match rules on the key, each to its own path (5.5 rules
    evaluated per record on average);
  - 10 routes: ten routes with a CEL filter each, every record taken by exactly one of
    them (ten lanes per partition, ten filters evaluated per record).
Every record is delivered once in every variant, so CPU per record compares like with like.
Figures: records/s committed, CPU s per 100k records (the sidecar's user+system time) and
the ratio to no routes, peak RSS; then the routing decision alone, in process, per record
(`kws-bench route-cost`).
"""

import argparse
import json
import os
import statistics
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Bench, Proc, _free_port, log, write_results  # noqa: E402


def variants(keys):
    """name -> `routes:` (None = no routes)."""
    rules = [{"match": f'key == "key-{k}"', "path": f"/r{k}"} for k in range(keys)]
    return {
        "no routes": None,
        "1 route, 1 filter": [{"name": "all", "filter": 'topic != "" && key != "none"'}],
        f"1 route, {keys} rules": [{"name": "keys", "rules": rules}],
        f"{keys} routes": [{"name": f"r{k}", "filter": f'key == "key-{k}"'}
                           for k in range(keys)],
    }


class Routes(Bench):
    def routed(self, name, group, topic, url, routes):
        admin_port = _free_port()
        config = {
            "kafka": {"bootstrap_servers": self.bootstrap, "group_id": group,
                      "topics": [topic], "auto_offset_reset": "earliest",
                      "commit_interval": "1s"},
            "delivery": {"url": url, "ordering": "partition", "timeout": "10s"},
            "admin": {"listen": f"127.0.0.1:{admin_port}"},
            "log": {"format": "text", "level": "warn"},
        }
        if routes is not None:
            config["routes"] = routes
        path = os.path.join(self.workdir, f"{name}.yaml")
        with open(path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        proc = Proc(name, [self.args.sidecar, "--config", path], self.workdir)
        proc.admin = f"http://127.0.0.1:{admin_port}"
        return proc

    def run(self):
        receiver = self.receiver(0)
        topic = f"bench-routes-{uuid.uuid4().hex[:8]}"
        self.create_topic(topic)
        self.produce(topic, self.args.records)
        rows = {name: [] for name in variants(self.args.keys)}
        for round_ in range(self.args.rounds):
            for name, routes in variants(self.args.keys).items():
                label = f"{name.replace(' ', '-').replace(',', '')}-{round_}"
                rows[name].append(self.drain_backlog(
                    label,
                    lambda n, g, t, routes=routes: self.routed(n, g, t, receiver.url, routes),
                    topic, self.args.records, receiver))
        table = {}
        for name, runs in rows.items():
            errors = [run["error"] for run in runs if "error" in run]
            table[name] = {
                "committed_per_s": statistics.median(r["committed_per_s"] for r in runs),
                "cpu_s_per_100k": statistics.median(r["cpu_s_per_100k"] for r in runs),
                "cpu_s_per_100k_runs": [r["cpu_s_per_100k"] for r in runs],
                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                "duplicates": sum(r["duplicates"] for r in runs),
                **({"error": errors[0]} if errors else {}),
            }
        base = table["no routes"]["cpu_s_per_100k"]
        for row in table.values():
            row["cpu_ratio"] = round(row["cpu_s_per_100k"] / base, 3) if base else None
        self.run_tool("delete-topic", "--bootstrap", self.bootstrap, "--topic", topic)
        # The routing decision alone, in process (kws-bench route-cost).
        evaluation = self.run_tool("route-cost")
        return {"routes": table, "decision_us_per_record": evaluation}


def markdown(table, evaluation):
    lines = ["| variant | committed records/s | CPU s / 100k records | × no routes | "
             "peak RSS MiB |", "|---|---:|---:|---:|---:|"]
    for name, row in table.items():
        runs = ", ".join(str(x) for x in row["cpu_s_per_100k_runs"])
        lines.append(f"| {name} | {row['committed_per_s']:,} | {row['cpu_s_per_100k']} "
                     f"({runs}) | {row['cpu_ratio']} | {row['peak_rss_mib']} |"
                     + (f" error: {row['error']}" if "error" in row else ""))
    lines += ["", "Routing decision alone (kws-bench route-cost, µs per record): "
              + ", ".join(f"{name} {us}" for name, us in evaluation.items())]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--broker-pid", type=int)
    parser.add_argument("--tool", required=True, help="target/release/examples/kws-bench")
    parser.add_argument("--sidecar", required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-timeout", type=int, default=600)
    parser.add_argument("--out", default="bench/results/routes.json")
    args = parser.parse_args()
    # Read by Bench.ours-style helpers shared with bench/run.py.
    args.timing = args.librdkafka_debug = args.issue_config = None
    bench = Routes(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    results["settings"] = {k: v for k, v in vars(args).items()
                           if k not in ("tool", "sidecar", "out")}
    write_results(args.out, results, markdown(results["routes"], results["decision_us_per_record"]))


if __name__ == "__main__":
    main()
