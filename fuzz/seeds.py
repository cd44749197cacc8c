#!/usr/bin/env python3
"""seeds.py TARGET DIR: writes the seed corpus of a fuzz target into DIR (each target's input
layout is in the doc comment of fuzz_targets/TARGET.rs).

- `bodies`: the values of the property and integration tests (odd and plain), each with a few
  flag bytes, and a few multi-record inputs.
- `config`: every config/*.yaml example and the error cases of tests/config.rs (selector 0),
  durations (1), `${VAR}` texts (2) and byte sizes (3).
- `answers`: statuses, Retry-After values (seconds, HTTP dates in the three formats, "-1",
  huge numbers) and batch answers (Dapr statuses, plain and malformed bodies).
- `pem`: the certificates and keys below (made once with openssl for these seeds: a P-256 CA,
  a client certificate it issued, the same as X.509 v1, Ed25519 and RSA keys), paired and
  mismatched, and broken PEM.
- `oauth2`: token answers of RFC 6749 and of common servers, odd `expires_in` values, error
  answers.
- `cloudevents`: binary-mode headers (valid, repeated, badly named, null, not UTF-8) and
  structured values.
- `routes`: the CEL expressions of the docs and tests, and some that overflow or fail.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VALUES = [
    b'{"n":1}',
    b'"\xff\xfe"',
    b'{\n  "pretty": [\n    1\n  ]\n}',
    b'{\r\n  "crlf": true\r\n}\r\n',
    rb'{"lone":"\ud800"}',
    rb'"\ud83d\ude00"',
    b'\xef\xbb\xbf{"bom":1}',
    b'{"a":1}{"b":2}',
    b'',
    b'01',
    b'NaN',
    b'[1,2,',
    '{"u":"a\u2028b"}'.encode(),
    b'plain text',
    b'\x00\xff',
    b'null',
    b'  [true, false, null, -1.5e3, "x"]  ',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"z":1}}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data":"\\ud800"}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data_base64":"AAE="}',
]
FLAGS = [0x00, 0x04, 0x08, 0x11, 0x24, 0x46, 0x80]


def bodies(out):
    os.makedirs(out, exist_ok=True)
    n = 0
    for value in VALUES:
        for flags in FLAGS:
            with open(os.path.join(out, f"seed-{n:03}"), "wb") as f:
                f.write(bytes([flags]) + value)
            n += 1
    mixed = b"\n--\n".join(bytes([FLAGS[i % len(FLAGS)]]) + v for i, v in enumerate(VALUES[:8]))
    with open(os.path.join(out, f"seed-{n:03}"), "wb") as f:
        f.write(mixed)
    print(f"{n + 1} seeds in {out}")


def write(out, seeds):
    os.makedirs(out, exist_ok=True)
    for n, seed in enumerate(seeds):
        with open(os.path.join(out, f"seed-{n:03}"), "wb") as f:
            f.write(seed)
    print(f"{len(seeds)} seeds in {out}")


# tests/config.rs: BASE and the snippets of its error table.
BASE = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
  group_id: orders-webhook
  topics: [orders]
delivery:
  url: http://127.0.0.1:8080/events
"""
DELIVERY_LINES = [
    "  retries: 3\n",
    "  retry:\n    initial_backoff: 5s\n    max_backoff: 1s\n",
    "  retry:\n    retryable_statuses: [\"200-299\"]\n",
    "  retry:\n    retryable_statuses: [\"700\"]\n",
    "  retry:\n    retryable_statuses: [1.5]\n",
    "  retry:\n    multiplier: 1e309\n    max_attempts: 4294967295\n",
    "  ordering: none\n  max_in_flight: 0\n",
    "  ordering: fifo\n",
    "  on_failure: dead_letter\n",
    "  on_failure: dead_letter\n  dead_letter_topic: orders\n",
    "  on_failure: dead-letter\n",
    "  timeout: 10 parsecs\n",
    "  timeout: 0.0000001ms\n",
    "  batch:\n    max_records: 0\n",
    "  batch:\n    max_bytes: 100\n",
    "  batch:\n    max_bytes: 18446744073709551615\n    max_wait: 1h\n",
    "  format: cloudevents-structured\n  batch:\n    encoding: ndjson\n",
    "  batch:\n    size: 10\n",
    "  method: \"P O S T\"\n",
    "  headers:\n    \"Bad Header\": x\n",
    "  headers:\n    Authorization: \"Bearer ${APP_TOKEN}\"\n",
    "  headers:\n    Authorization: Bearer ${NEWLINE}\n",
    "  format: cloudevents-binary\n  signing:\n    secrets: [\"${WEBHOOK_SECRET}\", \"whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\"]\n",
    "  format: cloudevents\n",
    "  signing:\n    secrets: [\"whsec_dG9vLXNob3J0LXMzY3IzdA==\"]\n",
    "  signing:\n    secrets: [\"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
    "  format: cloudevents-structured\n  headers:\n    Content-Type: text/plain\n",
    "  headers:\n    webhook-signature: x\n  signing:\n    secrets: [\"${WEBHOOK_SECRET}\"]\n",
    "  cloudevents:\n    type: \"\"\n",
    "  unix_socket: /var/run/app/webhook.sock\n",
    "  unix_socket: app/webhook.sock\n",
    "  unix_socket: \"  \"\n",
    "  tls:\n    ca_file: /etc/kws/ca.crt\n",
    "  auth:\n    bearer_token_file: /nonexistent/kws/token\n",
    "  auth:\n    oauth2:\n      token_url: http://auth.example.com/token\n      client_id: orders\n      client_secret: ${OAUTH_CLIENT_SECRET}\n",
    "  auth:\n    oauth2:\n      token_url: https://auth.example.com/token\n      client_id: orders\n",
    "  concurrency:\n    mode: adaptive\n  rate_limit:\n    records_per_second: 0.5\n  pause_fetch_after: 1s\n",
]
SECTIONS = [
    "kafak:\n  group_id: x\n",
    "shutdown:\n  drain_timeout: 30s\n  termination_grace_period: 30s\n",
    "admin:\n  listen: 9464\n",
    "log:\n  level: kafka_webhook_sidecar=loud\n",
    "log:\n  format: yaml\n",
    "routes:\n  - name: orders\n    rules:\n      - match: 'ce.type == '\n        path: /created\n",
    "routes:\n  - name: orders\n    filter: 'header[\"env\"] != \"test\"'\n",
    "routes:\n  - name: audit\n    delivery:\n      url: ftp://audit/in\n",
    "routes:\n  - name: orders\n    filter: '!(\"env\" in headers) || headers[\"env\"] != \"test\"'\n    rules:\n      - {match: 'ce.type == \"order.created\"', path: /created}\n    default: /other\n    delivery: {retry: {max_attempts: 3}}\n",
]
KAFKA_LINES = [
    "  fetch_linger: 2s\n",
    "  fetch_linger: 5ms\n",
    "  session_timeout: 10\n",
    "  memory_budget: 4 GiB\n",
    "  memory_budget: 18446744073709551615\n",
    "  properties:\n    enable.auto.commit: \"true\"\n",
    "  properties:\n    fetch.min.bytes: 1\n",
    "  group_instance_id: ${POD_NAME:-}\n",
]
REPLACED = [
    ("  url: http://127.0.0.1:8080/events\n", "  method: POST\n"),
    ("http://127.0.0.1:8080/events", "\"\""),
    ("http://127.0.0.1:8080/events", "ftp://127.0.0.1/events"),
    ("http://127.0.0.1:8080/events", "http://user:pass@host/"),
    ("http://127.0.0.1:8080/events", "\"http://exa mple/\""),
    ("http://127.0.0.1:8080/events", "${NOPE}"),
    ("http://127.0.0.1:8080/events", "${NOPE:-http://127.0.0.1:8080/events}"),
    ("http://127.0.0.1:8080/events", "${WEBHOOK_URL"),
    ("http://127.0.0.1:8080/events", "https://127.0.0.1:8443/events"),
    ("[orders]", "[]"),
    ("[orders]", "[\"orders!\"]"),
    ("127.0.0.1:9092", "${KAFKA_BOOTSTRAP_SERVERS}"),
]
DURATIONS = ["250ms", "10s", "1.5s", "2m", "1h", "0", " 3s ", "10", "10 parsecs", "s", "-1s",
             "1e400s", "", "8760h", "8761h", "99999999999999999999h", "0.0000001ms", "1.5.5s",
             ".", "1.s", ".5m", "0ms", "1000000000000000000000ms"]
