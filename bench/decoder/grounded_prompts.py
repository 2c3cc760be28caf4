#!/usr/bin/env python3
"""grounded_prompts.py — calibration text for distilling a decoder student on served grounded prompts.

A serving node's grounded answers (`/v1/message`, `seslm validate-decoder`) send the decoder the prompt of
runtime/assist/grounded_answer.c: a system instruction ("Answer ONLY using the context below ..."), three
retrieved passages and the user's question, in the model's chat template. This writes prompts of that shape
from passages the QA set never uses (default: lines 1301-2000 of data/eval/wiki_passages.txt; the QA set's
passages are lines 11-1024), one per line with newlines written as the two characters \\n, as
`seslm distill-decoder --special --answer-tokens N` reads them (the parent's answers are appended there):

  answerable    a passage in the context is quoted up to a word and the question asks what completes it, or
                asks what the context says about a phrase of it (the answer is drawn from the context);
  unanswerable  the same questions about a sentence that is not in the context (the answer is "I don't know").

With --text FILE --text-lines N, N lines of plain text are interleaved, each started with <|endoftext|> (scored
as `seslm perplexity` scores a document), so the student keeps modelling text. The template is ChatML
(SmolLM2's); a model with another template needs its own markers. Deterministic for a given --seed.
"""
import argparse
import random
import sys

SYSTEM = ('Answer ONLY using the context below. If the context does not contain the answer, say "I don\'t know". '
          'Answer in one short sentence.')

STOP = set("""a an the of in on at to for from by with and or but is was were are be been being as that this these
those it its he she they his her their which who whom whose what when where why how not no than then there into
also has have had do does did can could would should will may might one two after before over under about""".split())


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def question_for(sentence, rng):
    words = sentence.split()
    if len(words) < 5:
        return None
    # the blank: a number if there is one, else a content word past the first few
    cand = [i for i, w in enumerate(words) if i >= 2 and any(c.isdigit() for c in w)]
    if not cand:
        cand = [i for i, w in enumerate(words) if i >= 3 and w.isalpha() and len(w) > 3 and w not in STOP]
    if not cand:
        return None
    if rng.random() < 0.6:
        i = rng.choice(cand)
        return f'According to the context, what completes this: "{" ".join(words[:i])} ..."?'
    # a phrase of the sentence: two or three words starting at a content word
    starts = [i for i, w in enumerate(words[:-2]) if w.isalpha() and w not in STOP and len(w) > 3]
    if not starts:
        return None
    i = rng.choice(starts)
    return f'What does the context say about "{" ".join(words[i:i + rng.choice((2, 3))])}"?'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", default="data/eval/wiki_passages.txt")
    ap.add_argument("--first", type=int, default=1301, help="first line of --passages to use (1-based)")
    ap.add_argument("--last", type=int, default=2000, help="last line of --passages to use")
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--unanswerable", type=float, default=0.4, help="fraction of questions the context does not answer")
    ap.add_argument("--text", help="plain text to interleave (one document per line)")
    ap.add_argument("--text-lines", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.passages, encoding="utf-8") as f:
        lines = [l.strip() for l in f][a.first - 1:a.last]
    lines = [l for l in lines if len(l.split()) >= 5]
    if len(lines) < 10:
        sys.exit(f"{a.passages}: fewer than 10 usable lines in {a.first}-{a.last}")
    out = []
    while len(out) < a.prompts:
        ctx = rng.sample(lines, 3)
        if rng.random() < a.unanswerable:
            target = rng.choice([l for l in rng.sample(lines, 8) if l not in ctx])
        else:
            target = rng.choice(ctx)
        q = question_for(target, rng)
        if not q:
            continue
        user = "Context:\n" + "".join(f"[{i + 1}] {p}\n" for i, p in enumerate(ctx)) + f"\nQuestion: {q}"
        out.append(chatml(user).replace("\n", "\\n"))
    if a.text and a.text_lines > 0:
        with open(a.text, encoding="utf-8") as f:
            text = [l.strip() for l in f if l.strip()][:a.text_lines]
        docs = ["<|endoftext|>" + t for t in text]
        # interleave evenly: the held-out slice (1 in 8) then holds both kinds
        merged, i, j = [], 0, 0
        while i < len(out) or j < len(docs):
            if i < len(out) and (j >= len(docs) or i * len(docs) <= j * len(out)):
                merged.append(out[i]); i += 1
            else:
                merged.append(docs[j]); j += 1
        out = merged
    sys.stdout.write("".join(l + "\n" for l in out))


if __name__ == "__main__":
    main()
