#!/usr/bin/env python3
"""grounded_prompts.py — calibration text for distilling a decoder student on served grounded prompts.

A serving node's grounded answers (`/v1/message`, `seslm validate-decoder`) send the decoder the prompt of
runtime/assist/grounded_answer.c: a system instruction ("Answer ONLY using the context below ..."), three
retrieved passages and the user's question, in the model's chat template. This writes prompts of that shape
from passages the QA set never uses (default: lines 1301-2000 of data/eval/wiki_passages.txt; the QA set's
passages are lines 11-1024), one per line with newlines written as the two characters \\n, as
`seslm distill-decoder --special --answer-tokens N` reads them (the parent's answers are appended there):

  answerable    a question about a passage in the context, phrased as the node's users ask (--style natural,
                the default: "Who won the european cup in 1999?", "What is west coast swing?", "When was the
                club founded?", "Where was X born?", "By whom was X released?", "In what year ...?"), made
                by rules from the sentence's subject, copula or past-tense verb and year; or (--style cloze,
                the first sessions' prompts) the passage quoted up to a word, "what completes this", or "what
                does the context say about" a phrase of it. --style mixed: natural where the rules find a
                question, cloze for the rest;
  unanswerable  the same questions about a sentence that is not in the context (the answer is "I don't know").

Why natural questions: a student distilled on the parent's answers to cloze prompts learnt their framing ("The
answer to this question is: ...") and carried it to real questions, where the hallucination check weighs a
sentence of little content as weakly supported (bench/RESULTS.md section 17, the restaurant cycle).

With --text FILE --text-lines N, N lines of plain text are interleaved, each started with <|endoftext|> (scored
as `seslm perplexity` scores a document), so the student keeps modelling text. The template is ChatML
(SmolLM2's); a model with another template needs its own markers. Deterministic for a given --seed.
"""
import argparse
import random
import re
import sys

SYSTEM = ('Answer ONLY using the context below. If the context does not contain the answer, say "I don\'t know". '
          'Answer in one short sentence.')

STOP = set("""a an the of in on at to for from by with and or but is was were are be been being as that this these
those it its he she they his her their which who whom whose what when where why how not no than then there into
also has have had do does did can could would should will may might one two after before over under about""".split())


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


# past tenses that do not end in -ed (the verb of "X <verb> ..." -> "Who <verb> ...?")
IRREGULAR = set("""became began brought built bought caught chose came did drew drove fell fought found gave got
grew had held kept knew led left lost made meant met paid put ran rose said sang sat saw sent set shot sold
spent split spoke stood struck swam taught told thought threw took understood went won wore wrote""".split())
COPULA = {"is", "was", "are", "were"}
# participles after a copula that make "When / Where / By whom was X <participle>?"
PARTICIPLES = set("""born founded built released known made written given taken held elected named formed opened
published established created located situated designed produced recorded directed appointed killed married
buried discovered introduced launched completed renamed incorporated acquired signed drafted educated raised
used called based described considered""".split())
PRONOUNS = {"it", "he", "she", "they", "this", "these", "those", "there", "we", "i", "you", "his", "her", "its",
            "their", "which", "who", "that", "some", "many", "most", "all", "both", "each", "one", "other"}
ARTICLES = {"the", "a", "an"}
ADVERBS = {"therefore", "however", "thus", "then", "later", "also", "still", "meanwhile", "instead", "eventually"}
YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})$")


def _verb_at(words):
    """Index of the first past-tense verb among words 1..5 whose subject is a plausible noun phrase, or None."""
    for i, w in enumerate(words[1:6], 1):
        if w in COPULA:
            return None
        if (w in IRREGULAR or (w.endswith("ed") and len(w) > 4)) and w.isalpha():
            subj = words[:i]
            # "the antiquities of safed were ...": a name in -ed, the verb comes later; "therefore the set is ..."
            if i + 1 < len(words) and words[i + 1] in COPULA or subj[0].endswith("ly") or subj[0] in ADVERBS:
                return None
            if subj[0] in PRONOUNS or any(x in STOP and x not in ARTICLES and x != "of" for x in subj):
                return None
            return i
    return None