INTERPOLATIONS = ["a: ${HOST}", "${MISSING:-x}", "${MISSING:-}", "${EMPTY:-x}", "cost $$5 and $x",
                  "# ${NOPE}\n  # x: ${NOPE}\na: ${APP_TOKEN}", "a: 1\nb: ${NOPE}\n", "${OPEN",
                  "${A-B}", "${1X}", "${}", "$${DOLLAR}", "${DOLLAR}", "x\r\n${NOPE}", "${\u00e9}"]
BYTE_SIZES = ["64MiB", "64 MiB", "1.5 GiB", "0", "100", "1e30 B", "18446744073709551615",
              "64mb", "-1KiB", "8 EiB", "1 ZiB", "0.5 B", "NaN KiB", "inf"]


def config(out):
    seeds = []
    examples = os.path.join(ROOT, "config")
    for name in sorted(os.listdir(examples)):
        if name.endswith(".yaml"):
            with open(os.path.join(examples, name), "rb") as f:
                seeds.append(b"\x00" + f.read())
    texts = [BASE, "", "kafka: {bootstrap_servers: \"unterminated\n", "kafka:\n\tbootstrap_servers: x\n"]
    texts += [BASE + lines for lines in DELIVERY_LINES + SECTIONS]
    texts += [BASE.replace("  topics: [orders]\n", "  topics: [orders]\n" + lines) for lines in KAFKA_LINES]
    texts += [BASE.replace(a, b) for a, b in REPLACED]
    seeds += [b"\x00" + text.encode() for text in texts]
    seeds += [b"\x01" + text.encode() for text in DURATIONS]
    seeds += [b"\x02" + text.encode() for text in INTERPOLATIONS]
    seeds += [b"\x03" + text.encode() for text in BYTE_SIZES]
    write(out, seeds)


