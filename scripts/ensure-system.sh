#!/usr/bin/env bash
# Makes sure the system tools ssh-r-sync needs are present: rsync, rrsync, sshd, ssh, ssh-keygen,
# getfattr (plugin-manifest, names that are not UTF-8), setfattr/setfacl (its tests), btrfs-progs
# (plugin-btrfs), prometheus-node-exporter and promtool (plugin-prometheus's tests scrape a real
# node_exporter and check its file) and restic (plugin-restic).
# As root: installs missing ones with apt-get and creates /run/sshd (sshd as root refuses to start
# without it). As non-root: names the apt packages to install and exits 1.
# Idempotent, silent and fast when nothing has to be done.
set -euo pipefail

# Debian package that provides each required path.
declare -A PROVIDER=(
  [/usr/bin/rsync]=rsync
  [/usr/bin/rrsync]=rsync
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/bin/getfattr]=attr
  [/usr/bin/setfattr]=attr
  [/usr/bin/setfacl]=acl
  [/usr/bin/rsnapshot]=rsnapshot # bench/snapshots.mts compares against it
  [/usr/bin/btrfs]=btrfs-progs    # plugin-btrfs, and its tests on a loop-mounted image
  [/usr/sbin/mkfs.btrfs]=btrfs-progs
  [/usr/bin/prometheus-node-exporter]=prometheus-node-exporter
  [/usr/bin/promtool]=prometheus # ~5 s to install here
  [/usr/bin/restic]=restic          # plugin-restic and its tests
)

missing_pkgs=()
for path in /usr/bin/rsync /usr/bin/rrsync /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/bin/getfattr /usr/bin/setfattr /usr/bin/setfacl /usr/bin/rsnapshot /usr/bin/btrfs /usr/sbin/mkfs.btrfs /usr/bin/prometheus-node-exporter /usr/bin/promtool /usr/bin/restic; do
  if [[ ! -x $path ]]; then
    pkg=${PROVIDER[$path]}
    [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
  fi
done

is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

if ((${#missing_pkgs[@]} > 0)); then
  if ((!is_root)); then
    echo "ensure-system: missing tools; run as root: apt-get install -y ${missing_pkgs[*]}" >&2
    exit 1
  fi
  echo "ensure-system: installing ${missing_pkgs[*]} with apt-get" >&2
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rsync openssh-server openssh-client attr acl rsnapshot btrfs-progs prometheus-node-exporter prometheus restic; } >"$log" 2>&1; then
    echo "ensure-system: apt-get failed; last lines of its output:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  for path in "${!PROVIDER[@]}"; do
    if [[ ! -x $path ]]; then
      echo "ensure-system: $path is still missing after installing ${PROVIDER[$path]}" >&2
      exit 1
    fi
  done
  echo "ensure-system: installed ${missing_pkgs[*]}" >&2
fi

# sshd started as root needs its privilege separation directory.
if ((is_root)) && [[ ! -d /run/sshd ]]; then
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
fi
