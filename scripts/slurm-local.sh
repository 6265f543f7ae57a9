#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py (`make test-slurm`).
#
#   scripts/slurm-local.sh install      apt-get install slurm-wlm munge when sinfo is missing
#   scripts/slurm-local.sh start DIR    write the config to DIR, start munged, slurmctld, slurmd;
#                                       prints SLURM_CONF=DIR/slurm.conf (export it to use it)
#   scripts/slurm-local.sh stop DIR     stop the three daemons by the pids recorded in DIR
#
# Everything (config, munge key and socket, state, spool, logs, pids) lives in DIR, so nothing
# of the machine's own SLURM or munge set-up is read or changed. Needs root (slurmd runs jobs as
# their user). Debian's slurm-wlm 22.05: proctrack/linuxproc and task/none need no cgroups.
set -euo pipefail

die() { echo "slurm-local: $*" >&2; exit 1; }

install() {
  command -v sinfo >/dev/null && command -v munged >/dev/null && return 0
  local log
  log=$(mktemp)
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$log" 2>&1 ||
    { apt-get update -q >>"$log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$log" 2>&1; }; } ||
    { cat "$log"; rm -f "$log"; die "installing slurm-wlm and munge failed"; }
  rm -f "$log"
}

# Start a daemon in its own session, in the foreground (so $! is its pid), output to DIR/NAME.log.
daemon() {
  local dir=$1 name=$2
  shift 2
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

start() {
  local dir=$1 host cpus
  [[ $(id -u) == 0 ]] || die "start needs root (slurmd runs jobs as their user)"
  command -v slurmctld >/dev/null || die "slurm-wlm is not installed (scripts/slurm-local.sh install)"
  mkdir -p "$dir/state" "$dir/spool"
  chmod 700 "$dir"
  dir=$(cd "$dir" && pwd)
  host=$(hostname -s)
  cpus=$(nproc)
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge.key"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=vgxlocal
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=${VGX_SLURMCTLD_PORT:-6817}
SlurmdPort=${VGX_SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd.pidfile
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=10
MinJobAge=30
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  daemon "$dir" munged munged --foreground --force --key-file="$dir/munge.key" \
    --socket="$dir/munge.socket" --pid-file="$dir/munged.pidfile" \
    --seed-file="$dir/munged.seed" --log-file="$dir/munged.log"
  for _ in $(seq 50); do [[ -S $dir/munge.socket ]] && break; sleep 0.1; done
  [[ -S $dir/munge.socket ]] || die "munged did not start: $(cat "$dir/munged.log")"
  export SLURM_CONF=$dir/slurm.conf
  daemon "$dir" slurmctld slurmctld -D -i -f "$dir/slurm.conf"
  daemon "$dir" slurmd slurmd -D -f "$dir/slurm.conf"
  for _ in $(seq 100); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && { echo "SLURM_CONF=$SLURM_CONF"; return 0; }
    sleep 0.2
  done
  stop "$dir"
  die "the node did not become idle in 20 s; logs in $dir"
}

stop() {
  local dir=$1 name pid
  for name in slurmd slurmctld munged; do
    [[ -f $dir/$name.pid ]] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
}

case ${1:-} in
  install) install ;;
  start) start "${2:?usage: slurm-local.sh start DIR}" ;;
  stop) stop "${2:?usage: slurm-local.sh stop DIR}" ;;
  *) die "usage: slurm-local.sh install | start DIR | stop DIR" ;;
esac
