#!/usr/bin/env bash
# Build the Debian package <target>/debian/netanom_<version>_amd64.deb (target = the cargo
# target directory: target/, or $CARGO_TARGET_DIR).
#
#   scripts/package.sh            # set up if needed, build, stage, package; prints sizes
#   scripts/package.sh --fast     # lighter xz compression (quicker, larger .deb)
#
# Steps:
#   1. scripts/setup.sh (idempotent): libtorch, patchelf, cargo-deb, the Debian packages;
#   2. cargo build --release of both binaries (netanom, netanom-full);
#   3. staging in <target>/release/deb-stage/ (what [package.metadata.deb] in Cargo.toml
#      lists):
#      - the binaries, debug info stripped (symbols kept, so backtraces name functions);
#      - only the libtorch runtime files netanom-full really loads, found with ldd (today
#        libtorch_cpu.so, libc10.so, libgomp.so.1, libcudart.so.13, libcupti.so.13), their
#        symbol tables stripped (strip --strip-unneeded: .dynsym, which the dynamic linker
#        uses, stays) and their RPATH set to $ORIGIN (they find each other in
#        /usr/lib/netanom; the wheel's ../../nvidia/... layout is gone);
#      - netanom-full's RUNPATH set to /usr/lib/netanom, replacing the build cache's path:
#        the installed binary cannot resolve anything into the build host's cache;
#      - the licences of PyTorch and of the NVIDIA runtime libraries;
#   4. checks of the staged files: RUNPATH/RPATH, every library resolves inside the stage or
#      to the system, Cargo.toml's Depends is what dpkg-shlibdeps derives from the files;
#   5. cargo deb --no-build --no-strip.
# scripts/test-package.sh installs the result and tests it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
say() { printf 'package: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

deb_args=()
for a in "$@"; do
    case $a in
    --fast) deb_args+=(--fast) ;;
    *) die "unknown argument $a (usage: scripts/package.sh [--fast])" ;;
    esac
done

scripts/setup.sh
command -v patchelf >/dev/null || die "patchelf is missing (scripts/setup.sh installs it)"
cargo deb --version >/dev/null 2>&1 || die "cargo-deb is missing (scripts/setup.sh installs it)"

meta=$(cargo metadata --format-version 1 --no-deps --locked)
target_dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")
version=$(python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["packages"] if p["name"] == "netanom"][0]["version"])' <<<"$meta")
release=$target_dir/release
stage=$release/deb-stage
deb=$target_dir/debian/netanom_${version}_amd64.deb
libdir=/usr/lib/netanom

# LIBTORCH as torch-sys and build.rs see it (.cargo/config.toml: the .libtorch link).
libtorch=$(realpath "${LIBTORCH:-.libtorch}")
torch_root=$(dirname "$libtorch") # <cache>/torch-2.13.0: torch/lib and nvidia/cu13/lib
[[ -f $libtorch/lib/libtorch_cpu.so ]] || die "no libtorch in $libtorch (run scripts/setup.sh)"

say "building the release binaries (cargo build --release)"
build_started=$SECONDS
cargo build --release --locked --bin netanom --bin netanom-full
build_s=$((SECONDS - build_started))

say "staging in $stage"
rm -rf "$stage"
mkdir -p "$stage/usr/bin" "$stage$libdir" "$stage/usr/share/doc/netanom/third-party"
for b in netanom netanom-full; do
    cp "$release/$b" "$stage/usr/bin/$b"
    strip --strip-debug "$stage/usr/bin/$b"
done

