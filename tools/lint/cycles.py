#!/usr/bin/env python3
"""Finds import cycles between the modules under src/: module A uses B (a `crate::` or
`super::` path in A's file, comments and doc links left out) and B uses A, file by file and
between the crate's top-level modules. A module's use
of its own ancestors or descendants is not counted: a parent dispatching to its children
while they read its constants is the layout Rust expects.

Usage: tools/lint/cycles.py [SRC]. Exit status 1 when there is a cycle.
"""
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def code(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def resolve(mod, path, modules):
    """The longest known module a `crate::a::b::c` or `super::x` path names."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        base = list(mod)
        rest = parts
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
        base = tuple(base)
    best = None
    for n in range(len(rest), 0, -1):
        cand = base + tuple(rest[:n])
        if cand in modules:
            best = cand
            break
    return best


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = {}
    for d, _, fs in os.walk(src):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                files[module_of(p, src)] = code(open(p, encoding="utf-8").read())
    modules = set(files)
    uses = {m: set() for m in modules}
    for m, text in files.items():
        # test modules may reach anywhere; cut `mod tests {` to the end of the file
        text = text.split("#[cfg(test)]")[0]
        paths = re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        for prefix, items in re.findall(r"\b((?:crate|super)(?:::\w+)*)::\{([^}]*)\}", text):
            paths += [prefix + "::" + i.strip().split(" ")[0] for i in items.split(",") if i.strip()]
        for path in paths:
            t = resolve(m, path, modules)
            if t and t != m and t[: len(m)] != m and m[: len(t)] != t:
                uses[m].add(t)
    found = [c for c in components(uses) if len(c) > 1]
    for c in found:
        print("cycle: " + " <-> ".join("::".join(m) or "crate" for m in sorted(c)))
    # The same between the crate's top-level modules (every file of `quant` counts as
    # `quant`), but for `cli`, the binary's layer over all of them: two layers that each
    # reach into the other are one layer in two places.
    top = {}
    for m, ts in uses.items():
        if "tests" in m:  # a test module's file (`mod tests;`) may reach anywhere
            continue
        for t in ts:
            a, b = m[:1], t[:1]
            if a and b and a != b and a != ("cli",):
                top.setdefault(a, set()).add(b)
    layered = [c for c in components(top) if len(c) > 1]
    for c in layered:
        print("module cycle: " + " <-> ".join(m[0] for m in sorted(c)))
    sys.exit(1 if found or layered else 0)


def components(graph):
    """Strongly connected components (Tarjan), iteratively."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


if __name__ == "__main__":
    main()
