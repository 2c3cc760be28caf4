#!/usr/bin/env python3
"""fill_results.py — replaces the generated blocks of bench/RESULTS.md with fresh benchmark output.

A block is everything between
    <!-- generated: NAME (command) -->
    <!-- end generated: NAME -->
and NAME's new content is the file DIR/NAME.md. Blocks without a new file are left as they are (and
listed); the prose around the blocks is never touched. The file is rewritten through a temporary file."""
import os
import re
import sys


def main():
    if len(sys.argv) != 3:
        print("usage: fill_results.py RESULTS.md DIR", file=sys.stderr)
        return 2
    path, d = sys.argv[1], sys.argv[2]
    text = open(path).read()
    pat = re.compile(r"(<!-- generated: (\w+)[^\n]*-->\n)(.*?)(<!-- end generated: \2 -->)", re.S)
    done, kept = [], []

    def sub(m):
        name = m.group(2)
        f = os.path.join(d, name + ".md")
        if not os.path.exists(f):
            kept.append(name)
            return m.group(0)
        body = open(f).read().rstrip("\n") + "\n"
        done.append(name)
        return m.group(1) + body + m.group(4)

    out = pat.sub(sub, text)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(out)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    print("regenerated: %s; unchanged (no new output): %s" % (", ".join(done) or "-", ", ".join(kept) or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
