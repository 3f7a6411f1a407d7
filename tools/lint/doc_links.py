#!/usr/bin/env python3
"""Checks the links of README.md and docs/*.md: every relative link names a file that
exists, and every #anchor a heading of its file (as GitHub makes anchors: lower case,
punctuation dropped, spaces to hyphens). The README is the front door and docs/ the manual;
moving a section between them must not leave a dead link behind."""
import os
import re
import sys


def anchor(title):
    t = re.sub(r"[^a-z0-9 _-]", "", title.strip().lower())
    return t.replace(" ", "-")


def anchors(path):
    out = set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
            elif line.startswith("#") and not fenced:
                out.add(anchor(line.lstrip("#")))
    return out


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    os.chdir(root)
    files = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md"))
    bad = 0
    for f in files:
        base = os.path.dirname(f)
        with open(f, encoding="utf-8") as text:
            for n, line in enumerate(text, 1):
                for m in re.finditer(r"\[[^\]]+\]\(([^)\s]+)\)", line):
                    target = m.group(1)
                    if re.match(r"^[a-z]+:", target):
                        continue
                    path, _, frag = target.partition("#")
                    dest = os.path.normpath(os.path.join(base, path)) if path else f
                    if not os.path.exists(dest):
                        print(f"{f}:{n}: {target}: no such file")
                        bad += 1
                    elif frag and dest.endswith(".md") and frag not in anchors(dest):
                        print(f"{f}:{n}: {target}: no such heading")
                        bad += 1
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
