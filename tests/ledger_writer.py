"""Helper process for the ledger tests: record N bounce records into a ledger.

    python tests/ledger_writer.py DB PREFIX N BATCH [--progress FILE]

Records ``N`` hard/soft bounces (``PREFIX``-unique Message-IDs, 1,000 recipients shared
with other writers) through :meth:`Ledger.record_records`, ``BATCH`` records per
transaction; prints the number of new events stored.  With ``--progress FILE`` it appends
the number of records committed so far after each batch (used by the SIGKILL test).
"""
import os
import sys


def records(prefix, n):
    for i in range(n):
        hard = i % 4 == 0
        yield {
            "source": f"{prefix}/{i}", "kind": "bounce",
            "final_recipient": f"u{i % 1000}@Example.com",
            "action": "failed", "status": "5.1.1" if hard else "4.2.2",
            "code": "511" if hard else "422", "bounce_type": "hard" if hard else "soft",
            "reason": "user_unknown" if hard else "mailbox_full",
            "message_id": f"<{prefix}-{i}@bounces.test>",
            "original_message_id": f"<orig-{prefix}-{i}@sender.test>",
            "date": 1_700_000_000 + i * 600,
        }


def main(argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from dsnparse.ledger import Ledger
    db, prefix, n, batch = argv[0], argv[1], int(argv[2]), int(argv[3])
    progress = argv[5] if len(argv) > 5 and argv[4] == "--progress" else None
    recs = list(records(prefix, n))
    new = 0
    with Ledger(db, timeout=120) as led:
        for start in range(0, n, batch):
            new += led.record_records(recs[start:start + batch])
            if progress:
                with open(progress, "a") as f:
                    f.write(f"{start + batch}\n")
    print(new)


if __name__ == "__main__":
    main(sys.argv[1:])
