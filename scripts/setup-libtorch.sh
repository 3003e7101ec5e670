#!/usr/bin/env bash
# Install the libtorch that tch 0.26 needs (PyTorch 2.13.0) and point the build at it.
#
# Idempotent: a complete install is detected and reused; nothing is downloaded twice.
#
#   scripts/setup-libtorch.sh            # install if needed, then link .libtorch
#   NETANOM_CACHE=/opt/netanom scripts/setup-libtorch.sh
#
# What it does:
#   1. The only reachable source of libtorch 2.13.0 is PyPI's `torch==2.13.0` wheel (which
#      carries libtorch in torch/lib and its headers in torch/include). It is installed with
#      `pip install --target <cache>/torch-2.13.0` (cache = $NETANOM_CACHE, default
#      ~/.cache/netanom). pip installs into `<dest>.partial` first; only after the install
#      has been verified is the marker file written and the directory renamed into place, so an
#      interrupted install is never mistaken for a complete one and is simply redone.
#      An install without the marker (e.g. one made by hand with the same pip command) is
#      verified and adopted.
#   2. It creates the git-ignored symlink `.libtorch` in the repository root pointing to
#      `<cache>/torch-2.13.0/torch`. `.cargo/config.toml` sets LIBTORCH to that symlink
#      (unless LIBTORCH is already set in the environment), and build.rs puts the canonical
#      `<...>/torch/lib` into the binaries' rpath, so no variable has to be set by hand and the
#      binaries run without LD_LIBRARY_PATH.
#
# Environment: NETANOM_CACHE (cache root), PYTHON (interpreter whose pip is used, default python3).
set -euo pipefail

TORCH_VERSION=2.13.0
CACHE="${NETANOM_CACHE:-${HOME:?HOME is not set: set NETANOM_CACHE}/.cache/netanom}"
DEST="$CACHE/torch-$TORCH_VERSION"
MARKER="$DEST/.netanom-install-complete"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'setup-libtorch: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# verify DIR: succeeds when DIR holds a usable libtorch $TORCH_VERSION (libraries, headers,
# the CUDA runtime libraries that libtorch_cpu.so needs at load time even on CPU).
verify() {
    local d="$1" t="$1/torch" f
    for f in lib/libtorch_cpu.so lib/libtorch.so lib/libc10.so version.py \
             include/torch/csrc/api/include/torch/torch.h; do
        [[ -e "$t/$f" ]] || { log "missing $t/$f"; return 1; }
    done
    grep -Eq "^__version__ = '$TORCH_VERSION(\+[^']*)?'" "$t/version.py" \
        || { log "$t/version.py is not torch $TORCH_VERSION: $(grep '^__version__' "$t/version.py" || true)"; return 1; }
    if command -v ldd >/dev/null 2>&1; then
        local missing
        missing="$(ldd "$t/lib/libtorch_cpu.so" "$t/lib/libc10.so" 2>&1 | grep 'not found' || true)"
        [[ -z "$missing" ]] || { log "unresolved libraries of libtorch_cpu.so: $missing"; return 1; }
    fi
    return 0
}

install_torch() {
    local partial="$DEST.partial"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' is not available (set PYTHON to an interpreter with pip)"
    mkdir -p "$CACHE"
    rm -rf "$partial"
    log "installing torch==$TORCH_VERSION from PyPI into $partial (about 5 GB, takes a while)"
    "$PYTHON" -m pip install --disable-pip-version-check --no-input --no-compile \
        --target "$partial" "torch==$TORCH_VERSION" \
        || die "pip install torch==$TORCH_VERSION failed (partial install left in $partial, it will be redone)"
    verify "$partial" || die "pip reported success but the install in $partial is incomplete"
    echo "$TORCH_VERSION" > "$partial/.netanom-install-complete"
    rm -rf "$DEST"
    mv "$partial" "$DEST"
}

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$TORCH_VERSION" ]] && verify "$DEST"; then
    log "torch $TORCH_VERSION already installed in $DEST"
elif [[ -d "$DEST" ]] && verify "$DEST"; then
    # A complete install made without this script (same pip command): adopt it.
    log "adopting existing complete install in $DEST"
    echo "$TORCH_VERSION" > "$MARKER"
else
    install_torch
fi

# Relink only when needed: build.rs watches the link, so touching it would rebuild netanom.
if [[ "$(readlink "$REPO/.libtorch" 2>/dev/null)" != "$DEST/torch" ]]; then
    ln -sfn "$DEST/torch" "$REPO/.libtorch"
    log "linked $REPO/.libtorch -> $DEST/torch"
fi
log "build with: cargo build   (LIBTORCH comes from .cargo/config.toml)"
