#!/usr/bin/env python3
"""The source layout the team keeps (issue #27): no file in src/ over MAX_LINES lines, and no
import circle, neither between modules (src/<module>/ or src/<file>.rs) nor between the files
of one module. Prints each violation and exits 1; exits 0 when there is none.

Imports are read from `crate::a::b` and `super::b` paths in the source (a `use` or a path in
code); a path to an item a module re-exports (`pub use file::{item}` in its mod.rs) counts as
an import of the file that defines it. `#[cfg(test)]` modules (tests.rs) count like any file.

Usage: scripts/layout_check.py [SRC_DIR]   (default: src/ beside this script's parent)
"""
import collections
import os
import re
import sys

MAX_LINES = 600


def read_files(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            mod = os.path.relpath(path, src)[:-3]
            if mod.endswith("/mod"):
                mod = mod[: -len("/mod")]
            files[mod.replace("/", "::")] = (path, open(path, encoding="utf-8").read())
    return files


def reexports(files):
    found = {}
    pat = re.compile(r"pub(?:\([a-z]+\))? use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+)(?: as ([A-Za-z_]+))?;")
    for mod, (_, text) in files.items():
        for m in pat.finditer(text):
            sub, items = m.group(1), m.group(2)
            if items.startswith("{"):
                for item in items[1:-1].split(","):
                    item = item.strip()
                    if item:
                        found[(mod, item.split(" as ")[-1].strip())] = mod + "::" + sub
            else:
                found[(mod, m.group(3) or items)] = mod + "::" + sub
    return found


def file_of(path, files, reexp):
    parts = path.split("::")
    for i in range(len(parts), 0, -1):
        cand = "::".join(parts[:i])
        if cand in files:
            if i < len(parts) and (cand, parts[i]) in reexp:
                return reexp[(cand, parts[i])]
            return cand
    return None


def edges_of(files, src):
    reexp = reexports(files)
    edges = collections.defaultdict(set)
    pat = re.compile(r"\b(crate|super)((?:::[a-zA-Z_][a-zA-Z_0-9]*)+)")
    for mod, (path, text) in files.items():
        is_mod_file = path.endswith("/mod.rs") or path == os.path.join(src, "lib.rs")
        parent = mod if is_mod_file else "::".join(mod.split("::")[:-1])
        for m in pat.finditer(text):
            rest = m.group(2)[2:]
            full = rest if m.group(1) == "crate" else (parent + "::" + rest if parent else rest)
            target = file_of(full, files, reexp)
            if target and target != mod:
                edges[mod].add(target)
    return edges


def circles(nodes, edges):
    """Strongly connected components of more than one node (Tarjan)."""
    sys.setrecursionlimit(10000)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    files = read_files(src)
    if not files:
        print(f"layout: no .rs files under {src}")
        return 1
    problems = []
    for mod, (path, text) in sorted(files.items()):
        lines = text.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{path}: {lines} lines (more than {MAX_LINES}): split it by what it does")
    edges = edges_of(files, src)
    top = lambda m: m.split("::")[0]
    module_edges = collections.defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if top(a) != top(b):
                module_edges[top(a)].add(top(b))
    for comp in circles({top(m) for m in files}, module_edges):
        problems.append("modules import each other in a circle: " + " -> ".join(comp))
    file_edges = {a: {b for b in bs if top(a) == top(b)} for a, bs in edges.items()}
    for comp in circles(set(files), file_edges):
        detail = "; ".join(f"{a} -> {', '.join(sorted(file_edges[a] & set(comp)))}" for a in comp)
        problems.append("files import each other in a circle: " + detail)
    for p in problems:
        print("layout: " + p)
    print(f"layout: {len(files)} files, {sum(len(b) for b in edges.values())} imports between them, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
