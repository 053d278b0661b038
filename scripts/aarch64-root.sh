#!/usr/bin/env bash
# An arm64 Debian bookworm root (Python 3.11) for running the edge install under qemu user-mode emulation.
#
#   scripts/aarch64-root.sh ROOT          # builds ROOT once (reused when ROOT/.neurocascade-root.json exists)
#   scripts/aarch64-root.sh --run ROOT CMD...   # runs CMD inside ROOT as arm64 (chroot, or proot as a fallback)
#
# Needs root and apt: installs qemu-user-static, binfmt-support, mmdebstrap, debootstrap and proot if missing.
# How a foreign binary is run, in order of preference (the one used is written to ROOT/.neurocascade-root.json):
#   binfmt  — qemu-aarch64 registered with binfmt_misc (flag F: the interpreter is opened at registration, so
#             it works inside a chroot without copying qemu into it); then a plain chroot runs arm64 programs,
#             and every program they start, under emulation;
#   proot   — where binfmt_misc cannot be mounted or written: `proot -q qemu-aarch64-static` intercepts every
#             execve and puts the emulator in front (slower; debootstrap --foreign + its second stage under proot).
set -euo pipefail

PACKAGES="python3,python3-venv,python3-pip,ca-certificates"
STAMP=.neurocascade-root.json

log() { echo "aarch64-root: $*" >&2; }

need_tools() {
    local missing=()
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v proot >/dev/null || missing+=(proot)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Register qemu-aarch64 with binfmt_misc; prints "binfmt" when arm64 programs can be exec'd directly, else "proot".
emulation_mode() {
    if [[ "${NC_AARCH64_MODE:-}" == proot ]]; then echo proot; return; fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    fi
    if [[ -e /proc/sys/fs/binfmt_misc/register ]]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || true
    fi
    if grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
            && grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
        echo binfmt
    else
        echo proot
    fi
}

# Run a command inside the root as arm64. Mounts live in a private mount namespace and vanish with it.
# /sys is a stub holding only the CPU lists: LiteRT's cpuinfo library segfaults under qemu 7.2 when it reads the
# x86 host's real /sys (and without the lists it gives up and XNNPACK is not used at all); with them, XNNPACK runs
# and picks its kernels from the emulated CPU's HWCAP (QEMU_CPU=cortex-a72: NEON only; cortex-a76: dot product).
run_in_root() {
    local root=$1 mode; shift
    mode=${NC_AARCH64_MODE:-$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mode"])' \
                                "$root/$STAMP" 2>/dev/null || emulation_mode)}
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true  # pip needs the host's resolver
    # and the host's trust store: where HTTPS goes through a proxy with its own CA, only the host's bundle has it
    cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/certs/host-ca-certificates.crt"
    local env=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
               PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt)
    local var
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [[ -n ${!var:-} ]] && env+=("$var=${!var}")
    done
    if [[ $mode == binfmt ]]; then
        unshare --mount --propagation private bash -c '
            root=$1; shift
            mount -t proc proc "$root/proc"
            mount -t tmpfs -o size=1m sys-stub "$root/sys"
            mkdir -p "$root/sys/devices/system/cpu"
            cp /sys/devices/system/cpu/possible /sys/devices/system/cpu/present "$root/sys/devices/system/cpu/"
            mount --rbind /dev "$root/dev"
            exec chroot "$root" /usr/bin/env -i "$@"
        ' _ "$root" "${env[@]}" "$@"
    else
        local stub
        stub=$(mktemp -d)
        mkdir -p "$stub/devices/system/cpu"
        cp /sys/devices/system/cpu/possible /sys/devices/system/cpu/present "$stub/devices/system/cpu/"
        local rc=0
        proot -q qemu-aarch64-static -r "$root" -0 -b /proc -b "$stub:/sys" -b /dev -w / \
            /usr/bin/env -i "${env[@]}" "$@" || rc=$?
        rm -rf "$stub"
        return $rc
    fi
}

build_root() {
    local root=$1 mode start
    mode=$(emulation_mode)
    start=$(date +%s)
    mkdir -p "$(dirname "$root")"
    rm -rf "$root.tmp"
    log "building an arm64 bookworm root in $root (mode $mode); the first time this takes minutes"
    if [[ $mode == binfmt ]]; then
        mmdebstrap --quiet --mode=root --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$root.tmp"
    else
        debootstrap --foreign --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$root.tmp" >/dev/null
        proot -q qemu-aarch64-static -r "$root.tmp" -0 -b /proc -b /sys -b /dev -w / \
            /debootstrap/debootstrap --second-stage >/dev/null
    fi
    local python probe='import platform; print(platform.python_version(), platform.machine())'
    if [[ $mode == binfmt ]]; then
        python=$(chroot "$root.tmp" /usr/bin/python3 -c "$probe")
    else
        python=$(proot -q qemu-aarch64-static -r "$root.tmp" /usr/bin/python3 -c "$probe")
    fi
    printf '{"mode": "%s", "suite": "bookworm", "arch": "arm64", "python": "%s", "build_seconds": %d}\n' \
        "$mode" "$python" "$(( $(date +%s) - start ))" > "$root.tmp/$STAMP"
    mv "$root.tmp" "$root"
    log "root ready: python $python, $(( $(date +%s) - start )) s"
}

if [[ $(id -u) != 0 ]]; then
    echo "aarch64-root: needs root (apt, binfmt_misc, chroot)" >&2
    exit 2
fi
need_tools
if [[ ${1:-} == --run ]]; then
    shift
    root=$1; shift
    run_in_root "$root" "$@"
    exit
fi
root=${1:?usage: scripts/aarch64-root.sh ROOT | --run ROOT CMD...}
if [[ -f $root/$STAMP ]]; then
    log "reusing $root ($(cat "$root/$STAMP"))"
else
    build_root "$root"
fi
