"""The one list of status words: what a run's status.json says, and what a tally or view adds.

Every writer and reader imports these names from here; nothing else spells the strings.
"""

from __future__ import annotations

# Written to a run's status.json.
RUNNING = "running"
DONE = "done"
FAILED = "failed"
DIVERGED = "diverged"
INVALID = "invalid"
INTERRUPTED = "interrupted"
RUN_STATES = (RUNNING, DONE, FAILED, DIVERGED, INVALID, INTERRUPTED)

# Outcomes that a re-run of the same config would only repeat: a resumed sweep skips them.
FINAL = (DONE, DIVERGED, INVALID)

# Words only a tally or a view uses (never written to status.json).
SKIPPED = "skipped"  # already finished with the same config: not run again
REPAIRED = "repaired"  # was `done` but its files did not verify: redone
BUSY = "busy elsewhere"  # another live process owns the run
PENDING = "pending"  # in the sweep's manifest, no status yet
CORRUPT = "corrupt"  # a status file that cannot be parsed

# The order a sweep's tally prints them in.
TALLY = (DONE, FAILED, DIVERGED, INVALID, INTERRUPTED, SKIPPED, REPAIRED, BUSY)
