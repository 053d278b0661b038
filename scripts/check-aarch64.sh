#!/usr/bin/env bash
# The edge bundle on aarch64, under qemu user-mode emulation, against x86: same labels, same τ decisions, each
# probability within one quantization step (1/256). `make check-aarch64`; not part of `make test` or CI.
#
#   scripts/check-aarch64.sh                                    # tiny phantom run made here, its test images
#   RUN=runs/NAME IMAGES=DIR scripts/check-aarch64.sh           # an existing run's export, your images
#
# Environment: PY (x86 Python with the project, default .venv/bin/python), RUN, IMAGES, OUT (default
# runs/aarch64-check), NC_AARCH64_CACHE (the arm64 root, default runs/.cache/aarch64; reused when present),
# NC_AARCH64_MODE=proot (force the proot fallback), NC_QEMU_CPUS (default "cortex-a72 cortex-a76": the cores of a
# Pi 4 and a Pi 5, so XNNPACK's INT8 kernels run without and with the dot product). Needs root and apt.
#
# Steps: arm64 Debian bookworm root (Python 3.11) → `cli.py bundle` of the run → unpacked into the root → a venv
# there with the bundle's requirements.txt (aarch64 wheels from PyPI; no TensorFlow) → `cli.py predict --json` in
# the root on the images, once per emulated CPU → the same predict from the same bundle on x86 →
# `python -m neurocascade.edge.crosscheck` writes OUT/result.json (verdict per CPU, max |Δp|, what the emulated Python saw,
# per-stage wall times) and exits 1 when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/aarch64-check}
CACHE=${NC_AARCH64_CACHE:-runs/.cache/aarch64}
ROOT=$CACHE/bookworm-arm64
ROOTSH=scripts/aarch64-root.sh
CPUS=${NC_QEMU_CPUS:-cortex-a72 cortex-a76}  # the cores of a Raspberry Pi 4 and 5
say() { echo "check-aarch64: $*" >&2; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$2"; }

PY=$(command -v "$PY" || true)
[[ -n $PY && -x $PY ]] || { echo "check-aarch64: ${PY:-.venv/bin/python} not found; make install, or set PY" >&2; exit 2; }
[[ $PY == /* ]] || PY=$PWD/$PY
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# 1. the arm64 root
t0=$(now)
reused=$([[ -f $ROOT/.neurocascade-root.json ]] && echo True || echo False)  # a Python literal below
"$ROOTSH" "$ROOT"
t_root=$(secs "$t0" "$(now)")

# 2. the run: given, or a tiny cascade on phantoms (configs/test.toml: EfficientNetB0 at 32 px, minutes on 2 cores)
t0=$(now)
if [[ -z ${RUN:-} ]]; then
    RUN=$OUT/tiny-run
    if [[ ! -f $RUN/export/export-manifest.json ]]; then
        say "no RUN given: training a tiny cascade on phantoms ($RUN)"
        rm -rf "$OUT/phantoms" "$RUN"
        "$PY" cli.py make-phantoms --config configs/test.toml --out "$OUT/phantoms" >&2
        "$PY" cli.py train-cascade --config configs/test.toml --data "$OUT/phantoms" --out "$RUN" \
            --set export.after_training=true >&2
    fi
    IMAGES=${IMAGES:-$OUT/phantoms/Testing}
fi
[[ -n ${IMAGES:-} ]] || { echo "check-aarch64: RUN given without IMAGES (a folder of .jpg/.png)" >&2; exit 2; }
t_run=$(secs "$t0" "$(now)")

# 3. the bundle, and the images under distinct flat names (matched by name across the two machines)
t0=$(now)
"$PY" cli.py bundle --run "$RUN" --out "$OUT/bundle.tar.gz" --force >&2
top=$(tar tzf "$OUT/bundle.tar.gz" | sed -n '1s,/.*,,p')  # sed reads it all: no SIGPIPE under pipefail
rm -rf "$OUT/unpacked" "$OUT/images" "$ROOT/opt/nc"
mkdir -p "$OUT/unpacked" "$OUT/images" "$ROOT/opt/nc"
tar xzf "$OUT/bundle.tar.gz" -C "$OUT/unpacked"
tar xzf "$OUT/bundle.tar.gz" -C "$ROOT/opt/nc"
find "$IMAGES" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | while read -r f; do
    rel=${f#"$IMAGES"/}
    cp "$f" "$OUT/images/${rel//\//__}"
done
cp -r "$OUT/images" "$ROOT/opt/nc/images"
t_bundle=$(secs "$t0" "$(now)")
say "bundle $top, $(ls "$OUT/images" | wc -l) images"

# 4. the edge install in the root (aarch64 wheels); the venv is kept in the root and reused
t0=$(now)
"$ROOTSH" --run "$ROOT" /bin/sh -c "test -x /opt/nc-venv/bin/python || python3 -m venv /opt/nc-venv; \
    /opt/nc-venv/bin/pip install --disable-pip-version-check -q -r /opt/nc/$top/requirements.txt" >&2
t_install=$(secs "$t0" "$(now)")

# 5. predict on aarch64 (emulated), once per emulated CPU: XNNPACK picks its INT8 kernels from the CPU's features
#    (cortex-a72, a Pi 4's core: NEON without the dot product; cortex-a76, a Pi 5's: with it)
cp scripts/aarch64_probe.py "$ROOT/opt/nc/aarch64_probe.py"
others=() probes="{}" t_arm="{}"
for cpu in $CPUS; do
    t0=$(now)
    "$ROOTSH" --run "$ROOT" /bin/sh -c "cd /opt/nc/$top && QEMU_CPU=$cpu /opt/nc-venv/bin/python cli.py predict \
        --models export /opt/nc/images --json" > "$OUT/aarch64-$cpu.json" 2> "$OUT/aarch64-$cpu.stderr" \
        || { say "predict on aarch64 ($cpu) failed:"; tail -5 "$OUT/aarch64-$cpu.stderr" >&2; exit 1; }
    t=$(secs "$t0" "$(now)")
    "$ROOTSH" --run "$ROOT" /bin/sh -c "QEMU_CPU=$cpu PYTHONPATH=/opt/nc/$top /opt/nc-venv/bin/python \
        /opt/nc/aarch64_probe.py" > "$OUT/aarch64-$cpu-env.json"
    # edge-bench under emulation: the path each model takes (XNNPACK's share of the graph, the kernel family for
    # this core's features), not times; a few images of the set so the cascade runs both of its paths
    "$ROOTSH" --run "$ROOT" /bin/sh -c "cd /opt/nc/$top && QEMU_CPU=$cpu /opt/nc-venv/bin/python cli.py edge-bench \
        --models export --threads 1 --images /opt/nc/images --max-images 8 --out /opt/nc/bench-$cpu.json" \
        > "$OUT/aarch64-$cpu-bench.txt" 2>&1 \
        || { say "edge-bench on aarch64 ($cpu) failed:"; tail -5 "$OUT/aarch64-$cpu-bench.txt" >&2; exit 1; }
    cp "$ROOT/opt/nc/bench-$cpu.json" "$OUT/aarch64-$cpu-bench.json"
    # predict silences LiteRT's start-up line; the bench's delegate partitions say whether XNNPACK ran
    probes=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); e=json.load(open(sys.argv[3]));
rows=json.load(open(sys.argv[4]))["models"]; e["xnnpack_delegate_created"]=all(r["xnnpack"]["partitions"] > 0 for r in rows)
e["xnnpack_paths"]={r["stage"] + " " + r["variant"]: r["xnnpack"]["path"] for r in rows}; d[sys.argv[2]]=e; print(json.dumps(d))' \
        "$probes" "$cpu" "$OUT/aarch64-$cpu-env.json" "$OUT/aarch64-$cpu-bench.json")
    t_arm=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d[sys.argv[2]]=float(sys.argv[3]); print(json.dumps(d))' \
        "$t_arm" "$cpu" "$t")
    others+=("$cpu=$OUT/aarch64-$cpu.json")
    say "predict on aarch64 ($cpu, emulated): $t s"
done

# 6. predict on x86 from the same unpacked bundle
t0=$(now)
(cd "$OUT/unpacked/$top" && "$PY" cli.py predict --models export "$OUT/images" --json) \
    > "$OUT/x86.json" 2> "$OUT/x86.stderr"
t_x86=$(secs "$t0" "$(now)")

# 7. compare and record
python3 - "$OUT/extra.json" "$ROOT/.neurocascade-root.json" "$probes" "$t_arm" <<EOF
import json, sys
root, probes, t_arm = json.load(open(sys.argv[2])), json.loads(sys.argv[3]), json.loads(sys.argv[4])
json.dump({"bundle": "$top", "run": "$RUN", "images": "$IMAGES", "root": "$ROOT", "root_reused": $reused,
           "root_info": root, "aarch64": probes, "x86_python": "$PY",
           "seconds": {"root": $t_root, "run": $t_run, "bundle": $t_bundle, "install": $t_install,
                       "predict_aarch64_emulated": t_arm, "predict_x86": $t_x86,
                       "total": $(date +%s) - $start}}, open(sys.argv[1], "w"), indent=2)
EOF
status=0
"$PY" -m neurocascade.edge.crosscheck "$OUT/x86.json" "${others[@]}" --extra "$OUT/extra.json" --out "$OUT/result.json" \
    || status=$?
say "result: $OUT/result.json; wall time $(( $(date +%s) - start )) s"
exit $status
