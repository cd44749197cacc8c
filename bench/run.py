#!/usr/bin/env python3
"""Runs every benchmark scenario in one go and prints the table (see bench/README.md).

Started by bench/run.sh, which builds the binaries and starts the broker; this script
only drives processes and measures them. Every figure comes from this one run, so ratios
between figures hold even on a noisy machine.

Per run of a consumer (ours or a peer) against a pre-produced backlog:
  - records/s delivered: distinct records seen by the receiver / (last - first arrival);
  - records/s committed: backlog / (time the group's committed offsets reached the end
    - first arrival), i.e. delivered, acknowledged and committed;
  - CPU s per 100k records: the process's user+system time (/proc/PID/stat) at that
    moment, scaled; the broker's CPU over the same run is reported beside it;
  - peak RSS: the process's VmHWM.

The batch scenarios (issue 13; --batch-only runs only them, --no-batch skips them) drain
the same backlog with the sidecar's delivery.batch and with Benthos batching the same way,
next to the kcat ceiling, and measure the added latency of batching at a steady rate. The
receiver counts records, not requests, so every figure above holds per record.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# The signing secret of the signed run (a benchmark value, not a real secret).
BENCH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ process readings --

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} missing for pid {pid}")


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of `pid` so far (threads
    that already ended are not counted)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def machine_busy():
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def mib(kib):
    return round(kib / 1024, 1)


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name, cmd, workdir, env=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout}s; killing it")
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode

    def tail(self, lines=20):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def wait_for(what, predicate, timeout, interval=0.1, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def http_post(url, timeout=5):
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


# ------------------------------------------------------------------------ the bench --

class Bench:
    def __init__(self, args):
        self.args = args
        self.tool = args.tool
        self.bootstrap = args.bootstrap
        self.workdir = tempfile.mkdtemp(prefix="kws-bench.")
        log(f"configs and logs of every process: {self.workdir}")
        self.broker_pid = args.broker_pid
        self.results = {}
        self.receivers = {}

    # -- helpers -------------------------------------------------------------------

    def run_tool(self, *argv, timeout=900):
        out = subprocess.run([self.tool, *map(str, argv)], check=True, capture_output=True,
                             text=True, timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None

    def receiver(self, delay_ms, workers=0, tag=""):
        key = delay_ms if not workers and not tag else (delay_ms, workers, tag)
        if key not in self.receivers:
            name = (f"receiver-{delay_ms}ms" + (f"-{workers}w" if workers else "")
                    + (f"-{tag}" if tag else ""))
            # It also listens on a Unix socket (delivery.unix_socket rows).
            socket = os.path.join(self.workdir, f"{name}.sock")
            proc = Proc(name, [self.tool, "receiver", "--delay-ms", str(delay_ms),
                               "--workers", str(workers), "--unix", socket], self.workdir)
            proc.socket = socket
            line = wait_for("the receiver's address", lambda: _first_line(proc.log_path),
                            30, proc=proc)
            proc.url = "http://" + line.split()[1] + "/"
            self.receivers[key] = proc
        return self.receivers[key]

    def stats(self, receiver):
        return json.loads(http_get(receiver.url + "stats"))

    def distinct(self, receiver):
        """Distinct records the receiver saw: the cheap poll for wait_for (no percentiles)."""
        return int(http_get(receiver.url + "distinct"))

    def reset(self, receiver):
        http_post(receiver.url + "reset")

    def create_topic(self, name):
        self.run_tool("create-topic", "--bootstrap", self.bootstrap, "--topic", name,
                      "--partitions", self.args.partitions)

    def produce(self, topic, count, first_seq=0):
        result = self.run_tool("produce", "--bootstrap", self.bootstrap, "--topic", topic,
                               "--count", count, "--size", self.args.record_size,
                               "--keys", self.args.keys, "--first-seq", first_seq)
        log(f"produced {count} records to {topic} at {result['per_second']:.0f}/s")
        return result

    def produce_rate(self, topic, seconds, first_seq, rate=None, keys=None):
        """Open loop at `rate` (default --latency-rate) for `seconds` over `keys` (default
        --keys); returns when the last record is sent."""
        self.run_tool("produce-rate", "--bootstrap", self.bootstrap, "--topic", topic,
                      "--rate", rate or self.args.latency_rate, "--seconds", seconds,
                      "--size", self.args.record_size, "--keys", keys or self.args.keys,
                      "--first-seq", first_seq)

    def broker_cpu(self):
        return cpu_seconds(self.broker_pid) if self.broker_pid else None

    # -- the consumers -------------------------------------------------------------

    def ours(self, name, group, topic, url, ordering, cap, binary=None, delivery=None,
             properties=None, env=None):
        admin_port = _free_port()
        config = {
            "kafka": {
                "bootstrap_servers": self.bootstrap, "group_id": group, "topics": [topic],
                "auto_offset_reset": "earliest", "commit_interval": "1s",
                **({"properties": properties} if properties else {}),
            },
            "delivery": {"url": url, "ordering": ordering, "max_in_flight": cap,
                         "timeout": "10s", **(delivery or {})},
            "admin": {"listen": f"127.0.0.1:{admin_port}"},
            "log": {"format": "text", "level": "info"},
        }
        if self.args.timing:
            # One line per acknowledged record with its stage times (see timing_split).
            config["log"] = {"format": "json", "level": "info,kws::timing=trace"}
        if self.args.librdkafka_debug:
            config["kafka"].setdefault("properties", {})["debug"] = self.args.librdkafka_debug
            config["log"] = {"format": "json",
                             "level": config["log"]["level"] + ",librdkafka=debug"}
        if self.args.issue_config:
            # Issue 32's set-up: the README's keys a new user sets.
            config["kafka"].update({"session_timeout": "6000ms",
                                    "assignment_strategy": "cooperative-sticky"})
            config["delivery"].update({"timeout": "2s", "on_failure": "block",
                                       "retry": {"initial_backoff": "50ms",
                                                 "max_backoff": "1s", "max_attempts": 0}})
            config["shutdown"] = {"drain_timeout": "10s"}
        path = os.path.join(self.workdir, f"{name}.yaml")
        with open(path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        proc = Proc(name, [binary or self.args.sidecar, "--config", path], self.workdir, env)
        proc.admin = f"http://127.0.0.1:{admin_port}"
        return proc

    def sarama(self, name, group, topic, url):
        return Proc(name, [self.args.sarama, "-brokers", self.bootstrap, "-group", group,
                           "-topic", topic, "-url", url], self.workdir)

    def batch_settings(self, encoding="json"):
        """The sidecar's `delivery.batch` of the batch scenarios."""
        a = self.args
        return {"max_records": a.batch_max_records, "max_bytes": a.batch_max_bytes,
                "max_wait": f"{a.batch_max_wait_ms}ms", "encoding": encoding}

    def benthos(self, name, group, topic, url, cap, batch=False):
        # At-least-once as Benthos documents it: the kafka_franz input commits an offset
        # only once every message up to it was acknowledged by the output; up to
        # checkpoint_limit messages per partition are in flight; the http_client output
        # retries failed requests (auto_replay_nacks) and sends one message per request.
        a = self.args
        checkpoint_limit = cap
        batching = ""
        output_body = "headers:\n      Content-Type: application/octet-stream"
        if batch:
            # The same batching policy as ours, on the input: kafka_franz batches each
            # partition on its own (like ours, one partition per batch, in offset order).
            # checkpoint_limit counts records, so it allows `cap` full batches per
            # partition; max_in_flight counts batches. batch_as_multipart sends a batch as
            # one multipart/form-data request, one part per record (without it, http_client
            # sends one request per message of the batch).
            checkpoint_limit = cap * a.batch_max_records
            batching = (f"\n    batching:\n      count: {a.batch_max_records}\n"
                        f"      byte_size: {a.batch_max_bytes}\n"
                        f"      period: {a.batch_max_wait_ms}ms")
            output_body = "batch_as_multipart: true"
        config = f"""
http: {{enabled: false}}
logger: {{level: WARN}}
metrics: {{none: {{}}}}
input:
  kafka_franz:
    seed_brokers: ["{self.bootstrap}"]
    topics: ["{topic}"]
    consumer_group: "{group}"
    start_from_oldest: true
    checkpoint_limit: {checkpoint_limit}
    commit_period: 1s{batching}
output:
  http_client:
    url: "{url}"
    verb: POST
    timeout: 10s
    max_in_flight: {cap * a.partitions}
    {output_body}
"""
        path = os.path.join(self.workdir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(config)
        return Proc(name, [self.args.benthos, "-c", path], self.workdir)

    def kinds(self, url, cap, socket=None):
        """Every consumer under test: name -> (description, make(name, group, topic) -> Proc).
        With `socket`, also ours over the receiver's Unix socket (`delivery.unix_socket`)."""
        p = self.args.partitions
        kinds = {
            "ours-partition": (f"ours, partition mode ({p} in flight)",
                               lambda n, g, t: self.ours(n, g, t, url, "partition", 1)),
            "ours-key": (f"ours, key mode ({cap}/partition, {cap * p} in flight)",
                         lambda n, g, t: self.ours(n, g, t, url, "key", cap)),
            "ours-none": (f"ours, none mode ({cap}/partition, {cap * p} in flight)",
                          lambda n, g, t: self.ours(n, g, t, url, "none", cap)),
        }
        # What the request format costs, next to raw key mode in the same run: CloudEvents
        # structured mode (the 1 KiB non-JSON values become data_base64) and Standard
        # Webhooks signing (one secret, raw format).
        kinds["ours-key-structured"] = (
            f"ours, key mode, format cloudevents-structured ({cap}/partition)",
            lambda n, g, t: self.ours(n, g, t, url, "key", cap,
                                      delivery={"format": "cloudevents-structured"}))
        kinds["ours-key-signed"] = (
            f"ours, key mode, signed (Standard Webhooks, 1 secret) ({cap}/partition)",
            lambda n, g, t: self.ours(n, g, t, url, "key", cap,
                                      delivery={"signing": {"secrets": [BENCH_SECRET]}}))
        if self.args.baseline_sidecar:
            # An earlier build of ours, side by side (a refactor must not regress).
            base = self.args.baseline_sidecar
            # A diagnostic: librdkafka properties for the baseline rows only (the baseline
            # binary may be ours, to compare two settings side by side).
            props = dict(kv.split("=", 1) for kv in self.args.base_kafka_property) or None
            env = dict(kv.split("=", 1) for kv in self.args.base_env) or None
            kinds["base-partition"] = (
                f"baseline build, partition mode ({p} in flight)",
                lambda n, g, t: self.ours(n, g, t, url, "partition", 1, base, properties=props,
                                                env=env))
            kinds["base-key"] = (
                f"baseline build, key mode ({cap}/partition, {cap * p} in flight)",
                lambda n, g, t: self.ours(n, g, t, url, "key", cap, base, properties=props,
                                                env=env))
            kinds["base-none"] = (
                f"baseline build, none mode ({cap}/partition, {cap * p} in flight)",
                lambda n, g, t: self.ours(n, g, t, url, "none", cap, base, properties=props,
                                                env=env))
        if self.args.baseline_sidecar:
            # Interleave ours and the baseline build mode by mode, so drift in the machine's
            # load during the run does not favour whichever ran first.
            kinds = {name: kinds[name] for mode in ("partition", "key", "none")
                     for name in (f"ours-{mode}", f"base-{mode}")}
        if socket:
            over = {"unix_socket": socket}
            kinds["ours-partition-unix"] = (
                f"ours, partition mode ({p} in flight), over a Unix socket",
                lambda n, g, t: self.ours(n, g, t, url, "partition", 1, delivery=over))
            kinds["ours-none-unix"] = (
                f"ours, none mode ({cap}/partition, {cap * p} in flight), over a Unix socket",
                lambda n, g, t: self.ours(n, g, t, url, "none", cap, delivery=over))
        if self.args.sarama:
            kinds["sarama-baseline"] = (
                f"Sarama baseline (blocking POST per partition, {p} in flight)",
                lambda n, g, t: self.sarama(n, g, t, url))
        if self.args.benthos:
            kinds["benthos"] = (
                f"Benthos v4.27 kafka_franz→http_client ({cap}/partition, {cap * p} in flight)",
                lambda n, g, t: self.benthos(n, g, t, url, cap))
            kinds["benthos-ordered"] = (
                f"Benthos v4.27, checkpoint_limit 1 ({p} in flight)",
                lambda n, g, t: self.benthos(n, g, t, url, 1))
        return kinds

    def batch_kinds(self, url, cap):
        """The batch scenarios' consumers: ours with `delivery.batch`, Benthos batching."""
        p, a = self.args.partitions, self.args
        # A diagnostic: librdkafka properties for our batch rows only (e.g. prefetch).
        props = dict(kv.split("=", 1) for kv in a.batch_kafka_property) or None

        def ours(*args, **kw):
            return self.ours(*args, **kw, properties=props)
        size = f"up to {a.batch_max_records} records / {a.batch_max_bytes // 1024} KiB, " \
               f"max_wait {a.batch_max_wait_ms} ms"
        kinds = {
            "ours-batch-partition": (
                f"ours, partition mode, batches of {size} (1 batch/partition in flight)",
                lambda n, g, t: ours(n, g, t, url, "partition", 1,
                                          delivery={"batch": self.batch_settings()})),
            "ours-batch-key": (
                f"ours, key mode, batches of {size} ({cap}/partition)",
                lambda n, g, t: ours(n, g, t, url, "key", cap,
                                          delivery={"batch": self.batch_settings()})),
            "ours-batch-none": (
                f"ours, none mode, batches of {size} ({cap}/partition)",
                lambda n, g, t: ours(n, g, t, url, "none", cap,
                                          delivery={"batch": self.batch_settings()})),
            "ours-batch-partition-ndjson": (
                f"ours, partition mode, NDJSON batches of {size} (1 batch/partition in flight)",
                lambda n, g, t: ours(n, g, t, url, "partition", 1,
                                     delivery={"batch": self.batch_settings("ndjson")})),
        }
        if a.batch_rows:
            kinds = {k: v for k, v in kinds.items() if k in a.batch_rows.split(",")}
        if self.args.benthos and (not a.batch_rows or "benthos-batch" in a.batch_rows):
            kinds["benthos-batch"] = (
                f"Benthos v4.27, kafka_franz batching {size}, http_client multipart "
                f"({cap} batches/partition, {cap * p} in flight)",
                lambda n, g, t: self.benthos(n, g, t, url, cap, batch=True))
        return kinds

    def tolerant(self, name, description, run):
        """Runs one batch row; a consumer that exits (the sidecar refusing `delivery.batch`
        before batching lands) or fails is recorded as the row's error, not the run's."""
        try:
            return run()
        except (RuntimeError, subprocess.SubprocessError) as error:
            # The last line: the consumer's own error when it exited (the log's tail).
            reason = str(error).strip().splitlines()[-1].strip()[:200]
            log(f"{name}: not measured: {reason}")
            return {"description": description, "error": reason}

    # -- scenarios -----------------------------------------------------------------

    def drain_backlog(self, name, make, topic, count, receiver):
        """Runs one consumer over the whole backlog of `topic` and measures it."""
        self.reset(receiver)
        group = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        broker_before = self.broker_cpu()
        receiver_before = cpu_seconds(receiver.pid)
        busy_before = machine_busy()
        proc = make(name, group, topic)
        started = time.time()
        busy_from_first = None
        watcher = subprocess.Popen(
            [self.tool, "wait-committed", "--bootstrap", self.bootstrap, "--group", group,
             "--topic", topic, "--target", str(count), "--timeout-s",
             str(self.args.run_timeout)], stdout=subprocess.PIPE, text=True)
        while watcher.poll() is None:
            if not proc.alive():
                watcher.kill()
                raise RuntimeError(f"{name} exited early:\n{proc.tail()}")
            if busy_from_first is None and self.stats(receiver)["requests"] > 0:
                busy_from_first = machine_busy()  # the machine's share once records flow
            time.sleep(0.1)
        done = json.loads(watcher.stdout.read().strip().splitlines()[-1])
        cpu = cpu_seconds(proc.pid)
        hwm = status_kib(proc.pid, "VmHWM")
        broker = self.broker_cpu()
        receiver_cpu = cpu_seconds(receiver.pid) - receiver_before
        busy_after = machine_busy()
        code = proc.stop()
        stats = self.stats(receiver)
        if not done["reached"]:
            raise RuntimeError(f"{name}: committed {done['committed']} of {count} within "
                               f"{self.args.run_timeout}s:\n{proc.tail()}")
        first = stats["first_us"] / 1e6
        span = max(stats["last_us"] / 1e6 - first, 1e-6)
        result = {
            "records": count,
            "distinct_delivered": stats["distinct"],
            "duplicates": stats["duplicates"],
            "requests": stats["requests"],
            "records_received": stats["records"],
            "records_per_request": round(stats["records"] / max(stats["requests"], 1), 1),
            "malformed_requests": stats["malformed"],
            "peak_in_flight": stats["peak_in_flight"],
            "delivered_per_s": round(stats["distinct"] / span),
            "committed_per_s": round(count / max(done["at_us"] / 1e6 - first, 1e-6)),
            "startup_s": round(first - started, 2),
            "cpu_s_per_100k": round(cpu / count * 1e5, 2),
            "broker_cpu_s_per_100k": (round((broker - broker_before) / count * 1e5, 2)
                                      if broker is not None else None),
            "receiver_cpu_s_per_100k": round(receiver_cpu / count * 1e5, 2),
            "machine_cpu_busy_pct": round(
                100 * (busy_after[0] - (busy_from_first or busy_before)[0])
                / max(busy_after[1] - (busy_from_first or busy_before)[1], 1), 1),
            "peak_rss_mib": mib(hwm),
            "exit_code": code,
        }
        if stats["distinct"] != count:
            result["error"] = f"receiver saw {stats['distinct']} distinct of {count} records"
        if stats["malformed"]:
            result["error"] = (f"{stats['malformed']} malformed requests, the last: "
                               f"{stats['last_malformed']}")
        log(f"{name}: {result}")
        return result

    def ceilings(self, topic, count, receiver, concurrencies):
        out = {}
        lua = os.path.join(self.workdir, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\n'
                    f'wrk.body = string.rep("x", {self.args.record_size})\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        for c in concurrencies:
            self.reset(receiver)
            receiver_before, busy_before = cpu_seconds(receiver.pid), machine_busy()
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out_text = subprocess.run(
                ["wrk", "-t", "2", "-c", str(c), "-d", f"{self.args.wrk_seconds}s", "-s", lua,
                 receiver.url], check=True, capture_output=True, text=True).stdout
            rate = float(next(l for l in out_text.splitlines()
                              if l.startswith("Requests/sec:")).split()[1])
            out[f"http_wrk_c{c}_per_s"] = round(rate)
            served = self.stats(receiver)["requests"]
            busy = machine_busy()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            # wrk's own CPU per request: the cheapest an HTTP/1.1 client can be here.
            wrk_cpu = (children.ru_utime - children_before.ru_utime
                       + children.ru_stime - children_before.ru_stime)
            out[f"http_wrk_c{c}_wrk_cpu_s_per_100k"] = round(wrk_cpu / max(served, 1) * 1e5, 2)
            out[f"http_wrk_c{c}_receiver_cpu_s_per_100k"] = round(
                (cpu_seconds(receiver.pid) - receiver_before) / max(served, 1) * 1e5, 2)
            out[f"http_wrk_c{c}_machine_cpu_busy_pct"] = round(
                100 * (busy[0] - busy_before[0]) / max(busy[1] - busy_before[1], 1), 1)
            log(f"wrk -c {c}: {rate:.0f} requests/s")
        out.update(self.kcat(topic, count))
        return out

    def kcat(self, topic, count):
        """The consume ceiling: kcat reading the whole topic to /dev/null; records/s, and
        the CPU kcat and the broker spent per 100k records."""
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        broker_before = self.broker_cpu()
        started = time.monotonic()
        subprocess.run(["kcat", "-C", "-b", self.bootstrap, "-t", topic, "-o", "beginning",
                        "-e", "-q"], check=True, stdout=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        broker = self.broker_cpu()
        cpu = (children.ru_utime - children_before.ru_utime
               + children.ru_stime - children_before.ru_stime)
        log(f"kcat: {count} records in {elapsed:.2f}s")
        return {"kcat_consume_per_s": round(count / elapsed),
                "kcat_cpu_s_per_100k": round(cpu / count * 1e5, 2),
                "kcat_broker_cpu_s_per_100k": (round((broker - broker_before) / count * 1e5, 2)
                                               if broker is not None else None)}

    def slow(self, topic, kinds, cap):
        """Windowed rate against the slow endpoint, after a warm-up."""
        receiver = self.receivers[self.args.slow_ms]
        out = {}
        for name, (_, make) in kinds.items():
            self.reset(receiver)
            proc = make(f"slow-{name}", f"bench-slow-{name}-{uuid.uuid4().hex[:8]}", topic)
            wait_for(f"{name}'s first deliveries", lambda: self.stats(receiver)["requests"] >= 50,
                     60, proc=proc)
            time.sleep(1.0)  # warm-up: connections opened, every partition flowing
            a, ta = self.stats(receiver)["requests"], time.monotonic()
            time.sleep(self.args.slow_seconds)  # the measurement window
            b, tb = self.stats(receiver)["requests"], time.monotonic()
            peak = self.stats(receiver)["peak_in_flight"]
            proc.stop()
            rate = (b - a) / (tb - ta)
            out[name] = {"per_s": round(rate, 1), "peak_in_flight": peak}
            log(f"slow {name}: {rate:.1f}/s, peak in flight {peak}")
        c = cap * self.args.partitions
        ideal = c / (self.args.slow_ms / 1000)
        out["cap_total"] = c
        out["ideal_per_s"] = ideal
        out["ours_key_ratio_to_ideal"] = round(out["ours-key"]["per_s"] / ideal, 3)
        return out

    def plain_consumer(self, name, topic, first_seq, count):
        """A plain librdkafka consumer (`kws-bench plain-consumer`, fetch.wait.max.ms 100) on
        `topic` as its own group: the floor beside the sidecar's row, same broker, producer,
        topic and rate. Its latency figures are read from its output when it has them all."""
        return Proc(name, [self.tool, "plain-consumer", "--bootstrap", self.bootstrap,
                           "--topic", topic, "--group", f"bench-plain-{uuid.uuid4().hex[:8]}",
                           "--first-seq", str(first_seq), "--count", str(count)], self.workdir)

    def plain_forwarder(self, name, topic, first_seq, count, receiver):
        """The plain consumer forwarding each record to `receiver` (`plain-consumer
        --forward`): librdkafka and hyper-util alone on the sidecar's path, one request at a
        time per partition. The receiver measures it as it measures the sidecar."""
        return Proc(name, [self.tool, "plain-consumer", "--bootstrap", self.bootstrap,
                           "--topic", topic, "--group", f"bench-fwd-{uuid.uuid4().hex[:8]}",
                           "--first-seq", str(first_seq), "--count", str(count),
                           "--forward", receiver.url], self.workdir)

    def plain_result(self, plain):
        wait_for(f"{plain.name} to see every record", lambda: not plain.alive(), 120)
        plain.stop()
        if plain.proc.returncode != 0:
            raise RuntimeError(f"{plain.name} failed:\n{plain.tail()}")
        return json.loads(plain.tail(1).strip())

    def latency(self, kinds, rate=None, keys=None):
        """Open-loop load at `rate` records/s (default --latency-rate) over `keys` (default
        --keys): added latency from the broker's append to the receiver's arrival, and CPU per
        record; beside it a plain librdkafka consumer reading the same topic at the same time."""
        rate = rate or self.args.latency_rate
        receiver = self.receivers[0]
        out = {}
        for name, (_, make) in kinds.items():
            topic = f"bench-latency-{name}-{uuid.uuid4().hex[:6]}"
            self.create_topic(topic)
            proc = make(f"latency-{rate}-{keys}-{name}", f"bench-lat-{name}-{uuid.uuid4().hex[:8]}",
                        topic)
            # Warm-up until every partition delivered: joins done, connections open.
            warm = rate * 3
            n = int(rate * self.args.latency_seconds)
            plain = (self.plain_consumer(f"plain-{rate}-{name}", topic, warm, n)
                     if not self.args.no_plain else None)
            forwarder = None
            if self.args.forwarder:
                beside = self.receiver(0, tag="forwarder")
                forwarder = self.plain_forwarder(f"forwarder-{rate}-{keys}-{name}", topic,
                                                 warm, n, beside)
            self.reset(receiver)
            self.produce_rate(topic, 3, first_seq=0, rate=rate, keys=keys)
            wait_for(f"{name}'s warm-up records", lambda: self.distinct(receiver) >= warm,
                     120, proc=proc)
            self.reset(receiver)
            if forwarder is not None:
                self.reset(beside)
            measured_from = time.time()
            cpu_before = cpu_seconds(proc.pid)
            switches_before = context_switches(proc.pid)
            broker_before = self.broker_cpu()
            self.produce_rate(topic, self.args.latency_seconds, first_seq=warm, rate=rate,
                              keys=keys)
            wait_for(f"{name}'s measured records",
                     lambda: self.distinct(receiver) >= n, 120, proc=proc)
            stats = self.stats(receiver)
            if self.args.keep_arrivals:
                # Every record's arrival (µs since the epoch), latency (µs), partition and
                # offset: when the slow ones came and from which partitions.
                with open(os.path.join(self.workdir, f"arrivals-{rate}-{keys}-{name}.json"),
                          "w") as f:
                    f.write(http_get(receiver.url + "records"))
            cpu = cpu_seconds(proc.pid) - cpu_before
            switches = context_switches(proc.pid) - switches_before
            broker = self.broker_cpu()
            proc.stop()
            out[name] = {**stats["latency_ms"], "rate": rate,
                         "context_switches_per_record": round(switches / n, 2),
                         "cpu_s_per_100k": round(cpu / n * 1e5, 2),
                         "cores": round(cpu / self.args.latency_seconds, 3),
                         "broker_cpu_s_per_100k": (round((broker - broker_before) / n * 1e5, 2)
                                                   if broker is not None else None)}
            if self.args.timing:
                out[name]["timing"] = timing_split(proc.log_path, measured_from)
            if forwarder is not None:
                wait_for(f"{forwarder.name}'s measured records",
                         lambda: self.distinct(beside) >= n, 120, proc=forwarder)
                forwarded = self.stats(beside)["latency_ms"]
                # CPU of librdkafka + hyper alone over the same measured records, beside ours.
                fwd_cpu = self.plain_result(forwarder)["measured_cpu_s"]
                beside_row(out[name], "forwarder", forwarded)
                out[name]["forwarder_cpu_s_per_100k"] = round(fwd_cpu / n * 1e5, 2)
            if plain is not None:
                floor = self.plain_result(plain)
                beside_row(out[name], "plain", floor)
                out[name]["p99_ratio_to_plain"] = round(out[name]["p99"] / max(floor["p99"], 0.1), 2)
            log(f"latency {name}: {out[name]}")
        return out

    def http_floors(self, receiver):
        """What the HTTP side costs without Kafka, against the same receiver: hyper-util's
        pooled client alone (`--bare`) and the sidecar's own request building + `HttpClient`,
        at full speed with as many requests in flight as the key/none drains (wrk's -c), and
        paced over one loop per partition at --latency-rate and --low-rate."""
        a = self.args
        loads = {"full": ["--concurrency", a.partitions * a.cap, "--seconds", a.wrk_seconds],
                 "rate": ["--concurrency", a.partitions, "--rate", a.latency_rate,
                          "--seconds", a.latency_seconds]}
        if a.low_rate:
            loads["low"] = ["--concurrency", a.partitions, "--rate", a.low_rate,
                            "--seconds", a.latency_seconds]
        out = {}
        for load, argv in loads.items():
            for client in ("bare", "sidecar"):
                self.reset(receiver)
                extra = ["--bare"] if client == "bare" else []
                result = self.run_tool("client-load", "--url", receiver.url, "--size",
                                       a.record_size, *argv, *extra)
                out[f"{client}_{load}"] = result
                log(f"client-load {client} {load}: {result}")
        return out

    def kcat_at_rate(self, rate=None):
        """The floor under any librdkafka consumer at an open-loop rate: kcat reading a new
        topic (no HTTP, no commits; it writes each record's offset, unbuffered, to a file)
        while records arrive at `rate`; its CPU per record over the measured phase, after the
        same 3 s warm-up as ours."""
        rate = rate or self.args.latency_rate
        topic = f"bench-kcat-rate-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        warm, n = rate * 3, int(rate * self.args.latency_seconds)
        path = os.path.join(self.workdir, f"kcat-rate-{rate}.out")

        def consumed():
            with open(path, "rb") as f:
                return f.read().count(b"\n")

        with open(path, "wb") as out_file:
            kcat = subprocess.Popen(["kcat", "-C", "-b", self.bootstrap, "-t", topic, "-o",
                                     "beginning", "-f", "%o\n", "-q", "-u"],
                                    stdout=out_file)
        try:
            self.produce_rate(topic, 3, first_seq=0, rate=rate)
            wait_for("kcat's warm-up records", lambda: consumed() >= warm, 120)
            cpu_before = cpu_seconds(kcat.pid)
            switches_before = context_switches(kcat.pid)
            self.produce_rate(topic, self.args.latency_seconds, first_seq=warm, rate=rate)
            wait_for("kcat's measured records", lambda: consumed() >= warm + n, 120)
            cpu = cpu_seconds(kcat.pid) - cpu_before
            switches = context_switches(kcat.pid) - switches_before
        finally:
            kcat.terminate()
            kcat.wait(timeout=30)
        out = {"rate": rate, "cpu_s_per_100k": round(cpu / n * 1e5, 2),
               "context_switches_per_record": round(switches / n, 2)}
        log(f"kcat at {rate}/s: {out}")
        return out

    def idle_rss(self, kinds):
        receiver = self.receivers[0]
        topic = f"bench-idle-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        out = {}
        for name, (_, make) in kinds.items():
            proc = make(f"idle-{name}", f"bench-idle-{name}-{uuid.uuid4().hex[:8]}", topic)
            # Assigned and caught up: a record produced now reaches the receiver.
            self.reset(receiver)
            self.produce(topic, self.args.partitions * 10)
            wait_for(f"{name} to own every partition",
                     lambda: self.distinct(receiver) >= self.args.partitions * 10,
                     120, proc=proc)
            # Settle (the warm-up records' commits, librdkafka's first statistics), then
            # the idle window: RSS sampled each second, CPU over the whole window.
            time.sleep(2.0)
            samples = []
            cpu_before, started = cpu_seconds(proc.pid), time.monotonic()
            while time.monotonic() - started < self.args.idle_seconds:
                samples.append(status_kib(proc.pid, "VmRSS"))
                time.sleep(1.0)
            cpu = cpu_seconds(proc.pid) - cpu_before
            elapsed = time.monotonic() - started
            proc.stop()
            out[name] = {"rss_mib": mib(samples[-1]), "max_rss_mib": mib(max(samples)),
                         "cpu_pct_of_core": round(100 * cpu / elapsed, 3),
                         "seconds": round(elapsed, 1)}
            log(f"idle {name}: {out[name]}")
        return out

    def flow(self):
        """Issue 15: an endpoint whose latency rises with concurrency (--flow-workers workers
        of --flow-ms each, the rest queued). Fixed shared caps are swept, then the adaptive
        limit runs without being told the cap; throughput and the p99 of the endpoint's
        answer time (queue + service) side by side."""
        a = self.args
        receiver = self.receiver(a.flow_ms, a.flow_workers)
        topic = f"bench-flow-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        self.produce(topic, a.flow_records)
        runs = [(f"fixed-{c}", {"mode": "fixed", "max": c}) for c in a.flow_caps]
        adaptive = {"mode": "adaptive", "max": 256}
        if a.flow_tolerance:
            adaptive["latency_tolerance"] = a.flow_tolerance
        runs.append(("adaptive", adaptive))
        out = {}
        for name, concurrency in runs:
            make = lambda n, g, t, c=concurrency: self.ours(
                n, g, t, receiver.url, "none", 64, delivery={"concurrency": c})
            result = self.drain_backlog(f"flow-{name}", make, topic, a.flow_records, receiver)
            stats = self.stats(receiver)
            result["answer_p99_ms"] = stats["service_ms"]["p99"]
            result["answer_p50_ms"] = stats["service_ms"]["p50"]
            result["peak_in_flight"] = stats["peak_in_flight"]
            out[name] = result
        best = max((v for k, v in out.items() if k != "adaptive"),
                   key=lambda v: v["delivered_per_s"])
        adaptive = out["adaptive"]
        out["verdict"] = {
            "throughput_ratio": round(adaptive["delivered_per_s"] / max(best["delivered_per_s"], 1), 3),
            "p99_no_worse": adaptive["answer_p99_ms"] <= best["answer_p99_ms"],
        }
        lines = ["| run | delivered/s | endpoint answer p50 ms | p99 ms | peak in flight |",
                 "|---|---:|---:|---:|---:|"]
        for name, v in out.items():
            if name == "verdict":
                continue
            lines.append(f"| {name} | {v['delivered_per_s']} | {v['answer_p50_ms']} | "
                         f"{v['answer_p99_ms']} | {v['peak_in_flight']} |")
        lines.append(f"\nadaptive / best fixed throughput: {out['verdict']['throughput_ratio']}; "
                     f"p99 no worse: {out['verdict']['p99_no_worse']}")
        out["table"] = "\n".join(lines)
        print(out["table"])
        return out

    # -- everything ----------------------------------------------------------------

    def batch_fast(self, url):
        """The batch drains, over a backlog of their own (--batch-records: long enough that
        the 1 s commit interval and the start weigh little at these rates), with kcat over
        the same backlog."""
        a = self.args
        topic = f"bench-batch-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        out = {"settings": self.batch_settings(), "records": a.batch_records,
               "backlog_produce": self.produce(topic, a.batch_records),
               **self.kcat(topic, a.batch_records), "fast": {}}
        for name, (description, make) in self.batch_kinds(url, a.batch_cap or a.cap).items():
            log(f"fast endpoint, batched: {description}")
            result = self.tolerant(name, description, lambda: self.drain_backlog(
                name, make, topic, a.batch_records, self.receivers[0]))
            result["description"] = description
            out["fast"][name] = result
        return out

    def batch_latency(self, url):
        kinds = self.batch_kinds(url, self.args.batch_cap or self.args.cap)
        out = {}
        for name in [k for k in ("ours-batch-partition", "ours-batch-key") if k in kinds]:
            out[name] = self.tolerant(name, kinds[name][0],
                                      lambda: self.latency({name: kinds[name]})[name])
        return out

    def cost(self):
        """Issue 16, cost per record, alone: the wrk ceilings with wrk's own CPU, the
        single-record drains (ours, the baseline build if given, Sarama), the open-loop
        rates, and 60 s idle — every figure the issue's targets name, from one run."""
        a, p, cap = self.args, self.args.partitions, self.args.cap
        fast = self.receiver(0)
        topic = f"bench-backlog-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        self.results["backlog_produce"] = self.produce(topic, a.records)
        log("ceilings")
        self.results["ceilings"] = self.ceilings(topic, a.records, fast, sorted({p, p * cap}))
        log("the HTTP stack alone (client-load)")
        self.results["http_floors"] = self.http_floors(fast)
        kinds = self.kinds(fast.url, cap, fast.socket)
        kinds = {k: v for k, v in kinds.items()
                 if k.startswith(("ours-partition", "ours-key", "ours-none", "base-", "sarama"))
                 and k not in ("ours-key-structured", "ours-key-signed")
                 and (not a.cost_kinds or k in a.cost_kinds)}
        self.results["fast"] = (self.fast_drains(kinds, topic, fast)
                                if "fast" in a.cost_parts else {})
        self.open_loop_and_idle(kinds, a.cost_parts)
        return self.results

    def fast_drains(self, kinds, topic, receiver):
        """Each consumer of `kinds` drains the --records backlog of `topic` in turn."""
        out = {}
        for name, (description, make) in kinds.items():
            log(f"fast endpoint: {description}")
            result = self.drain_backlog(name, make, topic, self.args.records, receiver)
            result["description"] = description
            out[name] = result
        return out

    def open_loop_and_idle(self, kinds, parts=("latency", "low", "idle")):
        """Latency and CPU at --latency-rate and --low-rate, then idle CPU and RSS."""
        a = self.args
        ours = ("ours-partition", "ours-key", "base-partition", "base-key")
        if "latency" in parts:
            log(f"latency at {a.latency_rate}/s")
            self.results["latency"] = self.latency(
                {k: kinds[k] for k in (*ours, "sarama-baseline") if k in kinds})
            self.results["kcat_at_rate"] = self.kcat_at_rate()
        if a.low_rate and "low" in parts:
            log(f"latency at {a.low_rate}/s")
            self.results["latency_low"] = self.latency(
                {k: kinds[k] for k in ours if k in kinds}, rate=a.low_rate)
        if "idle" in parts:
            log(f"idle ({a.idle_seconds:.0f} s)")
            self.results["idle"] = self.idle_rss(
                {k: kinds[k] for k in (*ours, "sarama-baseline", "benthos") if k in kinds})

    def latency_matrix(self):
        """Issue 32: ours in every ordering mode beside a plain librdkafka consumer, at
        --low-rate and --latency-rate, with 10 and --keys keys (or the --matrix-* ones)."""
        fast = self.receiver(0)
        kinds = self.kinds(fast.url, self.args.cap)
        modes = self.args.matrix_modes or ["partition", "key", "none"]
        # With --baseline-sidecar, the baseline build runs each row too (before/after).
        kinds = {f"{who}-{m}": kinds[f"{who}-{m}"] for m in modes for who in ("ours", "base")
                 if f"{who}-{m}" in kinds}
        out = {}
        rates = self.args.matrix_rates or [self.args.low_rate, self.args.latency_rate]
        for rate in rates:
            for keys in self.args.matrix_keys or [10, self.args.keys]:
                log(f"latency matrix: {rate}/s, {keys} keys")
                out[f"{rate}/s, {keys} keys"] = self.latency(kinds, rate=rate, keys=keys)
        return out

    def run(self):
        a, p, cap = self.args, self.args.partitions, self.args.cap
        if a.latency_matrix:
            self.results["latency_matrix"] = self.latency_matrix()
            return self.results
        if a.flow_only:
            self.results["flow"] = self.flow()
            return self.results
        if a.cost_only:
            return self.cost()
        fast = self.receiver(0)
        if a.batch_only:
            self.results["batch"] = self.batch_fast(fast.url)
            log(f"batched, latency at {a.latency_rate}/s")
            self.results["batch"]["latency"] = self.batch_latency(fast.url)
            return self.results
        self.receiver(a.slow_ms)
        topic = f"bench-backlog-{uuid.uuid4().hex[:6]}"
        self.create_topic(topic)
        self.results["backlog_produce"] = self.produce(topic, a.records)

        log("request format cost (in process)")
        self.results["format_cost_us"] = self.run_tool("format-cost", "--size", a.record_size)

        log("ceilings")
        self.results["ceilings"] = self.ceilings(topic, a.records, fast, sorted({p, p * cap}))

        kinds = self.kinds(fast.url, cap, fast.socket)
        self.results["fast"] = self.fast_drains(kinds, topic, fast)
        if not a.no_batch:
            self.results["batch"] = self.batch_fast(fast.url)
        if a.fast_only:
            return self.results

        log(f"slow endpoint ({a.slow_ms} ms)")
        slow_kinds = self.kinds(self.receivers[a.slow_ms].url, a.slow_cap)
        self.results["slow"] = self.slow(
            topic, {k: slow_kinds[k] for k in ("ours-key", "ours-partition", "sarama-baseline",
                                               "benthos") if k in slow_kinds}, a.slow_cap)

        self.open_loop_and_idle(kinds)
        if not a.no_batch:
            log(f"batched, latency at {a.latency_rate}/s")
            self.results["batch"]["latency"] = self.batch_latency(fast.url)

        if a.big_records:
            log(f"{a.big_records}-record backlog")
            big = f"bench-big-{uuid.uuid4().hex[:6]}"
            self.create_topic(big)
            self.results["big_backlog_produce"] = self.produce(big, a.big_records)
            self.results["big_backlog"] = {
                name: self.drain_backlog(f"big-{name}", kinds[name][1], big, a.big_records, fast)
                for name in ("ours-partition", "ours-key")}
        if a.flow:
            log("flow control")
            self.results["flow"] = self.flow()
        return self.results

    def stop(self):
        for proc in self.receivers.values():
            proc.stop()


# ------------------------------------------------------------------------- the report --

def format_costs(fast):
    """CPU per 100k records of each request format, and its cost over raw key mode."""
    raw = fast.get("ours-key")
    rows = []
    for name, label in (("ours-key-structured", "CloudEvents structured"),
                        ("ours-key-signed", "Standard Webhooks signing")):
        if raw and name in fast:
            cost = fast[name]["cpu_s_per_100k"] - raw["cpu_s_per_100k"]
            rows.append((label, fast[name]["cpu_s_per_100k"], raw["cpu_s_per_100k"],
                         round(cost / 1e5 * 1e6, 2), fast[name]["committed_per_s"]))
    return rows


def cpu_bound(v, cpus):
    """The rate at which a drain's processes would use every core of the machine (ours, the
    broker and the receiver share it), and the broker's + receiver's CPU s/100k; None when a
    figure is missing."""
    parts = (v.get("cpu_s_per_100k"), v.get("broker_cpu_s_per_100k"),
             v.get("receiver_cpu_s_per_100k"))
    if any(p is None for p in parts) or sum(parts) <= 0:
        return None
    return cpus * 1e5 / sum(parts), parts[1] + parts[2]


def batch_targets(r, args):
    """Each target of issue 13 (batching) with the figure measured in this run."""
    batch = r.get("batch")
    if not batch:
        return []
    kcat = batch["kcat_consume_per_s"]
    rows = []
    fast = batch["fast"]
    peer = fast.get("benthos-batch", {})
    for mode in ("partition", "key", "none"):
        name = f"ours-batch-{mode}"
        v = fast.get(name)
        if v is None:
            continue
        if "committed_per_s" not in v:
            rows.append((f"{name}: ≥ 0.8× kcat, ≥ 2× Benthos batching, peak RSS ≤ 128 MiB",
                         f"not measured: {v['error']}", False))
            continue
        rate, delivered = v["committed_per_s"], v["delivered_per_s"]
        rows.append((f"{name}: ≥ 0.8× the kcat consume ceiling ({kcat}/s)",
                     f"committed {rate}/s = {rate / kcat:.2f}× (delivered {delivered}/s = "
                     f"{delivered / kcat:.2f}×)", rate >= 0.8 * kcat and "error" not in v))
        if "committed_per_s" in peer:
            ratio = rate / peer["committed_per_s"]
            rows.append((f"{name}: ≥ 2× Benthos with the same batching",
                         f"{ratio:.2f}× (delivered/s "
                         f"{delivered / peer['delivered_per_s']:.2f}×)", ratio >= 2))
        rows.append((f"{name}: peak RSS ≤ 128 MiB", f"{v['peak_rss_mib']} MiB",
                     v["peak_rss_mib"] <= 128))
        bound = cpu_bound(v, r["machine"]["cpus"])
        if bound:
            ceiling, others = bound
            # What our own CPU per record would have to be for the rate targets, the broker's
            # and the receiver's cost per record staying as measured in this row.
            need = {"0.8× kcat": 0.8 * kcat}
            if "delivered_per_s" in peer:
                need["2× Benthos"] = 2 * peer["delivered_per_s"]
            needs = ", ".join(
                f"{label} needs ours ≤ {r['machine']['cpus'] * 1e5 / want - others:.2f}"
                for label, want in need.items())
            rows.append((f"{name}: the machine's CPU-bound rate (reported: {r['machine']['cpus']}"
                         " cores ÷ the CPU per record of ours + broker + receiver)",
                         f"{ceiling:.0f}/s, delivered {delivered / ceiling:.0%} of it; ours "
                         f"{v['cpu_s_per_100k']} s/100k, broker + receiver {others:.2f}; "
                         f"{needs} (kcat alone {batch.get('kcat_cpu_s_per_100k')})", True))
    for name, v in batch.get("latency", {}).items():
        if "p99" in v:
            rows.append((f"{name}: added latency p99 ≤ 15 ms at {args.latency_rate}/s "
                         f"(max_wait {args.batch_max_wait_ms} ms)", f"{v['p99']:.1f} ms",
                         v["p99"] <= 15))
        else:
            rows.append((f"{name}: added latency p99 ≤ 15 ms", f"not measured: {v['error']}",
                         False))
    return rows


def targets(r, args):
    """Each target of issue 6 with the figure measured in this run."""
    if "fast" not in r:  # --batch-only
        return batch_targets(r, args)
    fast, ceil = r["fast"], r["ceilings"]
    concurrency = args.partitions * args.cap
    http_ceiling = ceil[f"http_wrk_c{concurrency}_per_s"]
    rows = []
    for mode in [m for m in ("ours-none", "ours-key") if m in fast]:
        rate = fast[mode]["committed_per_s"]
        rows.append((f"{mode}: ≥ 0.8× HTTP ceiling (wrk -c {concurrency})",
                     f"{rate}/s = {rate / http_ceiling:.2f}×", rate >= 0.8 * http_ceiling))
        if "benthos" in fast:
            peer = fast["benthos"]["committed_per_s"]
            rows.append((f"{mode}: ≥ 2× Benthos (same in-flight cap)",
                         f"{rate / peer:.2f}×", rate >= 2 * peer))
        rows.append((f"{mode}: ≥ 20k records/s", f"{rate}/s", rate >= 20_000))
    for mode in ("partition", "key", "none"):
        ours, base = fast.get(f"ours-{mode}"), fast.get(f"base-{mode}")
        if ours and base:
            # committed/s moves in steps of one commit interval on a short run; delivered/s
            # does not, so both are shown.
            ratio = ours["committed_per_s"] / base["committed_per_s"]
            delivered = ours["delivered_per_s"] / base["delivered_per_s"]
            rows.append((f"ours-{mode} vs the baseline build: committed/s ≥ 0.95× (no regression)",
                         f"{ratio:.2f}× (delivered/s {delivered:.2f}×); CPU s/100k "
                         f"{ours['cpu_s_per_100k']} vs "
                         f"{base['cpu_s_per_100k']}; peak RSS {ours['peak_rss_mib']} vs "
                         f"{base['peak_rss_mib']} MiB", ratio >= 0.95))
    rows += cost_targets(r, args)
    if "slow" in r:
        slow = r["slow"]
        rows.append((f"slow endpoint, key mode: ≥ 0.9× C/latency (C={slow['cap_total']})",
                     f"{slow['ours-key']['per_s']}/s = {slow['ours_key_ratio_to_ideal']:.2f}×",
                     slow["ours_key_ratio_to_ideal"] >= 0.9))
    if "latency" not in r:
        return rows + batch_targets(r, args)
    for mode in ("ours-partition", "ours-key"):
        if mode in r["latency"]:
            p99 = r["latency"][mode]["p99"]
            rows.append((f"{mode}: added latency p99 ≤ 10 ms at {args.latency_rate}/s",
                         f"{p99:.1f} ms", p99 <= 10))
    idle = [v["max_rss_mib"] for k, v in r.get("idle", {}).items() if k.startswith("ours")]
    if idle:
        rows.append(("RSS idle ≤ 20 MiB", f"{max(idle)} MiB", max(idle) <= 20))
    load = [v["peak_rss_mib"] for k, v in fast.items() if k.startswith("ours")]
    if load:
        rows.append(("RSS at full load ≤ 64 MiB", f"{max(load)} MiB", max(load) <= 64))
    if "big_backlog" in r:
        big = max(v["peak_rss_mib"] for v in r["big_backlog"].values())
        rows.append((f"RSS with a {args.big_records}-record backlog ≤ 128 MiB", f"{big} MiB",
                     big <= 128))
    return rows + batch_targets(r, args)


def cost_targets(r, args):
    """Issue 16's targets (cost per record) with the figures of this run."""
    fast, ceil = r["fast"], r["ceilings"]
    rows = []
    concurrency = args.partitions * args.cap
    wrk = ceil.get(f"http_wrk_c{concurrency}_wrk_cpu_s_per_100k")
    for mode in ("ours-none", "ours-key"):
        v = fast.get(mode)
        if v and wrk:
            ratio = v["cpu_s_per_100k"] / wrk
            rows.append((f"{mode}: CPU per record ≤ 1.5× wrk's CPU per request (wrk -c "
                         f"{concurrency}: {wrk} s/100k)",
                         f"{v['cpu_s_per_100k']} s/100k = {ratio:.2f}× (machine busy "
                         f"{v['machine_cpu_busy_pct']}%)", ratio <= 1.5))
    floors = r.get("http_floors", {})
    for client, label in (("bare", "hyper-util's client alone"),
                          ("sidecar", "the sidecar's request building + HttpClient")):
        v = floors.get(f"{client}_full")
        if v and wrk:
            rows.append((f"{label}, no Kafka, {concurrency} in flight (reported: the HTTP "
                         "floor)", f"{v['cpu_s_per_100k']} s/100k requests = "
                         f"{v['cpu_s_per_100k'] / wrk:.2f}× wrk", True))
    # Over a Unix socket (delivery.unix_socket): not the target's like-for-like (wrk speaks
    # TCP), reported next to the TCP row of the same run.
    for mode in ("ours-none", "ours-partition"):
        unix, tcp = fast.get(f"{mode}-unix"), fast.get(mode)
        if unix and tcp:
            rows.append((f"{mode} over a Unix socket against TCP (reported)",
                         f"CPU {unix['cpu_s_per_100k']} vs {tcp['cpu_s_per_100k']} s/100k, "
                         f"receiver {unix['receiver_cpu_s_per_100k']} vs "
                         f"{tcp['receiver_cpu_s_per_100k']}, committed/s "
                         f"{unix['committed_per_s']} vs {tcp['committed_per_s']}", True))
    sarama = fast.get("sarama-baseline")
    if "ours-partition" in fast and sarama:
        ratio = fast["ours-partition"]["committed_per_s"] / sarama["committed_per_s"]
        delivered = fast["ours-partition"]["delivered_per_s"] / sarama["delivered_per_s"]
        rows.append(("ours-partition: ≥ 1.5× the Sarama baseline",
                     f"committed/s {ratio:.2f}× (delivered/s {delivered:.2f}×)", ratio >= 1.5))
        ours_bound = cpu_bound(fast["ours-partition"], r["machine"]["cpus"])
        sarama_bound = cpu_bound(sarama, r["machine"]["cpus"])
        if ours_bound and sarama_bound:
            rows.append(("ours-partition and Sarama, CPU-bound rates (reported: cores ÷ CPU per "
                         "record of the consumer + broker + receiver)",
                         f"{ours_bound[0]:.0f}/s vs {sarama_bound[0]:.0f}/s = "
                         f"{ours_bound[0] / sarama_bound[0]:.2f}×; delivered "
                         f"{fast['ours-partition']['delivered_per_s'] / ours_bound[0]:.0%} and "
                         f"{sarama['delivered_per_s'] / sarama_bound[0]:.0%} of them", True))
    for key, limit in (("latency", True), ("latency_low", False)):
        for mode in ("ours-partition", "ours-key"):
            v = r.get(key, {}).get(mode)
            if not v:
                continue
            figure = (f"{v['cpu_s_per_100k']} CPU s/100k ({v.get('cores', '?')} core), p99 "
                      f"{v['p99']:.1f} ms")
            if limit:
                rows.append((f"{mode} at {v['rate']}/s: ≤ 5 CPU s/100k, p99 ≤ 10 ms", figure,
                             v["cpu_s_per_100k"] <= 5 and v["p99"] <= 10))
            else:
                rows.append((f"{mode} at {v['rate']}/s (reported)", figure, True))
        floor = r.get("kcat_at_rate") if key == "latency" else None
        if floor:
            rows.append((f"kcat consuming alone at {floor['rate']}/s (reported: the librdkafka "
                         "floor, no HTTP)", f"{floor['cpu_s_per_100k']} CPU s/100k, "
                         f"{floor['context_switches_per_record']} context switches/record", True))
        http = floors.get("bare_rate" if key == "latency" else "bare_low")
        if http:
            total = (f"; with kcat's: {floor['cpu_s_per_100k'] + http['cpu_s_per_100k']:.1f}"
                     if floor else "")
            rows.append((f"hyper-util's client alone at the same rate, {args.partitions} paced "
                         "loops (reported: the HTTP floor, no Kafka)",
                         f"{http['cpu_s_per_100k']} CPU s/100k requests{total}", True))
    for mode in ("ours-partition", "ours-key"):
        v = r.get("idle", {}).get(mode)
        if v and "cpu_pct_of_core" in v:
            rows.append((f"{mode} idle {v['seconds']:.0f} s: ≤ 0.5 % of a core, RSS ≤ 20 MiB",
                         f"{v['cpu_pct_of_core']} %, {v['max_rss_mib']} MiB",
                         v["cpu_pct_of_core"] <= 0.5 and v["max_rss_mib"] <= 20))
    return rows


def beside_row(row, label, floor):
    """Puts `floor` (a consumer measured beside ours) into `row` as `label`, with ours'
    p99 and p999 minus its own."""
    row[label] = floor
    for q in ("p99", "p999"):
        row[f"{q}_minus_{label}"] = round(row[q] - floor[q], 1)


def timing_split(log_path, since):
    """Where the slowest 1 % of records spent their time, from the sidecar's `kws::timing`
    lines (`--timing`): the broker's append to the worker taking the record from its
    partition queue (broker, fetch, librdkafka's queues), the worker (buffer, ordering,
    spawn, request building) and the answered attempt; medians in ms, beside all records'.
    Only records answered after `since` (the measured phase, a Unix time) count."""
    rows = []
    with open(log_path, errors="replace") as f:
        for line in f:
            if '"kws::timing"' not in line:
                continue
            try:
                event = json.loads(line)
                answered = datetime.datetime.fromisoformat(
                    event["timestamp"].replace("Z", "+00:00")).timestamp() * 1e3
                total = answered - event["timestamp_ms"]
                waited, attempt = event["waited_us"] / 1e3, event["attempt_us"] / 1e3
            except (ValueError, KeyError):
                continue
            if answered < since * 1e3:
                continue
            rows.append((total, total - waited, waited - attempt, attempt, answered,
                         event["partition"]))
    if not rows:
        return {}
    rows.sort()
    slow = rows[-max(1, len(rows) // 100):]

    def medians(sample):
        mid = lambda i: round(statistics.median(r[i] for r in sample), 2)
        return {"total": mid(0), "to_worker": mid(1), "in_worker": mid(2), "attempt": mid(3)}
    return {"records": len(rows), "all": medians(rows), "slowest_1pct": medians(slow),
            "slowest_1pct_partitions": len({r[5] for r in slow}),
            "slowest_1pct_span_ms": round(max(r[4] for r in slow) - min(r[4] for r in slow), 1)}


def matrix_markdown(matrix):
    """Issue 32's table: ours beside the plain consumer of the same run (and, with
    --forwarder, beside the plain consumer forwarding over HTTP)."""
    forwarder = any("forwarder" in v for rows in matrix.values() for v in rows.values())
    fwd_head = " forwarder p50 / p99 / p999 / max ms | p99 − fwd | p999 − fwd |" if forwarder else ""
    lines = ["| rate, keys | mode | ours p50 / p99 / p999 / max ms | plain p50 / p99 / p999 / max ms "
             "| p99 − plain | p999 − plain | p99 ratio | within 5 / 10 ms |" + fwd_head,
             "|---|---|---|---|---:|---:|---:|---|" + ("---|---:|---:|" if forwarder else "")]
    quad = lambda f: f"{f.get('p50')} / {f.get('p99')} / {f.get('p999')} / {f.get('max')}"
    for load, rows in matrix.items():
        for name, v in rows.items():
            f = v.get("plain", {})
            ok = v.get("p99_minus_plain", 1e9) <= 5 and v.get("p999_minus_plain", 1e9) <= 10
            line = (f"| {load} | {name} | {quad(v)} | {quad(f)} "
                    f"| {v.get('p99_minus_plain')} | {v.get('p999_minus_plain')} "
                    f"| {v.get('p99_ratio_to_plain')} | {'yes' if ok else 'NO'} |")
            if forwarder:
                line += (f" {quad(v.get('forwarder', {}))} | {v.get('p99_minus_forwarder')} "
                         f"| {v.get('p999_minus_forwarder')} |")
            lines.append(line)
    return "\n".join(lines) + "\n"


def markdown(r, args):
    lines = []
    if "fast" not in r:  # --batch-only
        lines += batch_markdown(r, args)
        lines.append("| target | measured | met |")
        lines.append("|---|---|---|")
        for name, measured, met in targets(r, args):
            lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
        return "\n".join(lines) + "\n"
    ceil = r["ceilings"]
    lines.append(f"Backlog: {args.records} records of {args.record_size} B over "
                 f"{args.partitions} partitions, {args.keys} keys; {r['machine']['cpus']} CPUs.")
    lines.append("")
    lines.append("| ceiling | figure |")
    lines.append("|---|---:|")
    for key, value in ceil.items():
        lines.append(f"| {key} | {value} |")
    if r.get("http_floors"):
        lines.append("")
        lines.append("| the HTTP side alone, no Kafka (`kws-bench client-load`) | requests/s "
                     "| CPU s/100k requests | context switches/request |")
        lines.append("|---|---:|---:|---:|")
        names = {"bare": "hyper-util client alone", "sidecar": "sidecar request + HttpClient"}
        loads = {"full": f"full speed, {args.partitions * args.cap} in flight",
                 "rate": f"{args.latency_rate}/s over {args.partitions} loops",
                 "low": f"{args.low_rate}/s over {args.partitions} loops"}
        for key, v in r["http_floors"].items():
            client, load = key.split("_", 1)
            lines.append(f"| {names[client]}, {loads[load]} | {v['per_s']:.0f} | "
                         f"{v['cpu_s_per_100k']} | {v['context_switches_per_request']} |")
    lines.append("")
    lines.append("| fast endpoint | committed/s | delivered/s | CPU s/100k | broker CPU s/100k "
                 "| receiver CPU s/100k | machine CPU busy | peak RSS MiB | duplicates |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in r["fast"].items():
        lines.append(f"| {v['description']} | {v['committed_per_s']} | {v['delivered_per_s']} | "
                     f"{v['cpu_s_per_100k']} | {v['broker_cpu_s_per_100k']} | "
                     f"{v['receiver_cpu_s_per_100k']} | {v['machine_cpu_busy_pct']}% | "
                     f"{v['peak_rss_mib']} | {v['duplicates']} |")
    if "format_cost_us" in r:
        lines.append("")
        lines.append(f"| building one request ({args.record_size} B value, in process) "
                     "| µs/record |")
        lines.append("|---|---:|")
        for name, value in r["format_cost_us"].items():
            lines.append(f"| {name} | {value} |")
    costs = format_costs(r["fast"])
    if costs:
        lines.append("")
        lines.append("| request format (key mode) | CPU s/100k | raw CPU s/100k | added µs/record "
                     "| committed/s |")
        lines.append("|---|---:|---:|---:|---:|")
        for label, cpu, raw, added, rate in costs:
            lines.append(f"| {label} | {cpu} | {raw} | {added} | {rate} |")
    if "slow" in r:
        slow = r["slow"]
        lines.append("")
        lines.append(f"| slow endpoint ({args.slow_ms} ms) | records/s | peak in flight |")
        lines.append("|---|---:|---:|")
        for name, v in slow.items():
            if isinstance(v, dict):
                lines.append(f"| {name} | {v['per_s']} | {v['peak_in_flight']} |")
        lines.append(f"| C/latency (C = {slow['cap_total']}) | {slow['ideal_per_s']:.0f} | |")
    if "latency" in r:
        for key in ("latency", "latency_low"):
            if key not in r:
                continue
            rate = next(iter(r[key].values()))["rate"]
            lines.append("")
            lines.append(f"| added latency at {rate}/s (append → arrival) | p50 ms | p99 ms "
                         "| p999 ms | max ms | CPU s/100k | cores | context switches/record |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for name, v in r[key].items():
                lines.append(f"| {name} | {v['p50']} | {v['p99']} | {v['p999']} | {v['max']} | "
                             f"{v['cpu_s_per_100k']} | {v.get('cores', '')} | "
                             f"{v.get('context_switches_per_record', '')} |")
        lines.append("")
        lines.append("| memory | RSS MiB |")
        lines.append("|---|---:|")
        for name, v in r.get("idle", {}).items():
            lines.append(f"| {name}, idle (assigned, nothing to do) | {v['max_rss_mib']} |")
    else:
        lines.append("")
        lines.append("| memory | RSS MiB |")
        lines.append("|---|---:|")
    for name, v in r["fast"].items():
        lines.append(f"| {name}, peak at full load | {v['peak_rss_mib']} |")
    for name, v in r.get("big_backlog", {}).items():
        lines.append(f"| {name}, peak over a {args.big_records}-record backlog "
                     f"({v['committed_per_s']} committed/s) | {v['peak_rss_mib']} |")
    if r.get("idle"):
        lines.append("")
        lines.append("| idle, assigned, nothing to consume | seconds | CPU % of one core "
                     "| RSS MiB |")
        lines.append("|---|---:|---:|---:|")
        for name, v in r["idle"].items():
            lines.append(f"| {name} | {v.get('seconds', '')} | {v.get('cpu_pct_of_core', '')} "
                         f"| {v['max_rss_mib']} |")
    lines.append("")
    lines += batch_markdown(r, args)
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for name, measured, met in targets(r, args):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def batch_markdown(r, args):
    """The batch scenarios' tables (issue 13), next to the kcat ceiling of the same run."""
    batch = r.get("batch")
    if not batch:
        return []
    kcat = batch["kcat_consume_per_s"]
    lines = [f"Batch backlog: {batch['records']} records of {args.record_size} B over "
             f"{args.partitions} partitions; kcat over it: {kcat} records/s (kcat CPU "
             f"{batch['kcat_cpu_s_per_100k']} s/100k, broker "
             f"{batch['kcat_broker_cpu_s_per_100k']} s/100k).", "",
             f"| batched, fast endpoint (kcat ceiling {kcat}/s) | committed/s | × kcat "
             "| delivered/s | × kcat | records/request | peak requests in flight | CPU s/100k "
             "| broker CPU s/100k | receiver CPU s/100k | machine CPU busy | peak RSS MiB "
             "| duplicates |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, v in batch["fast"].items():
        if "committed_per_s" not in v:
            lines.append(f"| {v['description']} | not measured: {v['error']} "
                         "| | | | | | | | | | | |")
            continue
        lines.append(
            f"| {v['description']} | {v['committed_per_s']} | "
            f"{v['committed_per_s'] / kcat:.2f} | {v['delivered_per_s']} | "
            f"{v['delivered_per_s'] / kcat:.2f} | {v['records_per_request']} | "
            f"{v['peak_in_flight']} | {v['cpu_s_per_100k']} | {v['broker_cpu_s_per_100k']} | "
            f"{v['receiver_cpu_s_per_100k']} | {v['machine_cpu_busy_pct']}% | "
            f"{v['peak_rss_mib']} | {v['duplicates']} |")
    peer = batch["fast"].get("benthos-batch", {})
    if "committed_per_s" in peer:
        lines += ["", "| batched, ours ÷ Benthos batching | committed/s | delivered/s "
                  "| CPU per record |", "|---|---:|---:|---:|"]
        for name, v in batch["fast"].items():
            if name.startswith("ours") and "committed_per_s" in v:
                lines.append(
                    f"| {name} | {v['committed_per_s'] / peer['committed_per_s']:.2f}× | "
                    f"{v['delivered_per_s'] / peer['delivered_per_s']:.2f}× | "
                    f"{v['cpu_s_per_100k'] / peer['cpu_s_per_100k']:.2f}× |")
    if batch.get("latency"):
        lines += ["", f"| batched, added latency at {args.latency_rate}/s (append → arrival, "
                  f"max_wait {args.batch_max_wait_ms} ms) | p50 ms | p99 ms | p999 ms | max ms "
                  "| CPU s/100k |", "|---|---:|---:|---:|---:|---:|"]
        for name, v in batch["latency"].items():
            if "p99" in v:
                lines.append(f"| {name} | {v['p50']} | {v['p99']} | {v['p999']} | {v['max']} | "
                             f"{v['cpu_s_per_100k']} |")
            else:
                lines.append(f"| {name} | not measured: {v['error']} | | | | |")
    return lines + [""]


def _first_line(path):
    with open(path) as f:
        line = f.readline()
    return line if line.startswith("listening ") else None


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    csv = lambda v: [x for x in v.split(",") if x]
    ints = lambda v: [int(x) for x in csv(v)]
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--broker-pid", type=int)
    parser.add_argument("--tool", required=True, help="the kws-bench binary")
    parser.add_argument("--sidecar", required=True)
    parser.add_argument("--sarama")
    parser.add_argument("--benthos")
    parser.add_argument("--fast-only", action="store_true",
                        help="only the ceilings and the fast-endpoint drains (e.g. a before/after "
                             "comparison with --baseline-sidecar and a larger --records)")
    parser.add_argument("--batch-only", action="store_true",
                        help="only the batch scenarios (issue 13): the kcat ceiling, the fast "
                             "drains with batching (ours per mode, Benthos) and the latency "
                             "with batching")
    parser.add_argument("--no-batch", action="store_true",
                        help="skip the batch scenarios (e.g. a build without batching)")
    parser.add_argument("--batch-records", type=int, default=1_000_000,
                        help="the batch scenarios' backlog (its own topic, kcat over it too)")
    parser.add_argument("--batch-max-records", type=int, default=500)
    parser.add_argument("--batch-max-bytes", type=int, default=1_048_576)
    parser.add_argument("--batch-max-wait-ms", type=int, default=5)
    parser.add_argument("--batch-cap", type=int,
                        help="batches in flight per partition in the key/none batch rows and "
                             "Benthos's (default: --cap)")
    parser.add_argument("--batch-rows",
                        help="comma-separated batch rows to run (default all), e.g. "
                             "ours-batch-none,benthos-batch")
    parser.add_argument("--batch-kafka-property", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a librdkafka property for our batch rows only (a diagnostic, "
                             "e.g. queued.max.messages.kbytes=2048); repeatable")
    parser.add_argument("--flow-only", action="store_true",
                        help="only the flow-control scenario (issue 15): fixed caps swept vs "
                             "the adaptive limit against an endpoint of --flow-workers workers")
    parser.add_argument("--flow", action="store_true",
                        help="also run the flow-control scenario after the others")
    parser.add_argument("--flow-ms", type=int, default=5, help="service time per request")
    parser.add_argument("--flow-workers", type=int, default=16)
    parser.add_argument("--flow-records", type=int, default=40_000)
    parser.add_argument("--flow-tolerance", type=float,
                        help="delivery.concurrency.latency_tolerance of the adaptive run "
                             "(default: the sidecar's)")
    parser.add_argument("--flow-caps", type=lambda v: [int(c) for c in v.split(",")],
                        default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--baseline-sidecar",
                        help="an earlier sidecar build to run side by side (rows base-*)")
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--cap", type=int, default=8, help="in flight per partition, fast runs")
    parser.add_argument("--slow-ms", type=int, default=50)
    parser.add_argument("--slow-cap", type=int, default=16)
    parser.add_argument("--slow-seconds", type=float, default=10)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--low-rate", type=int, default=200,
                        help="a second open-loop rate (records/s) for CPU and latency; 0: skip")
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--latency-matrix", action="store_true",
                        help="only issue 32's rows: ours (partition/key/none) beside a plain "
                             "librdkafka consumer at --low-rate and --latency-rate, 10 and "
                             "--keys keys")
    parser.add_argument("--matrix-modes", type=csv, default=[],
                        help="latency matrix: only these ordering modes (partition,key,none)")
    parser.add_argument("--matrix-rates", type=ints, default=[],
                        help="latency matrix: only these rates")
    parser.add_argument("--matrix-keys", type=ints, default=[],
                        help="latency matrix: only these key counts")
    parser.add_argument("--timing", action="store_true",
                        help="latency rows: the sidecar logs each record's stage times; the "
                             "row gains where the slowest 1 %% spent them")
    parser.add_argument("--librdkafka-debug", metavar="CONTEXTS",
                        help="the sidecar's librdkafka `debug` contexts, logged (diagnosis)")
    parser.add_argument("--forwarder", action="store_true",
                        help="latency rows: also the plain consumer forwarding over HTTP "
                             "(librdkafka + hyper-util alone) to a receiver of its own")
    parser.add_argument("--keep-arrivals", action="store_true",
                        help="latency rows: write each record's arrival to the work folder")
    parser.add_argument("--issue-config", action="store_true",
                        help="ours with issue 32's settings (session_timeout 6000ms, timeout "
                             "2s, retry 50ms..1s, drain_timeout 10s)")
    parser.add_argument("--no-plain", action="store_true",
                        help="latency rows without the plain librdkafka consumer beside them")
    parser.add_argument("--cost-only", action="store_true",
                        help="only issue 16's figures: wrk ceilings with wrk's CPU, the "
                             "single-record drains, Sarama, the open-loop rates, 60 s idle")
    parser.add_argument("--cost-parts", type=csv, default=["fast", "latency", "low", "idle"],
                        help="with --cost-only: which parts (fast,latency,low,idle)")
    parser.add_argument("--cost-kinds", type=csv, default=[],
                        help="with --cost-only: only these consumers (e.g. ours-key,base-key)")
    parser.add_argument("--base-env", action="append", default=[],
                        help="K=V: an environment variable for the --baseline-sidecar rows only")
    parser.add_argument("--base-kafka-property", action="append", default=[],
                        help="K=V: a librdkafka property for the --baseline-sidecar rows only")
    parser.add_argument("--big-records", type=int, default=1_000_000)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--run-timeout", type=float, default=600)
    args = parser.parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    results["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "python": platform.python_version()}
    results["settings"] = {k: v for k, v in vars(args).items()
                           if k not in ("tool", "sidecar", "sarama", "benthos", "baseline_sidecar", "out")}
    if args.latency_matrix:
        table = matrix_markdown(results["latency_matrix"])
    else:
        table = (results["flow"]["table"] + "\n") if args.flow_only else markdown(results, args)
    if "flow" in results and not args.flow_only:
        table += "\nFlow control:\n\n" + results["flow"]["table"] + "\n"
    write_results(args.out, results, table)


def write_results(out, results, table):
    """The figures as JSON at `out`, the table beside it (.md) and on stdout."""
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(table)
    print(table)
    log(f"figures written to {out}")


if __name__ == "__main__":
    main()
