"""The delivery raw limit: a plain Python process posting payloads with `requests.Session` and
nothing else (no database, no outbox). Run N of these in parallel for N-process comparisons.

    python -m bench.raw_post --url http://127.0.0.1:9900/cases --count 2500 --offset 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--payload", required=True, help="JSON file with the payload to post")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument(
        "--cpu-file", help="write the posting loop's CPU seconds here (start-up not counted)"
    )
    args = parser.parse_args()
    with open(args.payload) as fh:
        payload = json.load(fh)
    session = requests.Session()
    cpu = time.process_time()
    for i in range(args.offset, args.offset + args.count):
        r = session.post(
            args.url, json=payload, headers={"Idempotency-Key": f"raw-{i}"}, timeout=(3, 10)
        )
        if r.status_code >= 300:
            sys.exit(f"HTTP {r.status_code}")
    if args.cpu_file:
        with open(args.cpu_file, "w") as fh:
            fh.write(str(time.process_time() - cpu))


if __name__ == "__main__":
    main()
