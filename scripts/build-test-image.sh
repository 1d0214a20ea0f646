#!/usr/bin/env bash
# build-test-image.sh — the project's tiny bootable test image, built from Debian packages.
#
#   $ANDROMEDE_IMAGE_CACHE/andromede-test-<recipe hash>.qcow2   the image (about 15 MB, qcow2,
#       compressed); the cache is /var/cache/andromede/test-images unless set, outside the
#       checkout, so a fresh clone (CI) reuses what an earlier one built
#   var/images/andromede-test.qcow2                 a symlink to the current one
#
# The recipe is this script, scripts/test-image/init and scripts/test-image/modules: the
# image is rebuilt only when one of them changes (its name carries their hash), otherwise
# the cached image is reused. Prints the image's path on stdout (messages go to stderr).
#
# What is in it: a vfat disk that boots by itself with syslinux (SeaBIOS, from a virtio or
# IDE disk) into Debian's cloud kernel and an initramfs of busybox-static, dropbear (Debian's
# dropbear-bin with the shared libraries it links, found by ldd), an /etc/passwd with root,
# the modules of scripts/test-image/modules and /init (see that file for what the guest does
# and prints).
# The kernel is the current linux-image-cloud-amd64 of the Debian mirror at build time.
# See shared/notes/hypervisor-lab.md.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

RECIPE=(scripts/build-test-image.sh scripts/test-image/init scripts/test-image/modules)
CACHE="${ANDROMEDE_IMAGE_CACHE:-/var/cache/andromede/test-images}"
IMAGES="$VAR/images"
LINK="$IMAGES/andromede-test.qcow2"

recipe_hash() {
    local f
    for f in "${RECIPE[@]}"; do
        printf '%s\n' "$f"
        sha256sum <"$ROOT/$f"
    done | sha256sum | cut -c1-16
}

hash="$(recipe_hash)"
image="$CACHE/andromede-test-$hash.qcow2"

# point_link: the checkout's stable symlink names the current image in the cache; the
# image's time is refreshed, as the cache keeps what was used in the last 30 days.
point_link() {
    mkdir -p "$IMAGES"
    if [[ "$(readlink "$LINK" 2>/dev/null || true)" != "$image" ]]; then
        ln -sfn "$image" "$LINK.tmp"
        mv -fT "$LINK.tmp" "$LINK"
    fi
    touch -c "$image"
}

if [[ -f $image ]]; then
    point_link
    printf '%s\n' "$image"
    exit 0
fi

mkdir -p "$CACHE"
# One build at a time (parallel test workers, or checkouts, may all ask); bounded wait.
exec 9>"$CACHE/.build.lock"
flock -w 600 9 || die "another test image build holds $CACHE/.build.lock for more than 600 s"
if [[ -f $image ]]; then # built by whoever held the lock
    point_link
    printf '%s\n' "$image"
    exit 0
fi

apt_ensure busybox-static syslinux syslinux-common mtools dosfstools kmod cpio gzip \
    qemu-utils util-linux dropbear-bin

work="$(mktemp -d "$CACHE/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download drops privileges to _apt

# --- kernel: Debian's cloud kernel, unpacked ---------------------------------------------
# apt_download PKG: download PKG's .deb into the current directory (one apt-get update retry
# when the package lists are missing or stale).
apt_download() {
    apt-get download -q "$1" >/dev/null 2>&1 && return 0
    say "apt-get download $1 failed; updating the package lists and retrying"
    apt-get update -qq
    apt-get download -q "$1" >/dev/null
}
# linux-image-cloud-amd64 is a metapackage: its dependency names the current kernel.
kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)"
if [[ -z $kpkg ]]; then
    apt-get update -qq
    kpkg="$(apt-cache depends linux-image-cloud-amd64 |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)"
fi
[[ -n $kpkg ]] || die "cannot resolve linux-image-cloud-amd64 to a kernel package"
say "building the test image $hash with $kpkg"
(cd "$work" && apt_download "$kpkg")
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
kver="${kpkg#linux-image-}"
kmods="$work/kernel/lib/modules/$kver"
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
[[ -f $vmlinuz && -d $kmods ]] || die "$kpkg did not contain $vmlinuz and $kmods"

