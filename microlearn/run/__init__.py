"""Run-level calls, one per user action: chunked whole-brain fits, compare, plan."""