def status_bytes(status, even_high=False):
    """Two bytes x with 100 + x % 500 == status (the high byte even when asked)."""
    x = status - 100
    while even_high and (x >> 8) & 1:
        x += 500
    return x.to_bytes(2, "big")


RETRY_AFTER = ["", "120", "0", " 5 ", "-1", "1.5", "soon", "99999999999999999999",
               "18446744073709551615", "Wed, 21 Oct 2015 07:28:00 GMT",
               "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
               "Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT",
               "Tue, 14 Nov 2023 22:15:20 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"]
RESULTS = [
    b"", b"  \n", b"OK", b"<html>thanks</html>", b'{"ok":true}', b"[1,2]", b"[[]]", b'["ok"]',
    b'{"statuses":[{"entryId":"t-0-0","status":"SUCCESS"},{"entryId":"t-0-1","status":"RETRY"},'
    b'{"entryId":"t-0-2","status":"drop"},{"entryId":"t-0-3","status":"LATER"}]}',
    b'{"statuses":[]}', b'{"statuses":null}', b'{"statuses":"all good"}',
    b'{"statuses":[{"entryId":7,"status":"SUCCESS"}]}', b'{"statuses":[{"status":"SUCCESS"}]}',
    b'{"statuses":[{"entryId":"t-0-0","status":"SUCCESS"},{"entryId":"t-0-0","status":"DROP"}]}',
    b'{"statuses":[{"entryId":"t-0-0","status":"SUCCESS","extra":1e400}]}',
    b'{"statuses":[["t-0-0","SUCCESS"]]}',
    b'{"statuses":[{"entryId":"t-0-1","status":"SUCCESS"}',
]


def answers(out):
    seeds = []
    for status in [200, 204, 429, 503, 400, 501, 302, 409]:
        for i, retry_after in enumerate(RETRY_AFTER):
            body = RESULTS[i % len(RESULTS)] if status < 300 else b""
            sizes = 0x13 if i % 2 else 0x07
            seeds.append(status_bytes(status) + bytes([sizes, 0x80]) + retry_after.encode() + b"\n" + body)
    for body in RESULTS:
        seeds.append(status_bytes(200) + bytes([0x07, 0x00]) + b"\n" + body)
    write(out, seeds)