def _copula_at(words):
    for i, w in enumerate(words[1:7], 1):
        if w in COPULA:
            subj = words[:i]
            if subj[0] in PRONOUNS or any(x in STOP and x not in ARTICLES and x not in ("of", "in") for x in subj):
                return None
            return i
        if w in STOP and w not in ARTICLES and w not in ("of", "in"):
            return None
    return None


def natural_question(sentence, rng):
    """A question a user might ask about sentence, or None where no rule applies. The sentence is lower-cased
    Wikipedia text without punctuation; questions keep its words (the check matches them) and start upper-case."""
    words = sentence.split()
    if len(words) < 4:
        return None
    qs = []
    c = _copula_at(words)
    if c is not None and c + 1 < len(words):
        subj, cop, rest = " ".join(words[:c]), words[c], words[c + 1:]
        years = [j for j, w in enumerate(rest) if YEAR.match(w) and j > 0 and rest[j - 1] == "in"]
        if rest[0] in PARTICIPLES:
            if rest[0] == "born" and len(rest) > 2 and rest[1] == "in" and not YEAR.match(rest[2]):
                qs.append(f"Where {cop} {subj} born?")
            if years:
                qs.append(f"When {cop} {subj} {rest[0]}?")
            if "by" in rest[1:4]:
                qs.append(f"By whom {cop} {subj} {rest[0]}?")
            if rest[0] in ("located", "situated", "based", "buried") and len(rest) > 2 and rest[1] in ("in", "at", "on"):
                qs.append(f"Where {cop} {subj} {rest[0]}?")
        elif rest[0] in ARTICLES and len(rest) >= 2 and words[0] not in ("a", "an"):
            qs.append(f"What {cop} {subj}?")
        elif len(rest) == 1 and any(ch.isdigit() for ch in rest[0]) or (len(rest) > 1 and rest[0].isdigit()):
            qs.append(f"What {cop} {subj}?")
    v = _verb_at(words)
    if v is not None and len(words) - v >= 2:
        who = "What" if words[0] in ARTICLES else "Who"
        qs.append(f"{who} {' '.join(words[v:])}?")
        yi = [j for j, w in enumerate(words) if YEAR.match(w) and j > v and words[j - 1] == "in"]
        if yi:
            j = yi[0]
            rest = words[:j - 1] + words[j + 1:]
            if len(rest) >= 3:
                qs.append(f"In what year {' '.join(rest)}?")
    if not qs:
        return None
    q = rng.choice(qs)
    return q[0].upper() + q[1:]


def cloze_question(sentence, rng):
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
    ap.add_argument("--style", choices=("natural", "cloze", "mixed"), default="natural",
                    help="questions as users ask them (default), the quoted-completion ones, or natural where possible")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    try:
        with open(a.passages, encoding="utf-8") as f:
            lines = [l.strip() for l in f][a.first - 1:a.last]
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"{a.passages}: cannot read: {e}")
    lines = [l for l in lines if len(l.split()) >= 5]
    if len(lines) < 10:
        sys.exit(f"{a.passages}: fewer than 10 usable lines in {a.first}-{a.last}")
    out, tries = [], 0
    while len(out) < a.prompts:
        tries += 1
        if tries > 1000 * a.prompts:
            sys.exit(f"{a.passages}: only {len(out)} of {a.prompts} questions after {tries - 1} tries (--style {a.style})")
        ctx = rng.sample(lines, 3)
        if rng.random() < a.unanswerable:
            target = rng.choice([l for l in rng.sample(lines, 8) if l not in ctx])
        else:
            target = rng.choice(ctx)
        q = natural_question(target, rng) if a.style != "cloze" else None
        if q is None and a.style != "natural":
            q = cloze_question(target, rng)
        if not q:
            continue
        user = "Context:\n" + "".join(f"[{i + 1}] {p}\n" for i, p in enumerate(ctx)) + f"\nQuestion: {q}"
        out.append(chatml(user).replace("\n", "\\n"))
    if a.text and a.text_lines > 0:
        try:
            with open(a.text, encoding="utf-8") as f:
                text = [l.strip() for l in f if l.strip()][:a.text_lines]
        except (OSError, UnicodeDecodeError) as e:
            sys.exit(f"{a.text}: cannot read: {e}")
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
