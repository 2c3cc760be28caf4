#!/bin/bash
# make_model_files_corpus.sh BUILD_DIR [EVOLVE_RUN] — (re)writes the seed corpora of fuzz_config and fuzz_model_files:
#   corpus_config/      each file of configs/ behind the selector byte of the loader that reads it
#   corpus_model_files/ a small plan and a config.json written here, and two intent heads
#                       written by make_intent_seed.c against BUILD_DIR's shared libraries; with EVOLVE_RUN (the
#                       folder of a `seslm evolve` run, e.g. runs/demo/evolve after ci/setup.sh) also its plans
#                       (a pruning plan and a layer-dropping one) and a pruned student's config.json
# A seed is the selector byte (fuzz_*.c: "the first byte picks the loader") followed by the file. The regress_* seeds
# are inputs the fuzzers found (kept so that every CI run replays them); this script leaves them alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: make_model_files_corpus.sh BUILD_DIR [EVOLVE_RUN]}" && pwd)
run=${2:-}

seed() { # seed DIR NAME BYTE FILE
  { printf "\\x$(printf %02x "$3")"; cat "$4"; } > "$here/$1/$2"
}

mkdir -p "$here/corpus_config" "$here/corpus_model_files"
# fuzz_config: 0 generic, 1 policy, 2 gates, 3 dialog, 4 evolve, 5 drift, 6 governance, 7 adapt
seed corpus_config generic_gates 0 "$root/configs/gates.yaml"
seed corpus_config policy_evolve 1 "$root/configs/evolve.yaml"
seed corpus_config gates 2 "$root/configs/gates.yaml"
seed corpus_config dialog 3 "$root/configs/dialog.yaml"
seed corpus_config evolve 4 "$root/configs/evolve.yaml"
seed corpus_config evolve_decoder 4 "$root/configs/evolve-decoder.yaml"
seed corpus_config drift 5 "$root/configs/drift.yaml"
seed corpus_config governance 6 "$root/configs/governance.yaml"
seed corpus_config adapt 7 "$root/configs/adapt.yaml"

# fuzz_model_files: 0 plan, 1 intent head, 2 config.json, 3-6 the sentence-transformers files beside it, 7-8 the
# tokenizer's vocab.txt and tokenizer_config.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/plan.json" <<'JSON'
{"format": "seslm-plan", "target": 0.2, "method": "activation",
 "layers": [{"layer": 0, "remove_heads": [1, 5], "remove_neurons": [0, 7, 300]},
            {"layer": 5, "drop": true}],
 "embeddings": {"id_space": "unchanged"}}
JSON
seed corpus_model_files plan 0 "$tmp/plan.json"
inc=()
for d in "$root"/runtime/*/include "$root"/pipeline/*/include "$root"/runtime/include; do inc+=(-I "$d"); done
cc -std=c11 -O1 "${inc[@]}" "$here/make_intent_seed.c" -o "$tmp/make_intent_seed" -L"$build" -lseslm-assist -lseslm \
   -Wl,-rpath,"$build" -lm
"$tmp/make_intent_seed" "$tmp/linear.safetensors" "$tmp/mlp.safetensors"
seed corpus_model_files intent_linear 1 "$tmp/linear.safetensors"
seed corpus_model_files intent_mlp 1 "$tmp/mlp.safetensors"
cat > "$tmp/config.json" <<'JSON'
{"architectures": ["BertModel"], "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
 "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2,
 "hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
 "seslm_layers": [{"num_attention_heads": 10, "intermediate_size": 1200}, {"num_attention_heads": 12, "intermediate_size": 0},
                  {"num_attention_heads": 0, "intermediate_size": 1536}, {"num_attention_heads": 12, "intermediate_size": 1536},
                  {"num_attention_heads": 12, "intermediate_size": 1536}, {"num_attention_heads": 1, "intermediate_size": 1}],
 "seslm_precision": "int8", "seslm_quantization": {"linear_activations": "int8-dynamic-per-token-symmetric-top1-float"}}
JSON
seed corpus_model_files config_minilm 2 "$tmp/config.json"
# 3-6: the sentence-transformers files of the real model, where it is fetched (data/fetch_model.sh)
m="$root/models/all-MiniLM-L6-v2"
if [ -f "$m/modules.json" ]; then
  seed corpus_model_files st_modules 3 "$m/modules.json"
  seed corpus_model_files st_pooling 4 "$m/1_Pooling/config.json"
  seed corpus_model_files st_bert_config 5 "$m/sentence_bert_config.json"
  seed corpus_model_files st_prompts 6 "$m/config_sentence_transformers.json"
fi
# 7-8: the tokenizer's files (the small vocabulary the tokenizer fuzzer uses, and its tokenizer_config.json)
seed corpus_model_files tok_vocab 7 "$here/vocab_small/vocab.txt"
seed corpus_model_files tok_config 8 "$here/vocab_small/tokenizer_config.json"
# 9: a knowledge base's index for fuzz_model_files.c's fixed passages.txt (3 rows of 8 floats); 10: a rank-2 LoRA
# adapter for the tiny random model of tests/tiny_model.h (hidden 16, 2 layers, attention 16, FFN 24). Both in the
# layouts seslm_kb_save and lora_save write (safetensors, header padded with spaces to 8 bytes)
python3 - "$tmp" <<'PY'
import hashlib, json, struct, sys
tmp = sys.argv[1]
def write(path, tensors, meta):
    header, data = {"__metadata__": meta}, b""
    for name, shape, vals in tensors:
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
passages = b"the kitchen opens at noon\nwe seat groups of up to twelve\nparking is free after six\n"
write(tmp + "/index.safetensors", [("embeddings", [3, 8], [((i * 7 + d * 3) % 11 - 5) / 5.0 for i in range(3) for d in range(8)])],
      {"format": "seslm-kb", "passages_sha256": hashlib.sha256(passages).hexdigest(), "model_sha256": ""})
r, t = 2, []
for l in range(2):
    for kind, out, inp in (("qkv", 48, 16), ("ao", 16, 16), ("ff1", 24, 16), ("ff2", 16, 24)):
        t.append(("layers.%d.%s.lora_A" % (l, kind), [r, inp], [((j * 5 + l) % 9 - 4) / 20.0 for j in range(r * inp)]))
        t.append(("layers.%d.%s.lora_B" % (l, kind), [out, r], [((j * 3 + l) % 7 - 3) / 30.0 for j in range(out * r)]))
write(tmp + "/adapter.safetensors", t, {"format": "seslm-lora", "version": "1", "rank": "2", "alpha": "4", "base_sha256": ""})
PY
seed corpus_model_files kb_index 9 "$tmp/index.safetensors"
seed corpus_model_files lora_tiny 10 "$tmp/adapter.safetensors"
if [ -n "$run" ]; then
  seed corpus_model_files plan_10 0 "$run/03-plan/plan-10.json"
  seed corpus_model_files plan_l4 0 "$run/03-plan/plan-l4.json"
  seed corpus_model_files config_plan40 2 "$run/04-recompile/plan-40/config.json"
fi
echo "seeds written: $here/corpus_config, $here/corpus_model_files"