# Made once with openssl for these seeds (`req -x509`, `x509 -req`, `genpkey`): test material
# that protects nothing.
CA_CERT = b"""\
-----BEGIN CERTIFICATE-----
MIIBkTCCATigAwIBAgIUa1B3nbqureCo4RTJs3c44+ezwowwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6eiBzZWVkIENBMCAXDTI2MTIwODAwMDIwNFoYDzIxMjYx
MTE0MDAwMjA0WjAXMRUwEwYDVQQDDAxmdXp6IHNlZWQgQ0EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQ4+AL6jd7mpuT2nnyikqXRgiLZU7lz2l+lPvBtZ0oSbiSa
Se0GF7H0UwiIzvT+aw8jv0rTA8GvCa1K3uGjZE0Uo2AwXjAdBgNVHQ4EFgQUde/+
w0xonDzHsoMwYE8quyjhsd4wHwYDVR0jBBgwFoAUde/+w0xonDzHsoMwYE8quyjh
sd4wDwYDVR0TAQH/BAUwAwEB/zALBgNVHQ8EBAMCAQYwCgYIKoZIzj0EAwIDRwAw
RAIgKRqDBH6z3KU35wHQ/LQk/mRpsshpYoDOSQarGzj0daQCICAfROhI9nyRcLLe
2GHxlClI2/uPsZ2nLliZWEBuulEN
-----END CERTIFICATE-----
"""

CLIENT_CERT = b"""\
-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUTTPrcvQbefB1yU7XV47DSUazAYIwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6eiBzZWVkIENBMCAXDTI2MTIwODAwMDIwNFoYDzIxMjYx
MTE0MDAwMjA0WjAbMRkwFwYDVQQDDBBmdXp6LXNlZWQtY2xpZW50MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEvijt/QOrHiyHj8RrXu41BMC+icLRGjIcs87VkA9c
yVhe19CHUnebCl3jKF9UTJ6ylKt7Mu3Mt7SSX/QFGxa95qNvMG0wCQYDVR0TBAIw
ADALBgNVHQ8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0OBBYEFI2E
aWxqooDX93BSJwyzz1ufYg6sMB8GA1UdIwQYMBaAFHXv/sNMaJw8x7KDMGBPKrso
4bHeMAoGCCqGSM49BAMCA0gAMEUCIBJVNyeD/aBelTefny/uL77YevDPHukPejXK
nhgIQAqpAiEA9Klm2L44zOYZjERPPbvO7TBnafbHTS9Pup9/i6Uy50A=
-----END CERTIFICATE-----
"""

CLIENT_CERT_V1 = b"""\
-----BEGIN CERTIFICATE-----
MIIBLjCB1QIUTTPrcvQbefB1yU7XV47DSUazAYMwCgYIKoZIzj0EAwIwFzEVMBMG
A1UEAwwMZnV6eiBzZWVkIENBMCAXDTI2MTIwODAwMDIwNVoYDzIxMjYxMTE0MDAw
MjA1WjAbMRkwFwYDVQQDDBBmdXp6LXNlZWQtY2xpZW50MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEvijt/QOrHiyHj8RrXu41BMC+icLRGjIcs87VkA9cyVhe19CH
UnebCl3jKF9UTJ6ylKt7Mu3Mt7SSX/QFGxa95jAKBggqhkjOPQQDAgNIADBFAiEA
9Uvh/IIUE1MKV+EGmsBFoyDDXR9JnWpAbQJAXKkS+84CICmb+kuGzJ76Osjn6fo7
5XBI+P8QOBalojb8cTXGEzR0
-----END CERTIFICATE-----
"""

CLIENT_KEY = b"""\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKALW+w7n1iFWOIML
1aL+zHVI4zt1j968kwAxf0FQuH+hRANCAAS+KO39A6seLIePxGte7jUEwL6JwtEa
MhyzztWQD1zJWF7X0IdSd5sKXeMoX1RMnrKUq3sy7cy3tJJf9AUbFr3m
-----END PRIVATE KEY-----
"""

CA_KEY_SEC1 = b"""\
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDaMNevWjjMcKuHAe7s5vW+jiAQFoLTNQq5e1TQhTo9doAoGCCqGSM49
AwEHoUQDQgAEOPgC+o3e5qbk9p58opKl0YIi2VO5c9pfpT7wbWdKEm4kmkntBhex
9FMIiM70/msPI79K0wPBrwmtSt7ho2RNFA==
-----END EC PRIVATE KEY-----
"""

