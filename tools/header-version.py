#!/usr/bin/env python3
"""Print MAJOR.MINOR.PATCH read from include/amxq.h, so the header is the one place it lives."""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
parts = []
for name in ("MAJOR", "MINOR", "PATCH"):
    m = re.search(r"^#define AMXQ_VERSION_%s (\d+)$" % name, text, re.M)
    if not m:
        sys.exit("amxq.h has no AMXQ_VERSION_%s" % name)
    parts.append(m.group(1))
print(".".join(parts))
