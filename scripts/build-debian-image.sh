#!/usr/bin/env bash
# build-debian-image.sh — a real Debian 12 (bookworm) cloud image with Debian's own
# cloud-init, built from Debian packages, for the slower hypervisor-lane test that proves the
# NoCloud seed (network-config, keys, user data) with the cloud-init real images ship.
#
#   $ANDROMEDE_DEBIAN_IMAGE_CACHE/andromede-debian-<recipe hash>.qcow2   the image (qcow2,
#       compressed); the cache is /var/cache/andromede/debian-images unless set, outside the
#       checkout, so a fresh clone (CI) reuses what an earlier one built
#   var/images/andromede-debian.qcow2                a symlink to the current one
#
# The recipe is this script and scripts/debian-image/*: the image is rebuilt only when one of
# them changes (its name carries their hash). Prints the image's path on stdout (messages go
# to stderr). Needs root (debootstrap).
#
# What is in it: debootstrap (minbase) of bookworm from the machine's configured Debian mirror
# (+ its updates and security fixes) with linux-image-cloud-amd64, cloud-init (NoCloud only),
# openssh-server, and netplan.io +
# systemd-networkd + systemd-resolved (the network stack cloud-init renders to here, as in
# Debian's own bookworm cloud images). The disk is built from files, with no loop device and
# no device-mapper: an MBR (syslinux's mbr.bin) with a bootable vfat /boot partition carrying
# syslinux, the kernel and its initramfs, and an ext4 root made by `mkfs.ext4 -d`. No SSH host
# key and no machine-id are baked in: every instance makes its own at first boot (cloud-init
# prints the host keys on the serial console). Root has no password; cloud-init's default user
# is `debian`, who gets the instance's keys.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

RECIPE=(scripts/build-debian-image.sh scripts/debian-image/99-andromede.cfg)
CACHE="${ANDROMEDE_DEBIAN_IMAGE_CACHE:-/var/cache/andromede/debian-images}"
IMAGES="$VAR/images"
LINK="$IMAGES/andromede-debian.qcow2"
SUITE=bookworm
BOOT_MIB=64

recipe_hash() {
    local f
    for f in "${RECIPE[@]}"; do
        printf '%s\n' "$f"
        sha256sum <"$ROOT/$f"
    done | sha256sum | cut -c1-16
}

hash="$(recipe_hash)"
image="$CACHE/andromede-debian-$hash.qcow2"

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
[[ $(id -u) -eq 0 ]] || die "building the Debian image needs root (debootstrap)"

mkdir -p "$CACHE"
# One build at a time; a build takes minutes, so the wait is long but bounded.
exec 9>"$CACHE/.build.lock"
flock -w 1800 9 || die "another Debian image build holds $CACHE/.build.lock for more than 30 min"
if [[ -f $image ]]; then # built by whoever held the lock
    point_link
    printf '%s\n' "$image"
    exit 0
fi

apt_ensure debootstrap syslinux syslinux-common mtools dosfstools e2fsprogs fdisk qemu-utils