ED25519_CERT = b"""\
-----BEGIN CERTIFICATE-----
MIIBTzCCAQGgAwIBAgIUKAVQMReA5zgxUSOZjaaNLddnohQwBQYDK2VwMBwxGjAY
BgNVBAMMEWZ1enotc2VlZC1lZDI1NTE5MCAXDTI2MTIwODAwMDIwNVoYDzIxMjYx
MTE0MDAwMjA1WjAcMRowGAYDVQQDDBFmdXp6LXNlZWQtZWQyNTUxOTAqMAUGAytl
cAMhAKxx57WUqkJ7j5ZGsTtZNeoUxqbXZI8/5WIX9OPqyVjmo1MwUTAdBgNVHQ4E
FgQU23iKsKTNCAHof2bMabCOJFDSM6QwHwYDVR0jBBgwFoAU23iKsKTNCAHof2bM
abCOJFDSM6QwDwYDVR0TAQH/BAUwAwEB/zAFBgMrZXADQQDtc7teCm+eDDFv9+3Z
OmdsTty83msqZnGCBYRvGa+cmroOO4UXkFu4SPad9J9cJobSnP/+dKj9XqGvYiJr
90kC
-----END CERTIFICATE-----
"""

ED25519_KEY = b"""\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDdA14bNQTAr+WK4sN92MFlqU0SDo4VaJGj6e9IklcrY
-----END PRIVATE KEY-----
"""

RSA_KEY = b"""\
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAuDBkCSyJ4pyPnHSt3tbq9/aHQSGqIH4OcvGQjZdK5aS6+vp5
d+ZPnXCqmOYSJzDo5C3jeQAHvW+yBs/iuqIduRLLYIZ/8Mru0H5VnE5mX/oJcHfy
qClrUSOSyCwHpGJorzBKjyh3kTjuG0b8+uaxnQIRx3dsskjJ98LVUHIhOYnyzmQq
8SSTdYLuFL5+5FoLskXserZzGynPAAGPb1U9gN0jnRap05jWyqcs6c7Wmv04hTPP
jjN4/4E+25ZL7T3x8P02sTyW/LiPxkCP9aRWie7FoXrvTFChUshUQvSjO+YUX84y
2x+/1RHu/HLaU6N2BlAc4S7OmfXT9P1KQpGlxwIDAQABAoIBABmSKkk1xDzQRIXR
kxP1XXCoarWpoU9agNIHZGyr3OuN16GhZXy2XkY6zoxkoI+NVD/deQ+i5/AuUhZt
BQqpGBxKFi8j7R42ZjpO177YCZF4ipfxJyCeg3YjzKx6pGL3gJYVy7wdP6BLOY9S
5ytEHNNx5pr9IvuLbHK3u1qsRZ2Ro3Y0YN+HxOyRwn5uiuZMNTgahAQy3AgetLgR
Ad+3aaAxo1DQtygXr2P1MvrtDA77GLo+CC5brhc+fB7aNd2kjTcqfco8B0H+v5pw
FMqctStpR5yoLmdlfvGP7PULZdHOX+Xrq7DR9/03xN00U8Uzre5I/DAah92teV0f
Iq9aSFkCgYEA27OtdqIPmfGj/lQB9PHgZJ7fubdFoMXp1sMO5fl2kKMJl7gDgYzr
/0ExFCjrhnu8vlATfOYI+t+xqMMiaHkgfcQsCObCmr/DZ1UH0BrTXVQgVeNJHmQr
Flw1eiidLd8UDjAbAFJga4r4qCcYNFZEBKJyid4uJM3N0Vh/d6fFP0kCgYEA1p6x
RZSMBYF89qQUE4ZtkUoTbm9YHHzCy35NeWWggxhJXikGC+fjQif+cqyZyu/oZ3y5
80qS5QWHfYXaKJbPR8/OWjZM+y6tnj6c7Ep53naMx4CjQr60U3ZYXqQIHgkCpwGc
Ru7y4XWIw+o9dR2llWCwP0LLxHqmOroTubCs7I8CgYEArWVl5leJkKpSEAwlbzjn
LQLm+CBZZ8ZMBB/2xjLZDNZgX8nvmnOqXs8I+SxCluVZ1apFdzHmrHmYMeWwZlwS
9K+7QVs/A/uNMSS/AdPqNaKL0r2Lm9za1M75tewQAYAqx/fXl61sQ/Ruw+f3Bnd/
P1kmpQEh0hJL+omqMLnMx2ECgYAh1crkyVJ527wzthJkMaE8co01r+AYPaMIKdVU
+iyf/kgyzAzj+57cYym+Mm/cio39IrC+JleaO5DsvRlzpLLxA1Xo6v6f6u/8LqrW
pbco10/CdAlJEH+lWNb9tKaC9bCxW5OjqzAnUzxIhrlBqXbdYeznTESLqTpjr8pE
UBIzCQKBgEHyhScCB6FXag6wlXA64lR2kN7oiiWwKfR9tVjDHmiGNYfHyVgy4Omk
sv1n5cDcsxhbWP+DJ85FqY2xfSw7nWLL2yCVBHMjM8iYMwZ/MhA7nX0X2Gmx4aB0
qSoZtP86z/qbh3ITHT78z2QvC4qShd82QvAIEYdIKLWjXudLoha/
-----END RSA PRIVATE KEY-----
"""


