#!/bin/bash
# Boots systemd as PID 1 of fresh PID, mount, network, UTS and IPC namespaces, on an
# overlay of the host's root whose writes go to a tmpfs, with a tree staged by
# `cargo xtask install --destdir STAGE` copied over it. systemd then starts
# sextant.target and nothing else. Run it as:
#
#   unshare --pid --fork --mount --net --uts --ipc --propagation private \
#       boot-under-systemd.sh SCRATCH STAGE
#
# Why an overlay: a systemd boot runs systemd-tmpfiles, which empties /tmp and
# creates files across /var and /etc. On the host's own root that wipes the host's
# /tmp (it did, once); on the overlay every write lands in the tmpfs and disappears
# with the namespace. The host shares only the cgroup tree (systemd needs it).
set -eu
scratch=$1
stage=$2

mount -t tmpfs -o mode=0755 tmpfs "$scratch"
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
root=$scratch/root

mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
# A private /dev with the few nodes services use, so nothing in the boot can touch
# the host's devices.
mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
ip link set lo up

cp -a "$stage/." "$root/"
# Any enabled host services stay out of this boot: only sextant.target is asked for.
exec chroot "$root" env container=sextant-test \
    /lib/systemd/systemd --system --unit=sextant.target --log-target=console </dev/null
