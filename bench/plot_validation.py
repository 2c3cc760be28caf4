#!/usr/bin/env python3
"""plot_validation.py — the quality vs latency / memory trade-off across candidates, as one SVG,
from the verdict.json files of `seslm validate` (standard library only: the SVG is written directly).

    python3 bench/plot_validation.py runs/*/validate/verdict.json -o bench/out/tradeoff.svg
    python3 bench/plot_validation.py --quality clinc150_accuracy v1/verdict.json v2/verdict.json

Two panels share the y axis (a quality metric of each candidate, default stsb_spearman): x = the
candidate's latency at batch 1 (p50) as a fraction of its parent's, and x = its weight bytes as a
fraction of its parent's. The parent sits at x = 1; the dashed lines are the seed's targets (0.8
latency, 0.7 bytes) and the parent's quality minus the allowed drop (2 points). A green point passed
every gate of its verdict, a red one failed at least one. Each point is labelled with its candidate
directory's name (or the verdict's folder name with --label-from-dir).
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape


def load(path, quality, from_dir):
    v = json.load(open(path))
    m = v["metrics"]

    def ratio(name):
        x = m.get(name, {})
        return x.get("ratio") if x.get("measured") else None

    q = m.get(quality, {})
    label = os.path.basename(os.path.dirname(os.path.abspath(path))) if from_dir else \
        os.path.basename(os.path.normpath(v["candidate"]["dir"]))
    return {"label": label, "pass": v["pass"], "parent_q": q.get("parent"), "q": q.get("candidate"),
            "lat": ratio("latency_b1_p50"), "mem": ratio("weight_bytes")}


def panel(out, x0, y0, w, h, pts, key, xlabel, target, qlo, qhi, qname, drop_line):
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (x0, y0, w, h))
    xs = [p[key] for p in pts if p[key] is not None] + [1.0, target]
    xlo, xhi = min(xs) - 0.05, max(xs) + 0.05
    X = lambda x: x0 + (x - xlo) / (xhi - xlo) * w
    Y = lambda y: y0 + h - (y - qlo) / (qhi - qlo) * h
    for i in range(6):  # ticks
        xv = xlo + (xhi - xlo) * i / 5
        yv = qlo + (qhi - qlo) * i / 5
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%.2f</text>' % (X(xv), y0 + h + 15, xv))
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%.3f</text>' % (x0 - 5, Y(yv) + 4, yv))
    out.append('<text x="%.1f" y="%d" font-size="13" text-anchor="middle">%s</text>' % (x0 + w / 2, y0 + h + 35, escape(xlabel)))
    out.append('<text x="%d" y="%.1f" font-size="13" text-anchor="middle" transform="rotate(-90 %d %.1f)">%s</text>'
               % (x0 - 50, y0 + h / 2, x0 - 50, y0 + h / 2, escape(qname)))
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="5,4"/>' % (X(target), y0, X(target), y0 + h))
    if drop_line is not None and qlo < drop_line < qhi:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="5,4"/>' % (x0, Y(drop_line), x0 + w, Y(drop_line)))
    parents = {p["parent_q"] for p in pts if p["parent_q"] is not None}
    for pq in parents:
        out.append('<circle cx="%.1f" cy="%.1f" r="6" fill="#333"/><text x="%.1f" y="%.1f" font-size="11">parent</text>'
                   % (X(1.0), Y(pq), X(1.0) + 8, Y(pq) - 6))
    for p in pts:
        if p[key] is None or p["q"] is None:
            continue
        color = "#2a9d3a" if p["pass"] else "#d62828"
        out.append('<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/><text x="%.1f" y="%.1f" font-size="11">%s</text>'
                   % (X(p[key]), Y(p["q"]), color, X(p[key]) + 7, Y(p["q"]) + 4, escape(p["label"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("verdicts", nargs="+", help="verdict.json files of seslm validate")
    ap.add_argument("-o", "--out", default="bench/out/tradeoff.svg")
    ap.add_argument("--quality", default="stsb_spearman", help="metric on the y axis (default stsb_spearman)")
    ap.add_argument("--label-from-dir", action="store_true", help="label points with the verdict's folder name")
    a = ap.parse_args()
    try:
        pts = [load(p, a.quality, a.label_from_dir) for p in a.verdicts]
    except (OSError, ValueError, KeyError) as e:
        print("plot_validation.py: %s" % e, file=sys.stderr)
        return 2
    qs = [p["q"] for p in pts if p["q"] is not None] + [p["parent_q"] for p in pts if p["parent_q"] is not None]
    if not qs:
        print("plot_validation.py: no verdict measured %s" % a.quality, file=sys.stderr)
        return 2
    drop = max(p["parent_q"] for p in pts if p["parent_q"] is not None) - 0.02
    qlo, qhi = min(qs + [drop]) - 0.01, max(qs) + 0.01
    W, H = 1000, 460
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="24" font-size="15" text-anchor="middle">%s vs latency and weight bytes (candidate / parent); '
           'green: every gate passed</text>' % (W / 2, escape(a.quality))]
    panel(out, 90, 50, 380, 340, pts, "lat", "latency p50 at batch 1, candidate / parent", 0.8, qlo, qhi, a.quality, drop)
    panel(out, 590, 50, 380, 340, pts, "mem", "weight bytes, candidate / parent", 0.7, qlo, qhi, a.quality, drop)
    out.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