def pem_seeds(out):
    bundle = CA_CERT + ED25519_CERT
    files = [
        (1, [CA_CERT]),
        (1, [bundle]),
        (1, [CLIENT_CERT_V1]),
        (1, [b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]),
        (1, [b"not PEM at all"]),
        (1, [CA_CERT[:200]]),
        (2, [b"", CLIENT_CERT + CA_CERT, CLIENT_KEY]),
        (2, [b"", CLIENT_CERT, CA_KEY_SEC1]),
        (2, [b"", CLIENT_CERT_V1, CLIENT_KEY]),
        (2, [b"", ED25519_CERT, ED25519_KEY]),
        (2, [b"", CLIENT_CERT, RSA_KEY]),
        (2, [b"", CLIENT_CERT, CLIENT_KEY[:120]]),
        (2, [b"", CLIENT_CERT, CLIENT_KEY.replace(b"PRIVATE KEY", b"RSA PRIVATE KEY")]),
        (3, [CA_CERT, CLIENT_CERT, CLIENT_KEY]),
        (3, [CA_KEY_SEC1, CLIENT_KEY, CLIENT_CERT]),
    ]
    write(out, [bytes([flags]) + b"\n==\n".join(parts) for flags, parts in files])


TOKENS = [
    b'{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer","expires_in":3600}',
    b'{"access_token":"abc","token_type":"bearer","expires_in":3600}',
    b'{"access_token":"abc","expires_in":"10"}',
    b'{"access_token":"abc"}',
    b'{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcmRlcnMifQ.c2ln","token_type":"Bearer",'
    b'"expires_in":300,"refresh_expires_in":0,"not-before-policy":0,"scope":"events.write"}',
    b'{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599",'
    b'"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"}',
    b'{"access_token":"t0k3n-long-enough","token_type":"mac"}',
    b'{"access_token":"t0k3n-long-enough","token_type":"t0k3n-long-enough-x"}',
    b'{"token_type":"Bearer"}',
    b'{"access_token":""}',
    b'{"access_token":"a\\nb"}',
    b'{"access_token":"abc","expires_in":0}',
    b'{"access_token":"abc","expires_in":-1}',
    b'{"access_token":"abc","expires_in":1e-300}',
    b'{"access_token":"abc","expires_in":1e308}',
    b'{"access_token":"abc","expires_in":"NaN"}',
    b'{"access_token":"abc","expires_in":"inf"}',
    b'{"access_token":"abc","expires_in":18446744073709551616}',
    b'{"access_token":"abc","expires_in":null}',
    b'{"access_token":"abc","access_token":"def"}',
    b"<html>",
    b"",
]
ERRORS = [
    b'{"error":"invalid_client","error_description":"secret s3cr3t is wrong"}',
    b'{"error":"invalid_grant","access_token":"leaked-token-value"}',
    b'{"error":"a b"}',
    b'{"error":"' + b"x" * 80 + b'"}',
    b"<html>",
]