# The libtorch files netanom-full loads: what ldd resolves into the libtorch install
# (direct and indirect dependencies); everything else must be a system library.
mapfile -t resolved < <(env -u LD_LIBRARY_PATH ldd "$release/netanom-full" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
((${#resolved[@]})) || die "ldd $release/netanom-full resolved nothing"
if env -u LD_LIBRARY_PATH ldd "$release/netanom-full" | grep -q 'not found'; then
    env -u LD_LIBRARY_PATH ldd "$release/netanom-full" >&2
    die "netanom-full has unresolved libraries"
fi
torch_libs=()
system_libs=()
for p in "${resolved[@]}"; do
    real=$(realpath "$p")
    if [[ $real == "$torch_root"/* ]]; then
        torch_libs+=("$p")
    else
        system_libs+=("$p")
    fi
done
((${#torch_libs[@]})) || die "netanom-full loads nothing from $torch_root: is its RUNPATH right?"
for p in "${torch_libs[@]}"; do
    name=$(basename "$p") # the soname the loader looks for (ldd prints the NEEDED name)
    cp -L "$p" "$stage$libdir/$name"
    chmod 0644 "$stage$libdir/$name"
    # strip before patchelf: strip rewriting a patchelf'ed file can corrupt it.
    strip --strip-unneeded "$stage$libdir/$name"
    if readelf -d "$stage$libdir/$name" | grep -qE '\((RPATH|RUNPATH)\)'; then
        patchelf --force-rpath --set-rpath '$ORIGIN' "$stage$libdir/$name"
    fi
done
patchelf --set-rpath "$libdir" "$stage/usr/bin/netanom-full"

# Licences of what we redistribute: PyTorch (libtorch_cpu, libc10, its bundled libgomp and
# third-party code) and the NVIDIA CUDA runtime and CUPTI (redistributable under their EULA).
cp -R "$torch_root"/torch-*.dist-info/licenses/. "$stage/usr/share/doc/netanom/third-party/pytorch"
for d in "$torch_root"/nvidia_cuda_runtime-*.dist-info "$torch_root"/nvidia_cuda_cupti-*.dist-info; do
    n=$(basename "$d" .dist-info)
    cp "$d/licenses/License.txt" "$stage/usr/share/doc/netanom/third-party/${n%%-*}-License.txt"
done
find "$stage/usr/share/doc" -type f -exec chmod 0644 {} +

say "checking the staged files"
runpath=$(readelf -d "$stage/usr/bin/netanom-full" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
[[ $runpath == "$libdir" ]] || die "netanom-full RUNPATH is '$runpath', not $libdir"
! readelf -d "$stage/usr/bin/netanom" | grep -qE '\((RPATH|RUNPATH)\)' ||
    die "netanom has an rpath: $(readelf -d "$stage/usr/bin/netanom" | grep -E 'RPATH|RUNPATH')"
for f in "$stage$libdir"/*; do
    rp=$(readelf -d "$f" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')
    [[ -z $rp || $rp == '$ORIGIN' ]] || die "$f: rpath '$rp'"
    # Every dependency of a staged library is another staged library or a system one.
    out=$(env -u LD_LIBRARY_PATH ldd "$f")
    ! grep -q 'not found' <<<"$out" || die "$f: unresolved: $out"
    while read -r dep; do
        [[ $dep == "$stage$libdir"/* || $dep == /lib/* || $dep == /usr/lib/* || $dep == /lib64/* ]] ||
            die "$f loads $dep, outside the stage and the system"
    done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$out")
done
# Depends: what dpkg-shlibdeps derives from the staged files (the libraries we ship count as
# the package's own: a DEBIAN directory marks the package root, so $ORIGIN resolves), plus
# adduser for the maintainer scripts. It must be what Cargo.toml says.
depends=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml","rb"))["package"]["metadata"]["deb"]["depends"])')
shlib_tmp=$(mktemp -d)
mkdir "$shlib_tmp/debian" "$stage/DEBIAN"
: >"$shlib_tmp/debian/control"
shlibs=$(cd "$shlib_tmp" && dpkg-shlibdeps -O -S"$stage" --ignore-missing-info \
    "$stage/usr/bin/"* "$stage$libdir"/* 2>"$shlib_tmp/warnings" | sed -n 's/^shlibs:Depends=//p') ||
    { cat "$shlib_tmp/warnings" >&2; die "dpkg-shlibdeps failed"; }
rmdir "$stage/DEBIAN"
rm -rf "$shlib_tmp"
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no dependency"
[[ $depends == "$shlibs, adduser" ]] ||
    die "Cargo.toml's depends is \"$depends\"; the files need \"$shlibs\": set depends = \"$shlibs, adduser\""
glibc=$(for f in "$stage/usr/bin/"* "$stage$libdir"/*; do objdump -T "$f"; done |
    grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
glibcxx=$(for f in "$stage/usr/bin/"* "$stage$libdir"/*; do objdump -T "$f"; done |
    grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)

say "cargo deb --no-build"
deb_started=$SECONDS
rm -f "$deb"
cargo deb --no-build --no-strip --locked -p netanom -o "$deb" "${deb_args[@]}" >&2
deb_s=$((SECONDS - deb_started))
[[ -f $deb ]] || die "cargo deb made no $deb"

deb_bytes=$(stat -c %s "$deb")
installed_kib=$(dpkg-deb -f "$deb" Installed-Size)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
say "libtorch runtime files in $libdir:"
for f in "$stage$libdir"/*; do
    printf '  %-18s %10s (from %s)\n' "$(basename "$f")" "$(mb "$(stat -c %s "$f")")" \
        "$(realpath "$(printf '%s\n' "${torch_libs[@]}" | grep "/$(basename "$f")\$")")" >&2
done
say "Depends: $depends"
glibcxx=$(for f in "$stage/usr/bin/"* "$stage$libdir"/*; do objdump -T "$f"; done |
    grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
say "highest symbol versions: $glibc, $glibcxx"
say "$deb: $(mb "$deb_bytes") (.deb), installed size $(mb $((installed_kib * 1024)))" \
    "($installed_kib KiB); build ${build_s} s, cargo deb ${deb_s} s, total $((SECONDS - started)) s"
echo "$deb"
