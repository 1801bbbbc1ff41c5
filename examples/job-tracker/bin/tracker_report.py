#!/usr/bin/env python3
"""Reads a job tracker file as the tracker library's users read theirs, with the standard
library only: the field names they used and dates in "%Y-%m-%d %H:%M:%S". Prints one JSON
line: the job, its current step by number and name, its statuses, the context's keys and the
seconds between creation and the last change.

Usage: tracker_report.py <tracker file>
"""
import json
import sys
from datetime import datetime

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def report(path):
    with open(path, encoding="utf-8") as f:
        tracker = json.load(f)
    management = tracker["job_management"]
    created = datetime.strptime(tracker["creation_date"], DATE_FORMAT)
    modified = datetime.strptime(tracker["last_modified_date"], DATE_FORMAT)
    current = management["current_step"]
    return {
        "job_ticket_id": tracker["job_ticket_id"],
        "job_name": tracker["job_name"],
        "current_step": current,
        "current_step_name": management["steps"][str(current)],
        "steps": len(management["steps"]),
        "job_status": management["job_status"],
        "previous_step_status": management["previous_step_status"],
        "context_keys": sorted(tracker["context"]),
        "seconds": (modified - created).total_seconds(),
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    print(json.dumps(report(sys.argv[1])))
