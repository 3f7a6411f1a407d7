#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 80 lines) and files longer than 600
lines under src/, for issue 14's "a house a newcomer can walk". The SIMD kernel folders
(src/kernels/x86_64, src/kernels/aarch64) are exempt: their kernels are unrolled on purpose.

Usage: tools/lint/long_fns.py [--limit N] [--file-limit N] [ROOT]
Exit status 1 when something is over a limit.
"""
import argparse
import os
import re
import sys

FN = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+"C"\s+)?fn\s+(\w+)')
EXEMPT = ("src/kernels/x86_64", "src/kernels/aarch64")


def functions(lines):
    """(name, first line, length) of each fn whose body closes at its own indentation."""
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i, len(lines)):
            if lines[j].startswith(indent + "}") and (lines[j].strip() in ("}", "};", "})", "});")):
                yield m.group(7), i + 1, j - i + 1
                break


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--file-limit", type=int, default=600)
    ap.add_argument("root", nargs="?", default="src")
    a = ap.parse_args()
    bad = 0
    for dirpath, _, files in os.walk(a.root):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            if path.startswith(EXEMPT):
                continue
            lines = open(path, encoding="utf-8").read().split("\n")
            if len(lines) > a.file_limit:
                print(f"{path}: {len(lines)} lines (file)")
                bad += 1
            for name, start, n in functions(lines):
                if n > a.limit:
                    print(f"{path}:{start}: fn {name}: {n} lines")
                    bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
