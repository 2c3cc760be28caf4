#!/usr/bin/env python3
"""make_gguf_corpus.py - writes small GGUF files (standard library only, deterministic):

  tests/fuzz/corpus_gguf/tiny_llama.gguf   a complete tiny Llama model (byte-level BPE vocabulary of the
                                           256 byte tokens, a few merges, <|im_start|> / <|im_end|>
                                           control tokens; 2 layers, width 64, 4 heads, 2 KV heads, F32 /
                                           F16 / Q4_0 / Q4_1 / Q8_0 weights) - the fuzzer's main seed and the
                                           model of tests/unit/test_decoder_tiny.c
  tests/fuzz/corpus_gguf/truncated.gguf    its first 600 bytes
  tests/fuzz/corpus_gguf/bad_offset.gguf   a tensor whose offset points past the end
  tests/fuzz/corpus_gguf/huge_count.gguf   a header claiming 2^40 tensors

usage: tests/fuzz/make_gguf_corpus.py [OUT_DIR]
"""
import os, random, struct, sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_gguf")
os.makedirs(out, exist_ok=True)
rng = random.Random(17)

U32, F32, BOOL, STRING, ARRAY = 4, 6, 7, 8, 9

def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b

def kv(key, typ, val, arr_type=None):
    o = s(key) + struct.pack("<I", typ)
    if typ == U32: o += struct.pack("<I", val)
    elif typ == F32: o += struct.pack("<f", val)
    elif typ == BOOL: o += struct.pack("<B", val)
    elif typ == STRING: o += s(val)
    elif typ == ARRAY:
        o += struct.pack("<IQ", arr_type, len(val))
        for v in val:
            o += s(v) if arr_type == STRING else struct.pack("<i", v)
    return o

def f16(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]

def quant(typ, vals):  # vals: one row (multiple of 32)
    o = b""
    for b0 in range(0, len(vals), 32):
        blk = vals[b0:b0 + 32]
        if typ == 0: o += struct.pack("<%df" % len(blk), *blk)
        elif typ == 1: o += struct.pack("<%de" % len(blk), *blk)
        elif typ == 2:  # Q4_0
            amax = max(blk, key=abs); d = amax / -8 if amax else 0.0; idd = 1 / d if d else 0.0
            q = [min(15, int(v * idd + 8.5)) for v in blk]
            o += struct.pack("<H", f16(d)) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
        elif typ == 3:  # Q4_1
            mn, mx = min(blk), max(blk); d = (mx - mn) / 15 if mx > mn else 0.0; idd = 1 / d if d else 0.0
            q = [min(15, int((v - mn) * idd + 0.5)) for v in blk]
            o += struct.pack("<HH", f16(d), f16(mn)) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
        elif typ == 8:  # Q8_0
            amax = max(abs(v) for v in blk); d = amax / 127; idd = 1 / d if d else 0.0
            o += struct.pack("<H", f16(d)) + struct.pack("<32b", *[round(v * idd) for v in blk])
    return o

def gguf(kvs, tensors, align=32, bad_offset=False, n_tensors=None):
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors if n_tensors is not None else len(tensors), len(kvs))
    head += b"".join(kvs)
    infos, data = b"", b""
    for name, typ, shape, blob in tensors:
        pad = (-len(data)) % align
        data += b"\0" * pad
        off = len(data) + (1 << 30 if bad_offset and name == tensors[-1][0] else 0)
        infos += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", typ, off)
        data += blob
    body = head + infos
    body += b"\0" * ((-len(body)) % align)
    return body + data

# GPT-2 byte alphabet
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
alpha = {b: chr(c) for b, c in zip(bs, cs)}
tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [alpha[b] for b in range(256)]
merges = []
for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (alpha[32], "w"), ("o", "r"), (alpha[32] + "w", "or"),
             ("l", "d"), (alpha[32] + "wor", "ld"), ("1", "2")]:
    merges.append(a + " " + b)
    if a + b not in tokens: tokens.append(a + b)
types = [3, 3, 3] + [1] * (len(tokens) - 3)
V, C, L, H, HKV, F = len(tokens), 64, 2, 4, 2, 96
V_pad = V  # rows of token_embd
kvs = [kv("general.architecture", STRING, "llama"), kv("general.alignment", U32, 32),
       kv("llama.block_count", U32, L), kv("llama.context_length", U32, 256), kv("llama.embedding_length", U32, C),
       kv("llama.feed_forward_length", U32, F), kv("llama.attention.head_count", U32, H),
       kv("llama.attention.head_count_kv", U32, HKV), kv("llama.rope.freq_base", F32, 10000.0),
       kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), kv("llama.rope.dimension_count", U32, C // H),
       kv("tokenizer.ggml.model", STRING, "gpt2"), kv("tokenizer.ggml.pre", STRING, "smollm"),
       kv("tokenizer.ggml.tokens", ARRAY, tokens, STRING), kv("tokenizer.ggml.token_type", ARRAY, types, 5),
       kv("tokenizer.ggml.merges", ARRAY, merges, STRING), kv("tokenizer.ggml.bos_token_id", U32, 1),
       kv("tokenizer.ggml.eos_token_id", U32, 2),
       kv("tokenizer.chat_template", STRING, "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are tiny.<|im_end|>\n' }}{% endif %}")]

def mat(typ, N, K, scale):
    blob = b""
    for _ in range(N):
        blob += quant(typ, [rng.gauss(0, scale) for _ in range(K)])
    return blob

tensors = [("token_embd.weight", 8, [C, V], mat(8, V, C, 0.5)),
           ("output_norm.weight", 0, [C], quant(0, [1.0 + rng.gauss(0, 0.1) for _ in range(C)]))]
wtypes = [3, 2, 8, 1, 0, 3, 3]  # q k v o gate up down: every weight type appears
for l in range(L):
    tensors += [(f"blk.{l}.attn_norm.weight", 0, [C], quant(0, [1.0 + rng.gauss(0, 0.1) for _ in range(C)])),
                (f"blk.{l}.ffn_norm.weight", 0, [C], quant(0, [1.0 + rng.gauss(0, 0.1) for _ in range(C)]))]
    for (nm, N, K), typ in zip([("attn_q", C, C), ("attn_k", HKV * C // H, C), ("attn_v", HKV * C // H, C),
                                ("attn_output", C, C), ("ffn_gate", F, C), ("ffn_up", F, C), ("ffn_down", C, F)], wtypes):
        tensors.append((f"blk.{l}.{nm}.weight", typ, [K, N], mat(typ, N, K, 0.15)))

full = gguf(kvs, tensors)
open(os.path.join(out, "tiny_llama.gguf"), "wb").write(full)
open(os.path.join(out, "truncated.gguf"), "wb").write(full[:600])
open(os.path.join(out, "bad_offset.gguf"), "wb").write(gguf(kvs, tensors, bad_offset=True))
open(os.path.join(out, "huge_count.gguf"), "wb").write(gguf(kvs[:3], [], n_tensors=1 << 40))
print("make_gguf_corpus: wrote", out, len(full), "bytes")