# debian_mirror: the machine's configured Debian mirror for $SUITE (deb822 .sources or
# one-line .list), so the image comes from where this machine's own packages come from;
# ANDROMEDE_DEBIAN_MIRROR overrides it.
debian_mirror() {
    if [[ -n ${ANDROMEDE_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$ANDROMEDE_DEBIAN_MIRROR"
        return
    fi
    local found
    found="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v s="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++;
            if ($2 ~ /^\[/) i++; if ($(i + 1) == s) { print $i; exit } }')"
    if [[ -z $found ]]; then
        found="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$SUITE" '
            /^[ \t]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
            $1 == "URIs:" { uri = $2 }
            $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { if (uri != "" && ok) print uri }' | head -n 1)"
    fi
    printf '%s\n' "${found:-http://deb.debian.org/debian}"
}
mirror="$(debian_mirror)"
security="${ANDROMEDE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
started=$SECONDS
say "building the Debian image $hash ($SUITE from $mirror); this takes several minutes"

work="$(mktemp -d "$CACHE/.build-XXXXXX")"
rootfs="$work/rootfs"
# cleanup: debootstrap may leave its mounts in the target if it fails half-way; unmount
# them (deepest first) before removing anything, so no rm ever runs through a live /proc.
cleanup() {
    local m
    for m in $(awk -v r="$rootfs/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    if awk -v r="$rootfs/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts
    then
        say "left $work in place: file systems are still mounted under it"
        return
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- the root file system ------------------------------------------------------------------
# debootstrap lays down minbase with systemd; apt-get inside the tree then installs the rest,
# as debootstrap's own resolver does not follow virtual packages (cloud-init's
# python3-cryptography needs python3-cffi-backend-api-*: "dependency problems", measured).
timeout 1800 debootstrap --variant=minbase --include=systemd-sysv,udev,dbus "$SUITE" \
    "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (log above)"
}
mounted_under_rootfs() {
    awk -v r="$rootfs/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts
}
mounted_under_rootfs && die "debootstrap left file systems mounted under $rootfs"

# qemu-guest-agent: what a tenant installs so that volume snapshots freeze its file systems
# (udev starts it when the domain's guest-agent port appears).
packages=(
    linux-image-cloud-amd64 initramfs-tools cloud-init openssh-server sudo
    netplan.io systemd-resolved iproute2 isc-dhcp-client qemu-guest-agent
)
# cloud-init's Recommends are left out (no growpart: the root file system keeps the image's
# size, which the tests do not need to grow). proc and sys only: debootstrap made /dev's nodes,
# and no host /dev is ever bound under a tree this script removes.
mount -t proc proc "$rootfs/proc"
mount -t sysfs sysfs "$rootfs/sys"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
# The point release plus its updates and security fixes, as Debian's own images carry.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
installed=0
{
    chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q &&
        chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive timeout 1200 \
            apt-get install -y -q --no-install-recommends "${packages[@]}"
} >"$work/apt.log" 2>&1 && installed=1
# en_US.UTF-8, the locale cloud-init sets by default (its locale module fails without it).
if ((installed)); then
    printf 'en_US.UTF-8 UTF-8\n' >"$rootfs/etc/locale.gen"
    chroot "$rootfs" locale-gen >>"$work/apt.log" 2>&1 || installed=0
fi
rm -f "$rootfs/usr/sbin/policy-rc.d"
umount "$rootfs/sys" "$rootfs/proc"
((installed)) || {
    tail -n 40 "$work/apt.log" >&2
    die "installing the image's packages failed (log above)"
}
mounted_under_rootfs && die "file systems are still mounted under $rootfs"

install -m 0644 "$ROOT/scripts/debian-image/99-andromede.cfg" \
    "$rootfs/etc/cloud/cloud.cfg.d/99-andromede.cfg"
root_uuid="$(cat /proc/sys/kernel/random/uuid)"
printf 'UUID=%s / ext4 rw,discard,errors=remount-ro 0 1\n' "$root_uuid" >"$rootfs/etc/fstab"
printf 'debian\n' >"$rootfs/etc/hostname"
# Per instance, never per image: host keys (cloud-init's ssh module makes them at first
# boot) and the machine id (systemd makes it when the file is empty).
rm -f "$rootfs"/etc/ssh/ssh_host_*
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
# cloud-init renders netplan; systemd-resolved answers DNS as in Debian's cloud images.
ln -sfn /run/systemd/resolve/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" systemctl enable systemd-networkd.service systemd-resolved.service \
    >/dev/null 2>&1 || die "cannot enable systemd-networkd and systemd-resolved in the image"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old

kernel="$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)"
initrd="$rootfs/boot/initrd.img-${kernel##*/vmlinuz-}"
[[ -f $kernel && -f $initrd ]] || die "no kernel and initramfs in the image's /boot"

# --- the disk, from files -------------------------------------------------------------------
# /boot: vfat with syslinux; its hidden-sectors field says where the partition starts.
boot="$work/boot.img"
mkfs.vfat -C -n DEBIANBOOT -h 2048 "$boot" $((BOOT_MIB * 1024)) >/dev/null
cat >"$work/syslinux.cfg" <<CFG
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200 consoleblank=0 panic=10
CFG
mcopy -i "$boot" "$kernel" ::vmlinuz
mcopy -i "$boot" "$initrd" ::initrd.img
mcopy -i "$boot" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$boot"

# /: ext4 filled from the tree, a quarter free (cloud-init, logs and the tests write there).
used_mib=$(du -sm --apparent-size "$rootfs" | cut -f1)
root_mib=$(((used_mib * 4 / 3 + 256 + 63) / 64 * 64))
rootimg="$work/root.img"
mkfs.ext4 -q -F -L debian-root -U "$root_uuid" -d "$rootfs" "$rootimg" "${root_mib}M"

disk="$work/disk.img"
truncate -s $(((1 + BOOT_MIB + root_mib) * 1024 * 1024)) "$disk"
sfdisk -q --no-reread --no-tell-kernel "$disk" <<PARTS
label: dos
start=2048, size=$((BOOT_MIB * 2048)), type=c, bootable
start=$(((1 + BOOT_MIB) * 2048)), size=$((root_mib * 2048)), type=83
PARTS
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$boot" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootimg" of="$disk" bs=1M seek=$((1 + BOOT_MIB)) conv=notrunc,sparse status=none

qemu-img convert -q -f raw -O qcow2 -c "$disk" "$work/image.qcow2"
cat >"$CACHE/andromede-debian-$hash.txt" <<INFO
recipe $hash
suite $SUITE from $mirror
kernel ${kernel##*/}
cloud-init $(chroot "$rootfs" dpkg-query -W -f='${Version}' cloud-init)
openssh-server $(chroot "$rootfs" dpkg-query -W -f='${Version}' openssh-server)
netplan.io $(chroot "$rootfs" dpkg-query -W -f='${Version}' netplan.io)
root ${root_mib} MiB ext4 (UUID $root_uuid), boot ${BOOT_MIB} MiB vfat
INFO
mv -f "$work/image.qcow2" "$image"
point_link
find "$CACHE" -maxdepth 1 -name 'andromede-debian-*' -mtime +30 -delete
say "Debian image ready in $((SECONDS - started)) s: $image ($(du -h "$image" | cut -f1)," \
    "virtual $((1 + BOOT_MIB + root_mib)) MiB)"
printf '%s\n' "$image"
