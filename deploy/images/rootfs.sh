#!/usr/bin/env bash
# Assembles the root filesystem of a FROM-scratch image around release
# binaries of this machine's toolchain (x86_64-unknown-linux-gnu, glibc):
#
#   rootfs.sh OUT BINARY...
#
# OUT/rootfs/ receives
#   usr/local/bin/NAME       each binary, debug info stripped (symbols kept,
#                            so a panic's backtrace still names functions)
#   exactly the shared libraries `ldd` names for them, at the same paths
#                            (the dynamic loader and libc among them), as
#                            distroless/cc images do
#   etc/passwd, etc/group    root and the non-root user 65532 (nonroot)
#   etc/nsswitch.conf        host names from /etc/hosts, then DNS; glibc
#                            2.34+ has both inside libc.so.6, so nothing
#                            is loaded at run time
#   etc/ssl/certs/ca-certificates.crt   Debian's CA bundle, where rustls'
#                            native root store looks first
#   usr/share/doc/*/copyright           licences of what is copied in
# and OUT/owned/ the directories the non-root user must be able to write
# (the state socket directory and the fs store), for `COPY --chown`.
#
# Why not a static binary: there is no musl target here, and a glibc
# +crt-static binary still needs glibc's shared NSS modules to resolve
# names, while costing a second build of every dependency.
set -euo pipefail

out=${1:?usage: rootfs.sh OUT BINARY...}
shift
(($# > 0)) || { echo "usage: rootfs.sh OUT BINARY..." >&2; exit 2; }

rm -rf "$out"
root="$out/rootfs"
owned="$out/owned"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$owned/var/run/asya/state" "$owned/state"
chmod 1777 "$root/tmp"

# copy_path FILE: FILE's content at the same absolute path under the root
# (symbolic links resolved: the image holds plain files).
copy_path() {
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}

libraries=()
for binary in "$@"; do
  [ -x "$binary" ] || { echo "rootfs.sh: $binary is not an executable (build it first)" >&2; exit 1; }
  objcopy --strip-debug "$binary" "$root/usr/local/bin/$(basename "$binary")"
  if ldd "$binary" | grep -q 'not found'; then
    echo "rootfs.sh: $binary needs libraries this machine does not have:" >&2
    ldd "$binary" >&2
    exit 1
  fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and the loader
  # "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no file.
  while read -r library; do
    libraries+=("$library")
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
done

declare -A packages=()
for library in $(printf '%s\n' "${libraries[@]}" | sort -u); do
  copy_path "$library"
  package=$(dpkg -S "$library" 2>/dev/null | head -n 1 | cut -d: -f1) || true
  [ -n "$package" ] && packages[$package]=1
done

cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
packages[ca-certificates]=1
for package in "${!packages[@]}"; do
  [ -f "/usr/share/doc/$package/copyright" ] && copy_path "/usr/share/doc/$package/copyright"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
cat >"$root/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
hosts: files dns
NSS

echo "rootfs.sh: $out/rootfs ($(du -sh "$root" | cut -f1)): $(cd "$root" && find . -type f | sort | tr '\n' ' ')"
