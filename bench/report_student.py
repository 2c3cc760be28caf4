#!/usr/bin/env python3
"""report_student.py — summarise bench/student.sh's run (bench/out/student) as Markdown for RESULTS.md:
bytes, latency per configuration (median over rounds of each round's p50, spread min..max over rounds,
ratio student / parent of the medians), quality (cosine student vs parent on held-out text)."""
import argparse
import json
import math
import os
import statistics
from collections import defaultdict


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def cosines(a_path, b_path):
    a = [json.loads(x)["embedding"] for x in open(a_path)]
    b = [json.loads(x)["embedding"] for x in open(b_path)]
    cs = sorted(sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))
                for u, v in zip(a, b))
    return len(cs), sum(cs) / len(cs), cs[len(cs) // 20], cs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    a = ap.parse_args()
    rc = json.load(open(os.path.join(a.dir, "recompile.json")))
    print("Machine: %s, %d cores visible, %d threads. Student: %s (%s), reconstruction %s, INT8 weights %s, "
          "embeddings %s (%d exact rows)." % (cpu_model(), os.cpu_count(), a.threads, rc["plan"], rc["student"],
                                              rc["reconstruction"], rc["quantize"], rc["embeddings"], rc["exact_rows"]))
    print()
    print("| | parent | student | student / parent |\n|---|---|---|---|")
    print("| parameters | %d | %d | %.3f |" % (rc["params_parent"], rc["params"], rc["params"] / rc["params_parent"]))
    print("| stored weight bytes | %d | %d | **%.3f** |" % (rc["bytes_parent"], rc["bytes"], rc["bytes_ratio"]))
    print("| model.safetensors bytes | %d | %d | %.3f |" % (rc["file_bytes_parent"], rc["file_bytes"],
                                                           rc["file_bytes"] / rc["file_bytes_parent"]))
    print()
    rows = defaultdict(lambda: defaultdict(list))
    rss = defaultdict(list)
    for line in open(os.path.join(a.dir, "latency.jsonl")):
        r = json.loads(line)
        key = (r["config"], r["batch"])
        rows[key][r["who"]].append(r["p50_ms"])
        rss[r["who"]].append(r.get("peak_rss_mb", 0))
    print("| inputs | batch | parent p50 ms (min..max over rounds) | student p50 ms (min..max) | student / parent |")
    print("|---|---|---|---|---|")
    for (cfg, batch), d in sorted(rows.items(), key=lambda kv: (kv[0][0] != "short", kv[0][1])):
        p, s = d["parent"], d["student"]
        mp, ms = statistics.median(p), statistics.median(s)
        print("| %s | %d | %.3f (%.3f..%.3f) | %.3f (%.3f..%.3f) | **%.3f** |" % (cfg, batch, mp, min(p), max(p), ms,
                                                                             min(s), max(s), ms / mp))
    if rss["parent"] and rss["student"] and max(rss["parent"]) > 0:
        print("\nPeak RSS of the benchmark process (max over runs): parent %.1f MB, student %.1f MB." %
              (max(rss["parent"]), max(rss["student"])))
    print()
    print("| held-out text | n | mean cos | 5th pct | min |\n|---|---|---|---|---|")
    for set_, name in (("heldout", "restaurant8k, last 200 lines (domain, never calibrated on)"),
                       ("clinc", "CLINC150 600 lines (another domain)")):
        n, mean, p5, mn = cosines(os.path.join(a.dir, set_ + "-parent.jsonl"), os.path.join(a.dir, set_ + "-student.jsonl"))
        print("| %s | %d | **%.4f** | %.4f | %.4f |" % (name, n, mean, p5, mn))


if __name__ == "__main__":
    main()
