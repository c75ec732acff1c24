"""Soak publisher (Python SDK): ``python -m benchmarks.soak_pub OPTIONS_JSON``.

Emits ``rate`` events/s for ``seconds`` through ``secbus_sdk.Client`` with
``on_full="block"`` (the policy for users who may not lose a record), writes
every returned event id to ``ids_file``, then flushes with a deadline and
prints its client stats as one JSON line. The broker is killed and restarted
under it the whole time; the SDK's spool and replay must carry every event.
"""

from __future__ import annotations

import json
import random
import sys
import time

from secbus_sdk import Client

TYPES = [("authn.signature.verify", "success"), ("authn.login", "failure"), ("authz.permission.check", "success"),
         ("authn.token.verify", "error"), ("config.change", "success")]


def main() -> int:
    opts = json.loads(sys.argv[1])
    rng = random.Random(opts.get("seed", 7))
    client = Client(endpoint=opts["endpoint"], service="soak-python", spool_dir=opts["spool_dir"], on_full="block",
                    ack_timeout=1.0)
    interval = 1.0 / opts["rate"]
    start = time.monotonic()
    n = 0
    with open(opts["ids_file"], "w", encoding="utf-8") as ids:
        while time.monotonic() - start < opts["seconds"]:
            due = start + n * interval
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)  # pacing: the publisher's offered rate is the behaviour under test
            type_, outcome = TYPES[rng.randrange(len(TYPES))]
            event_id = client.emit(type_, outcome, actor={"user": f"soak{n % 50}"}, attrs={"n": n, "publisher": "python"})
            ids.write(event_id + "\n")
            n += 1
    flushed = client.flush(opts.get("flush_timeout", 120.0))
    stats = client.stats()
    client.close(10.0)
    print(json.dumps({"emitted": n, "flushed": flushed, "stats": stats}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
