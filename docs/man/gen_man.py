#!/usr/bin/env python3
"""gen_man.py - writes the seslm(1) man page (troff) from the program's own help texts, so that the page
and `seslm CMD --help` never disagree: NAME, SYNOPSIS, DESCRIPTION, one COMMANDS subsection per command
(its --help verbatim), ENVIRONMENT, EXIT STATUS, FILES, SEE ALSO.
usage: docs/man/gen_man.py PATH/TO/seslm VERSION > seslm.1
"""
import re, subprocess, sys

exe, version = sys.argv[1], sys.argv[2]

def run(*args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    return p.stdout if p.stdout.strip() else p.stderr

def esc(line):
    """Literal text for troff: backslashes doubled, a leading . or ' made harmless."""
    line = line.replace("\\", "\\e")
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line

top = run("--help")
cmds = []
in_cmds = False
for line in top.splitlines():
    if line.strip() == "commands:":
        in_cmds = True
        continue
    m = re.match(r"^  (\S+)\s+(.*)$", line)
    if in_cmds and m:
        cmds.append((m.group(1), m.group(2)))
    elif in_cmds and line.strip() == "":
        in_cmds = False
if not cmds:
    sys.exit("gen_man.py: no commands found in `seslm --help`")

out = [
    '.TH SESLM 1 "" "seslm %s" "User Commands"' % version,
    ".SH NAME",
    "seslm \\- self-evolving small language model toolkit: embed, serve, record telemetry, evolve, register",
    ".SH SYNOPSIS",
    ".B seslm",
    ".I command",
    "[\\fIoptions\\fR]",
    ".br",
    ".B seslm",
    ".I command",
    ".B \\-\\-help",
    ".SH DESCRIPTION",
    "SE-SLM runs a small sentence encoder (BERT family, safetensors) on the CPU or, with the optional",
    "CUDA backend library, on a GPU, records telemetry while serving, and evolves the model nightly:",
    "ingest \\(-> drift \\(-> plan \\(-> recompile \\(-> validate \\(-> registry \\(-> serving node.",
    "Every command prints its own help with \\fB\\-\\-help\\fR; the texts below are those helps.",
    ".SH COMMANDS",
]
for name, what in cmds:
    out += [".SS %s" % esc(name), esc(what) + ".", ".PP", ".nf", ".ft CR"]
    out += [esc(l) for l in run(name, "--help").rstrip("\n").splitlines()]
    out += [".ft R", ".fi"]
out += [
    ".SH ENVIRONMENT",
    ".TP", ".B SESLM_MODEL_DIR", "model directory used when \\fB\\-\\-model\\fR is not given (else models/all\\-MiniLM\\-L6\\-v2).",
    ".TP", ".B SESLM_STORE", "artifact store of the registry: a directory or s3://BUCKET/PREFIX.",
    ".TP", ".B SESLM_CUDA_LIBRARY", "path of the CUDA backend library to load instead of libseslm\\-cuda beside libseslm.",
    ".TP", ".B OMP_NUM_THREADS", "OpenMP threads of the CPU kernels when \\fB\\-\\-threads\\fR is 0.",
    ".SH EXIT STATUS",
    "0 success; 1 a file or input could not be used (bad model, bad telemetry, failed gate); 2 usage error.",
    "Commands that judge (drift, validate, audit) document further codes in their help.",
    ".SH FILES",
    ".TP", ".I configs/*.yaml", "evolution, validation and dialog policies.",
    ".TP", ".I runs/", "default home of the registry database and the artifact store.",
    ".SH SEE ALSO",
    "The project's README.md and docs/ (serving.md, evolve.md, registry.md, deploy.md); pkg\\-config(1) seslm.",
]
print("\n".join(out))
