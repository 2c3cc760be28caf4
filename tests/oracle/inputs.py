#!/usr/bin/env python3
"""Build the oracle input set deterministically (fixed seed, no model needed).

Usage: inputs.py SHARED_DATA_DIR OUT_JSONL

SHARED_DATA_DIR is the folder holding wiki_sents/, snips/, clinc150/, stsb/
(in this workspace: ../shared/data relative to the repository root).
Writes one JSON object per line: {"id": n, "cat": "...", "text": "..."}.
Only the Python standard library is used, so the output does not depend on
any package version. The text is written with ensure_ascii=False (UTF-8);
control characters (< U+0020) therefore appear as JSON escapes (\\u0000, \\t ...).
"""
import csv
import json
import random
import sys
from pathlib import Path

SEED = 20240611


def read_lines(p):
    with open(p, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def real_sentences(data, rng):
    out = []
    wiki = read_lines(data / "wiki_sents" / "all_wiki_sents.txt")
    out += [("wiki", s) for s in rng.sample(wiki, 60)]

    snips = []
    for l in read_lines(data / "snips" / "snips_validate_derived.tsv")[1:]:
        snips.append(l.split("\t")[0])
    out += [("snips", s) for s in rng.sample(snips, 50)]

    clinc = json.load(open(data / "clinc150" / "data_full.json", encoding="utf-8"))
    out += [("clinc150", s) for s, _ in rng.sample(clinc["test"], 40)]
    out += [("clinc150_oos", s) for s, _ in rng.sample(clinc["oos_test"], 10)]

    with open(data / "stsb" / "stsb-en-dev.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    stsb = [r[0] for r in rows] + [r[1] for r in rows]
    out += [("stsb", s) for s in rng.sample(stsb, 40)]
    return out, wiki


def long_inputs(wiki, rng):
    out = []
    # Concatenated wiki sentences: ~15-25 words each, lowercased, no punctuation.
    for n_sent in (14, 18, 22, 30, 40, 60, 80, 120):
        out.append(("long_wiki", ". ".join(rng.sample(wiki, n_sent)) + "."))
    # Exact length boundaries with words that are single wordpieces in the
    # uncased BERT vocab: n words -> n + 2 tokens ([CLS] ... [SEP]).
    words = "the cat sat on a mat and a dog ran to the big red house".split()
    for n in (126, 127, 128, 253, 254, 255, 300, 510, 511, 600):
        out.append((f"long_words_{n}", " ".join(words[i % len(words)] for i in range(n))))
    # Mixed long text with punctuation, numbers and case (wordpiece splits).
    para = ("The International Conference on Machine-Learning (ICML'2023) received 6,538 "
            "submissions; only 1,827 were accepted!  Researchers from Zürich, Kraków and "
            "São Paulo presented un-tokenizable-looking compounds like electroencephalography. ")
    out.append(("long_mixed", para * 6))
    out.append(("long_mixed", (para * 12).upper()))
    # Long CJK (each ideograph is its own token) and long emoji.
    zh = "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。"
    out.append(("long_cjk", zh * 12))
    out.append(("long_emoji", " ".join(["😀", "🎉", "👍🏽", "🇫🇷", "❤️"] * 70)))
    out.append(("long_one_line_no_spaces", "abcdefghij" * 80))
    out.append(("long_whitespace_tail", "short text" + " " * 3000))
    out.append(("long_punct", "!?.," * 200))
    return out


HANDCRAFTED = [
    # empty / whitespace
    ("empty", ""),
    ("whitespace", " "),
    ("whitespace", "   \t  "),
    ("whitespace", "\n\n\n"),
    ("whitespace", "\r\n"),
    ("whitespace", "\u00a0\u3000\u2003\u2009"),
    ("whitespace", "  leading and trailing spaces  "),
    ("whitespace", "tabs\tbetween\twords\tand\nnewlines\r\nhere"),
    # control / format characters
    ("control", "nul\u0000byte inside"),
    ("control", "\u0000"),
    ("control", "start\u0001of\u0002heading\u001bescape\u007fdel"),
    ("control", "zero\u200bwidth\u200bspace"),
    ("control", "\ufeffbyte order mark at start"),
    ("control", "soft\u00adhyphen\u00adated"),
    ("control", "zwnj\u200cand zwj\u200djoiners"),
    ("control", "left\u200eto\u200fright marks \u202aembedding\u202c"),
    ("control", "replacement \ufffd char"),
    ("control", "line\u2028separator and paragraph\u2029separator"),
    ("control", "next\u0085line c1 control"),
    ("control", "private use \ue000\uf8ff and unassigned \u0378"),
    ("control", "variation selector \ufe0f and tag \U000e0041"),
    # accented Latin
    ("accents", "café"),
    ("accents", "Café au lait, naïve résumé, déjà vu, coöperate"),
    ("accents", "Ångström and Ørsted met Æsop"),
    ("accents", "Straße, Maß, weiß, STRASSE"),
    ("accents", "Zażółć gęślą jaźń, Łódź, Wrocław, Gdańsk"),
    ("accents", "Tiếng Việt có dấu: người, được, những, trường"),
    ("accents", "Ça va? Où est la Forêt-Noire? Crème brûlée!"),
    ("accents", "señor, niño, mañana, ¿qué pasa? ¡olé!"),
    ("accents", "São João, ação, coração"),
    ("accents", "Dvořák, Škoda, Čapek, Ďáblice"),
    ("accents", "Þórr, Ðiðrik, ætt"),
    ("accents", "İstanbul, ığdır, ŞİŞLİ"),
    ("accents", "cafe\u0301 with combining acute (NFD input)"),
    ("accents", "e\u0301\u0302\u0303\u0304 stacked combining marks"),
    ("accents", "Z\u0351\u0364\u0350a\u0353\u0359l\u0356g\u0355o text"),
    ("accents", "\u0301 leading combining mark"),
    ("accents", "ﬁ ligature ﬂ and ǅ digraph and ĳ"),
    # Greek / Cyrillic
    ("greek", "Η γρήγορη καφέ αλεπού πηδάει"),
    ("greek", "ΟΔΥΣΣΕΥΣ and ΣΙΣΥΦΟΣ (final sigma)"),
    ("cyrillic", "Съешь же ещё этих мягких французских булок"),
    ("cyrillic", "Україна, Київ, ґанок, їжак; Београд, Ђорђе"),
    # CJK
    ("cjk", "我爱自然语言处理。"),
    ("cjk", "今日は良い天気ですね。東京タワーに行きましょう！"),
    ("cjk", "カタカナだけのぶんしょう"),
    ("cjk", "ひらがなだけです"),
    ("cjk", "안녕하세요, 세계! 한국어 문장입니다."),
    ("cjk", "中文English混合text测试123"),
    ("cjk", "𠀀𠀁 extension B and 豈 compatibility ideograph"),
    ("cjk", "半角ｶﾀｶﾅ and ideographic full stop。and comma、"),
    # fullwidth / math / styled
    ("fullwidth", "ＡＢＣ　ｄｅｆ　１２３！？"),
    ("fullwidth", "Ｈｅｌｌｏ，Ｗｏｒｌｄ．"),
    ("styled", "𝐁𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝕕𝕠𝕦𝕓𝕝𝕖"),
    ("styled", "① ② ③ Ⅻ ¼ ½ ² ³ ℃ ™ ℡"),
    # other scripts
    ("script", "தமிழ் ஒரு அழகான மொழி"),
    ("script", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"),
    ("script", "مرحبا بالعالم، كيف حالك؟"),
    ("script", "שלום עולם, מה שלומך?"),
    ("script", "नमस्ते दुनिया, आप कैसे हैं?"),
    ("script", "ሰላም ዓለም"),
    ("script", "Բարեւ աշխարհ"),
    ("script", "გამარჯობა მსოფლიო"),
    ("script", "ᚠᚢᚦᚨᚱᚲ runes"),
    ("script", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ"),
    ("script", "বাংলা ভাষা"),
    ("script", "ꯃꯤꯇꯩ ꯃꯌꯦꯛ"),
    # emoji
    ("emoji", "I love pizza 🍕🍕🍕"),
    ("emoji", "😀😃😄😁"),
    ("emoji", "family 👨‍👩‍👧‍👦 and rainbow flag 🏳️‍🌈"),
    ("emoji", "thumbs up 👍🏻👍🏼👍🏽👍🏾👍🏿"),
    ("emoji", "flags 🇺🇸🇯🇵🇩🇪 keycap 1️⃣ #️⃣"),
    ("emoji", "newer emoji 🫠🫨🪿 and ☺ ♥ ✓ ★"),
    ("emoji", "🙂"),
    # punctuation
    ("punct", "Hello, world!"),
    ("punct", "!!!???...,,,;;;:::"),
    ("punct", "\"quoted\" 'single' «guillemets» „German“ ‘curly’ “double”"),
    ("punct", "em—dash en–dash hyphen-minus − minus ‐ hyphen"),
    ("punct", "(parens) [brackets] {braces} <angles>"),
    ("punct", "a/b\\c|d_e~f^g`h@i#j$k%l&m*n+o=p"),
    ("punct", "…‽⁂※§¶†‡•‰"),
    ("punct", "Prices: €100, £50, ¥30, $20, ₹99, ₿0.1"),
    ("punct", "¡¿«»‹›"),
    ("punct", "don't won't it's y'all O'Neil rock'n'roll"),
    # numbers
    ("numbers", "3.14159265358979323846"),
    ("numbers", "1,000,000 and 1.000.000 and 1 000 000"),
    ("numbers", "2024-01-15T13:45:00Z"),
    ("numbers", "+1 (555) 123-4567"),
    ("numbers", "0x1F 0b1010 0o777 1e-10 -42 +7"),
    ("numbers", "1234567890123456789012345678901234567890"),
    ("numbers", "٠١٢٣٤٥٦٧٨٩ ० १ २ 一二三 ⅰⅱⅲ"),
    # URLs / emails / code
    ("url", "https://example.com/path/to/page?q=hello+world&lang=en#section-2"),
    ("url", "Visit www.wikipedia.org or mailto:someone@example.co.uk today"),
    ("url", "ftp://user:pass@192.168.0.1:8080/file.tar.gz"),
    ("code", "def f(x):\n    return x ** 2  # square"),
    ("code", "int main(void) { printf(\"%d\\n\", 42); return 0; }"),
    ("code", "<div class=\"main\"><p>Hello &amp; welcome</p></div>"),
    ("code", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}"),
    ("code", "SELECT * FROM users WHERE id = 1 AND name LIKE '%bob%';"),
    ("code", "git commit -m \"fix: handle UTF-8\" && ./configure --prefix=/usr"),
    ("code", "camelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case"),
    # mixed case
    ("case", "HeLLo WoRLD"),
    ("case", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"),
    ("case", "iPhone, eBay, McDonald's, NASA, YouTube"),
    ("case", "the quick brown fox jumps over the lazy dog"),
    # repeated characters
    ("repeat", "a" * 50),
    ("repeat", "ha" * 40),
    ("repeat", "." * 60),
    ("repeat", "😂" * 30),
    ("repeat", "no no no no no no no no no no"),
    ("repeat", "x"),
    ("repeat", "?"),
    # very long single words (WordPiece max_input_chars_per_word = 100)
    ("longword", "a" * 99),
    ("longword", "b" * 100),
    ("longword", "c" * 101),
    ("longword", "supercalifragilisticexpialidocious" * 3),
    ("longword", "pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + " is long"),
    ("longword", "é" * 101),
    ("longword", "word " + "x" * 150 + " word"),
    ("longword", "ünïcödé" * 15),
    ("longword", "Antidisestablishmentarianism"),
    # special-token look-alikes
    ("special", "[CLS] [SEP] [PAD] [MASK] [UNK]"),
    ("special", "[cls]hello[sep]"),
    ("special", "##ing ##s wordpiece prefix"),
    # single characters
    ("single", "A"),
    ("single", "é"),
    ("single", "中"),
    ("single", "😀"),
    ("single", "\t"),
]

# Codepoint pools for the seeded random strings.
POOLS = [
    [chr(c) for c in range(0x20, 0x7f)],                 # ASCII printable
    [chr(c) for c in range(0xc0, 0x180)],                # Latin-1 + Latin Ext-A
    [chr(c) for c in range(0x300, 0x370)],               # combining marks
    [chr(c) for c in range(0x391, 0x3ca)],               # Greek
    [chr(c) for c in range(0x410, 0x450)],               # Cyrillic
    [chr(c) for c in range(0x4e00, 0x4e80)],             # CJK
    [chr(c) for c in range(0x3041, 0x3097)],             # Hiragana
    [chr(c) for c in range(0xac00, 0xac40)],             # Hangul
    [chr(c) for c in range(0x1f600, 0x1f640)],           # Emoji
    [chr(c) for c in range(0x2000, 0x2070)],             # general punctuation
    [chr(c) for c in range(0xff01, 0xff5f)],             # fullwidth
    ["\t", "\n", "\r", "\u00a0", "\u200b", "\u00ad", "\ufeff", "\u0001", " ", " ", " "],
]


def random_inputs(rng, vocab_words):
    out = []
    for i in range(30):
        n = rng.randint(1, 40)
        pools = rng.sample(POOLS, rng.randint(1, 4))
        s = "".join(rng.choice(rng.choice(pools)) for _ in range(n))
        out.append(("random_chars", s))
    for i in range(15):
        ws = rng.sample(vocab_words, rng.randint(3, 20))
        ws = [w.upper() if rng.random() < 0.2 else (w.capitalize() if rng.random() < 0.3 else w) for w in ws]
        seps = [" ", " ", " ", ", ", "-", "  ", "\t", "'s ", "... "]
        s = "".join(w + rng.choice(seps) for w in ws).strip()
        out.append(("random_words", s))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = Path(sys.argv[1])
    out_path = Path(sys.argv[2])
    rng = random.Random(SEED)
    real, wiki = real_sentences(data, rng)
    vocab_words = sorted({w for s in wiki[:3000] for w in s.split() if w.isalpha()})
    items = real + HANDCRAFTED + long_inputs(wiki, rng) + random_inputs(rng, vocab_words)
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for i, (cat, text) in enumerate(items):
            f.write(json.dumps({"id": i, "cat": cat, "text": text}, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} inputs to {out_path}")


if __name__ == "__main__":
    main()