def oauth2(out):
    seeds = [b"\x01\x00" + body for body in TOKENS]
    for status in [401, 400, 500, 503]:
        seeds += [status_bytes(status, even_high=True) + body for body in ERRORS]
    write(out, seeds)


CE_HEADERS = [
    [],
    [b"ce_subject=x", b"ce_time=2023-11-14T22:13:20Z", b"content-type=text/plain"],
    [b"ce_datacontenttype=application/json"],
    [b"ce_datacontenttype=application/cloudevents+json"],
    [b"content-type=application/cloudevents-batch+json"],
    [b"ce_Bad=1"],
    [b"ce_id=dup"],
    [b"ce_=x"],
    [b"ce_x=\xff"],
    [b"ce_y"],
    [b"ce_specversion"],
    [b"b64=QUJD", b"h=v", b"H=V", b"traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    [b"ce_partitionkey=k 1 \"%"],
]
CE_VALUES = [
    b'{"n":1}',
    b'',
    b'\x00\xff',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"z":1}}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","data_base64":"AAE="}',
    b'{"specversion":"1.0","id":"e","source":"/s","type":"t","datacontenttype":"application/cloudevents+json","data":"x"}',
    b'{"specversion":"1.0","id":"","source":"/s","type":"t"}',
    b'[1]',
]


def cloudevents(out):
    seeds = []
    for flags in [0x00, 0x02, 0x04, 0x06, 0x09]:
        for i, headers in enumerate(CE_HEADERS):
            value = CE_VALUES[i % len(CE_VALUES)]
            seeds.append(bytes([flags]) + b"\n--\n".join([value] + headers))
    for value in CE_VALUES:
        seeds.append(b"\x04" + value)
    seeds.append(b"\x00" + b"\n--\n".join([b"{}", b"ce_specversion=1.0", b"ce_id=e-2",
                                               b"ce_source=/s", b"ce_type=t", b"ce_x=1"]))
    write(out, seeds)


EXPRESSIONS = [
    '!("env" in headers) || headers["env"] != "test"',
    'ce.type == "order.created"',
    'ce.type in ["order.paid", "order.refunded"]',
    'ce.type.startsWith("order.")',
    'partition % 2 == 0',
    'headers["type"] == "a"',
    'false',
    'key == "k-1" && partition == 2 && offset == 41',
    'headers["missing"] == "x"',
    'has(ce.subject)',
    'ce.source == "/kafka/orders" && ce.type == "com.example.record"',
    'value.kind == "test"',
    'value.n > 0 && size(value.a) == 2 && value.a.exists(x, x > 1)',
    'timestamp > 0 && topic == "orders"',
    'ce.type.matches("^order\\.")',
    'ce.type == ',
    'header["env"] != "test"',
    'tpoic == "x"',
    '1 / 0 == 1',
    '-9223372036854775808 / -1 == 0',
    '9223372036854775807 + 1 > 0',
    'offset * 9223372036854775807 > 0',
    '"abc"[0] == "a"',
    '[1, 2, 3].map(x, x * 2)[5] == 0',
    'value.a[-1] == 1',
    'int("99999999999999999999") > 0',
    'duration("1000000000h") > duration("1s")',
    'timestamp("9999-12-31T23:59:59Z") > timestamp("0001-01-01T00:00:00Z")',
    'string(key) == ""',
    'bytes("x") == b"\\xff"',
    '((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))) == 1',
    '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]] == []',
    '{"a": 1}.a == 1',
    'uint(offset) - 100u > 0u',
    'double(offset) / 0.0 > 0.0',
    '"\\u00e9" + "x" == "éx"',
]


def routes(out):
    seeds = [bytes([i % 2]) + text.encode() for i, text in enumerate(EXPRESSIONS)]
    seeds += [bytes([(i + 1) % 2]) + text.encode() for i, text in enumerate(EXPRESSIONS[:8])]
    write(out, seeds)


SEEDS = {
    "bodies": bodies,
    "config": config,
    "answers": answers,
    "pem": pem_seeds,
    "oauth2": oauth2,
    "cloudevents": cloudevents,
    "routes": routes,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SEEDS:
        sys.exit(f"usage: seeds.py {{{','.join(SEEDS)}}} DIR")
    SEEDS[sys.argv[1]](sys.argv[2])