# --- initramfs ---------------------------------------------------------------------------
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,dev,etc,lib/modules,proc,sys,tmp,run,seed}
cp /bin/busybox "$rootfs/bin/busybox"
"$rootfs/bin/busybox" --list | while read -r applet; do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
install -m 0755 "$ROOT/scripts/test-image/init" "$rootfs/init"

# SSH: dropbear, dropbearkey and the client dbclient (guests log into each other in the
# network tests) with the libraries they link (at the paths ldd names, the dynamic loader
# included); checked by running dropbearkey in the tree before packing it.
for bin in /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/dbclient; do
    install -m 0755 "$bin" "$rootfs/bin/${bin##*/}"
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
mkdir -p "$rootfs/root" "$rootfs/etc/dropbear"
# root is the image's only user, with a shell and no password (dropbear runs with -s: keys
# only); nsswitch.conf so glibc reads these files without a compat module.
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$rootfs/etc/shadow"
chmod 600 "$rootfs/etc/shadow"
printf 'root:x:0:\ntty:x:5:\n' >"$rootfs/etc/group"
printf '/bin/sh\n' >"$rootfs/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\n' >"$rootfs/etc/nsswitch.conf"
chroot "$rootfs" /bin/dropbearkey -t ed25519 -f /tmp/check-key >/dev/null 2>&1 ||
    die "dropbearkey does not run inside the test image's tree (missing libraries?)"
rm -f "$rootfs/tmp/check-key"

# Modules in the listed order; each module's dependencies must come before it.
declare -A loaded=()
: >"$rootfs/etc/modules"
while read -r mod; do
    [[ -z $mod || $mod == \#* ]] && continue
    if grep -Eq "/${mod}\.ko(\.[a-z]+)?$" "$kmods/modules.builtin"; then
        continue # built into this kernel
    fi
    ko="$(find "$kmods/kernel" -name "$mod.ko" -o -name "$mod.ko.xz" -o -name "$mod.ko.zst" |
        head -n 1)"
    [[ -n $ko ]] || die "kernel module $mod is not in $kpkg (scripts/test-image/modules)"
    deps="$(modinfo -F depends "$ko")"
    for dep in ${deps//,/ }; do
        [[ -n ${loaded[$dep]:-} ]] ||
            die "scripts/test-image/modules: $dep (needed by $mod) must be listed before it"
    done
    case "$ko" in
        *.ko.xz) xz -dc "$ko" >"$rootfs/lib/modules/$mod.ko" ;;
        *.ko.zst) zstd -qdc "$ko" >"$rootfs/lib/modules/$mod.ko" ;;
        *) cp "$ko" "$rootfs/lib/modules/$mod.ko" ;;
    esac
    loaded[$mod]=1
    printf '%s\n' "$mod" >>"$rootfs/etc/modules"
done <"$ROOT/scripts/test-image/modules"

(cd "$rootfs" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9n >"$work/initrd.gz"

# --- a vfat disk that boots by itself ------------------------------------------------------
cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0,115200 quiet panic=10
EOF
disk="$work/disk.img"
size_kib=$((($(stat -c %s "$vmlinuz") + $(stat -c %s "$work/initrd.gz")) / 1024 + 4096))
mkfs.vfat -C -n ANDROMEDE "$disk" "$size_kib" >/dev/null
mcopy -i "$disk" "$vmlinuz" ::vmlinuz
mcopy -i "$disk" "$work/initrd.gz" ::initrd.gz
mcopy -i "$disk" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$disk"

qemu-img convert -q -f raw -O qcow2 -c "$disk" "$work/image.qcow2"
cat >"$CACHE/andromede-test-$hash.txt" <<EOF
recipe $hash
kernel $kpkg $(dpkg-deb -f "$work"/linux-image-*.deb Version)
busybox $(dpkg-query -W -f='${Version}' busybox-static)
syslinux $(dpkg-query -W -f='${Version}' syslinux)
dropbear $(dpkg-query -W -f='${Version}' dropbear-bin)
modules $(paste -sd ' ' "$rootfs/etc/modules")
EOF
mv -f "$work/image.qcow2" "$image"
point_link
# Other checkouts may still use the images of other recipes: drop only those unused for 30
# days (hosts boot from their own copies, so no guest reads these files).
find "$CACHE" -maxdepth 1 -name 'andromede-test-*' -mtime +30 -delete
say "test image ready: $image ($(du -h "$image" | cut -f1))"
printf '%s\n' "$image"
