"""Speed and accuracy benchmarks (``make bench``); peers side by side. Not tests."""
