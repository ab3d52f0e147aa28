#!/usr/bin/env bash
# Makes the fuzz seed corpora in fuzz/seeds/<target>/ from real files: the first images and
# labels of Fashion-MNIST's test set (IDX plain and gzip, and .npy), the first images of an MNIST JSON digit
# file, the sources, deltas and results that `graft run` writes for fuzz/seed-suite.toml (every
# method, a sequence), PyTorch state dicts of the core fixtures, and every suite in the repo.
# Deterministic: the same commit gives the same seeds. Takes a few seconds after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seeds=$root/fuzz/seeds
data=${GRAFT_DATA_DIR:-$root/data}
cargo build -q --release -p graft-harness
graft=$root/target/release/graft
"$graft" --data-dir "$data" data fetch --dataset mnist --dataset fashion-mnist >/dev/null

rm -rf "$seeds"
mkdir -p "$seeds"/{idx,npy,mnist_json,checkpoint,delta_restore,torch_import,suite,results}
fashion=$(find /usr/share/datasets/fashion-mnist -name 't10k-images-idx3-ubyte*' | head -1)
python3 - "$fashion" "${fashion/images-idx3/labels-idx1}" "$data/mnist/3.json" "$seeds" <<'PY'
import gzip, json, struct, sys
images, labels, digit, seeds = sys.argv[1:]
def read(p):
    b = open(p, 'rb').read()
    return gzip.decompress(b) if b[:2] == b'\x1f\x8b' else b
img, lab = read(images), read(labels)
for n in (1, 6):
    cut = struct.pack('>IIII', 0x803, n, 28, 28) + img[16:16 + n * 784]
    lcut = struct.pack('>II', 0x801, n) + lab[8:8 + n]
    for name, b in ((f'images-{n}', cut), (f'labels-{n}', lcut)):
        open(f'{seeds}/idx/{name}', 'wb').write(b)
        open(f'{seeds}/idx/{name}.gz', 'wb').write(gzip.compress(b, mtime=0))
def npy(path, descr, shape, payload):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ''.join(f'{d}, ' for d in shape))
    pad = 64 - (10 + len(header) + 1) % 64
    open(path, 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header) + pad + 1) + header.encode() + b' ' * pad + b'\n' + payload)
n = 6
npy(f'{seeds}/npy/images-u8.npy', '|u1', (n, 28, 28), img[16:16 + n * 784])
npy(f'{seeds}/npy/labels-i8.npy', '<i8', (n,), struct.pack(f'<{n}q', *lab[8:8 + n]))
rgb = b''.join(struct.pack('<3f', *([v / 255] * 3)) for v in img[16:16 + 2 * 784])
npy(f'{seeds}/npy/images-f4-nhwc.npy', '<f4', (2, 28, 28, 3), rgb)
values = json.load(open(digit))['data']
for n in (1, 2):
    open(f'{seeds}/mnist_json/3-first-{n}.json', 'w').write(json.dumps({'data': values[:n * 784]}))
PY

run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
(cd "$run" && "$graft" --data-dir "$data" run "$root/fuzz/seed-suite.toml" --results "$run/seeds.jsonl" >"$run/log" 2>&1) || { cat "$run/log"; exit 1; }
cp "$run/sources/d04.safetensors" "$seeds/source.safetensors"
cp "$run/sources/d04.safetensors" "$seeds/checkpoint/source"
# One delta per method (digits-1to4): the checkpoint and restore targets' seeds.
for d in "$run"/deltas/d04/digits-1to4/*/s0/*.safetensors; do
  method=$(basename "$(dirname "$(dirname "$d")")")
  cp "$d" "$seeds/checkpoint/delta-$method"
  cp "$d" "$seeds/delta_restore/$method"
done
head -c 20000 "$run/seeds.jsonl" > "$seeds/results/runs.jsonl"
head -c 20000 "$run/seeds.sequences.jsonl" > "$seeds/results/sequences.jsonl"

# The torch_import target reads a selector byte (architecture, strict, prefix) before the file.
i=0
for f in resnet18_w8 resnet50_w4 mobilenetv2_0.25 vgg11_bn_d32 wrn_10_1; do
  { printf "\\x$(printf %02x $i)"; cat "core/tests/fixtures/$f.safetensors"; } > "$seeds/torch_import/$f"
  i=$((i + 1))
done

for s in harness/suites/*.toml harness/experiments/*/*.toml fuzz/seed-suite.toml; do
  cp "$s" "$seeds/suite/$(echo "$s" | tr / _)"
done
echo "seeds: $(find "$seeds" -type f | wc -l) files in $seeds"
