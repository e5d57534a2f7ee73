#!/usr/bin/env bash
# tests/cluster/slurm_local.sh - a real single-node SLURM cluster on localhost, for the
# SLURM end-to-end test (tests/cluster/run_slurm_test.sh). Adapted from the project's
# feasibility study of SLURM on localhost.
#
# Target: Debian/Ubuntu with Debian's slurmctld/slurmd/slurm-client (22.05+), munge and
# (for sacct) slurmdbd + MariaDB; run as root; no systemd or cgroups needed; nothing is
# fetched except the apt packages.
#
# Usage:
#   slurm_local.sh up     [DIR]  install missing packages, write configs under DIR, start
#                                the daemons, wait for the node to be idle (idempotent)
#   slurm_local.sh down   [DIR]  cancel jobs, stop the daemons this script started (PIDs in
#                                DIR/pids only), remove the /etc/slurm/slurm.conf link
#   slurm_local.sh status [DIR]
#   slurm_local.sh purge  [DIR]  down, then rm -rf DIR
# DIR defaults to $SLURM_LOCAL_DIR, else ./.slurm-local.
#
# Settings (environment, all optional):
#   SLURM_LOCAL_ACCOUNTING=slurmdbd|none  slurmdbd (default) runs MariaDB + slurmdbd so that
#       sacct/sacctmgr work, as on a real cluster (the executor plugin polls with sacct).
#       With none, snakemake needs --slurm-status-command squeue or it polls forever.
#   SLURM_LOCAL_ACCOUNT=ci              account created in slurmdbd (the user's default)
#   SLURM_LOCAL_PARTITIONS="debug gpu"  partitions, all on the one node; the first is default
#   SLURM_LOCAL_GPUS=1                  fake GPUs: gres/gpu backed by character devices that
#                                       alias /dev/null; jobs get CUDA_VISIBLE_DEVICES only
#   SLURM_LOCAL_GPU_TYPE=               optional GPU type (e.g. a100 -> Gres=gpu:a100:N)
#   SLURM_LOCAL_MEM_MB=                 RealMemory (default: what slurmd -C reports)
#   SLURM_LOCAL_CLUSTER=localcluster
#   SLURM_LOCAL_CTLD_PORT=6817 SLURM_LOCAL_SLURMD_PORT=6818
#   SLURM_LOCAL_DBD_PORT=6819  SLURM_LOCAL_MYSQL_PORT=13306
#   SLURM_LOCAL_TIMEOUT=90              seconds allowed for each readiness wait
#
# Why /etc/slurm/slurm.conf is a symlink into DIR: inside each batch job the executor's
# jobstep plugin runs `srun` with every SLURM_* variable but the job identity removed,
# SLURM_CONF included, so the nested srun only finds the compiled-in /etc/slurm/slurm.conf.
# An existing file there is moved into DIR and put back by `down`.
set -euo pipefail

CMD=${1:-up}
DIR=${2:-${SLURM_LOCAL_DIR:-$PWD/.slurm-local}}
ACCOUNTING=${SLURM_LOCAL_ACCOUNTING:-slurmdbd}
ACCOUNT=${SLURM_LOCAL_ACCOUNT:-ci}
PARTITIONS=${SLURM_LOCAL_PARTITIONS:-debug gpu}
GPUS=${SLURM_LOCAL_GPUS:-1}
GPU_TYPE=${SLURM_LOCAL_GPU_TYPE:-}
CLUSTER=${SLURM_LOCAL_CLUSTER:-localcluster}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
DBD_PORT=${SLURM_LOCAL_DBD_PORT:-6819}
MYSQL_PORT=${SLURM_LOCAL_MYSQL_PORT:-13306}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-90}
NODE=localhost
ETC_CONF=/etc/slurm/slurm.conf
RUN_USER=$(id -un)

log() { printf '[slurm_local %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (apt-get, /etc/slurm, daemons run as root)"
case $ACCOUNTING in slurmdbd|none) ;; *) die "SLURM_LOCAL_ACCOUNTING must be slurmdbd or none" ;; esac
[[ $DIR == /* ]] || DIR=$PWD/$DIR
export SLURM_CONF=$DIR/slurm.conf   # for the client commands this script runs
# Use Debian's real binaries, even if a test put fake sbatch/squeue/... first on PATH
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# --- daemons started by this script: PID files in $DIR/pids ------------------
pidfile() { echo "$DIR/pids/$1.pid"; }

# is_running NAME: the PID recorded for NAME is alive and is still NAME
# (comm check, so a reused PID never matches).
is_running() {
  local f pid
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$1" ]]
}

# start_daemon NAME CMD...: CMD must stay in the foreground. It runs in its own
# session, so the caller's Ctrl-C or process-group kill does not reach it.
# SLURM_CONF is exported above, so the slurm daemons read $DIR/slurm.conf (and
# find gres.conf and slurmdbd.conf next to it).
start_daemon() {
  local name=$1 pid
  shift
  if is_running "$name"; then
    log "$name already running (pid $(<"$(pidfile "$name")"))"
    return 0
  fi
  # no job control in a script: the background child is not a group leader,
  # so setsid execs in place and $! is the daemon itself
  setsid "$@" >>"$DIR/log/$name.stdout" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$(pidfile "$name")"
  sleep 0.3
  if ! is_running "$name"; then
    tail -n 20 "$DIR/log/$name.stdout" >&2 || true
    die "$name did not stay up (see $DIR/log/)"
  fi
  log "started $name (pid $pid)"
}

stop_daemon() {
  local name=$1 f pid i
  f=$(pidfile "$name")
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if is_running "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

# wait_for DESCRIPTION CMD...: retry CMD every 0.5s until it succeeds
wait_for() {
  local desc=$1 end=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${TIMEOUT}s waiting for $desc"
    sleep 0.5
  done
}

# --- packages ----------------------------------------------------------------
install_packages() {
  local pkgs=(munge slurmctld slurmd slurm-client) missing=() p added_policy=0
  [[ $ACCOUNTING == slurmdbd ]] && pkgs+=(slurmdbd mariadb-server)
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} from Debian"
  # Stop the maintainer scripts from starting the packaged services
  # (munge, mariadb, slurm*) through /etc/init.d; this script starts its own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >>"$DIR/log/apt.log" 2>&1 || {
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
    tail -n 30 "$DIR/log/apt.log" >&2
    die "apt-get install failed (see $DIR/log/apt.log)"
  }
  ((added_policy)) && rm -f /usr/sbin/policy-rc.d
  return 0
}

# --- configuration -----------------------------------------------------------
# write_if_changed FILE MODE: content comes on stdin; returns 0 if FILE changed
write_if_changed() {
  local f=$1 mode=$2 tmp
  tmp=$(mktemp "$f.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $f ]] && cmp -s "$tmp" "$f"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$f"
  return 0
}

CONFIG_CHANGED=0
write_configs() {
  local topo mem gres_node="" gres_types="" first=1 p i last
  # Node hardware as slurmd sees it (CPUs, boards, sockets, cores, threads)
  topo=$(slurmd -C | head -n 1 | tr ' ' '\n' |
    grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  mem=${SLURM_LOCAL_MEM_MB:-$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')}
  [[ -n $topo && -n $mem ]] || die "could not read the node's hardware from 'slurmd -C'"

  if ((GPUS > 0)); then
    # Fake GPU devices: character devices 1:3, the same as /dev/null.
    mkdir -p "$DIR/dev"
    for ((i = 0; i < GPUS; i++)); do
      [[ -c $DIR/dev/fakegpu$i ]] || mknod "$DIR/dev/fakegpu$i" c 1 3
    done
    last=$((GPUS - 1))
    gres_types="GresTypes=gpu"
    gres_node="Gres=gpu:${GPU_TYPE:+$GPU_TYPE:}$GPUS"
    # shellcheck disable=SC2015
    write_if_changed "$DIR/gres.conf" 644 <<EOF && CONFIG_CHANGED=1 || true
NodeName=$NODE Name=gpu ${GPU_TYPE:+Type=$GPU_TYPE }File=$DIR/dev/fakegpu[0-$last]
EOF
  else
    rm -f "$DIR/gres.conf"
  fi

  # shellcheck disable=SC2015
  {
    cat <<EOF
# written by tests/cluster/slurm_local.sh - single node on localhost, no cgroups
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# squeue keeps finished jobs for MinJobAge seconds; the executor plugin only
# trusts squeue for status when this is >= 3 x its initial status delay
MinJobAge=300
KillWait=5
JobCompType=jobcomp/none
EOF
    [[ -n $gres_types ]] && echo "$gres_types"
    if [[ $ACCOUNTING == slurmdbd ]]; then
      # record GPUs in accounting too, so sacct -o AllocTRES shows gres/gpu
      [[ -n $gres_types ]] && echo "AccountingStorageTRES=gres/gpu"
      cat <<EOF
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# for slurmdbd connections, MUNGE's socket is given here, not by AuthInfo
AccountingStoragePass=$DIR/munge/munge.socket
AccountingStoreFlags=job_comment
EOF
    else
      cat <<EOF
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
EOF
    fi
    echo "NodeName=$NODE NodeAddr=127.0.0.1 ${topo}RealMemory=$mem $gres_node State=UNKNOWN"
    for p in $PARTITIONS; do
      if ((first)); then
        echo "PartitionName=$p Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
        first=0
      else
        echo "PartitionName=$p Nodes=$NODE MaxTime=INFINITE State=UP"
      fi
    done
  } | write_if_changed "$DIR/slurm.conf" 644 && CONFIG_CHANGED=1 || true

  if [[ $ACCOUNTING == slurmdbd ]]; then
    [[ -s $DIR/mysql/dbpass ]] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/mysql/dbpass"; }
    chmod 600 "$DIR/mysql/dbpass"
    # slurmdbd insists on mode 600 and SlurmUser's ownership
    write_if_changed "$DIR/slurmdbd.conf" 600 <<EOF || true
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=$(<"$DIR/mysql/dbpass")
StorageLoc=slurm_acct_db
EOF
  fi
}

link_etc_conf() {
  mkdir -p /etc/slurm
  if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$DIR/slurm.conf" ]]; then
    return 0
  fi
  if [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
    log "moving existing $ETC_CONF to $DIR/etc-slurm.conf.orig"
    mv -f "$ETC_CONF" "$DIR/etc-slurm.conf.orig"
  fi
  ln -s "$DIR/slurm.conf" "$ETC_CONF"
}

unlink_etc_conf() {
  if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$DIR/slurm.conf" ]]; then
    rm -f "$ETC_CONF"
  fi
  if [[ -e $DIR/etc-slurm.conf.orig || -L $DIR/etc-slurm.conf.orig ]] && [[ ! -e $ETC_CONF ]]; then
    mv -f "$DIR/etc-slurm.conf.orig" "$ETC_CONF"
    log "restored the original $ETC_CONF"
  fi
  return 0
}

# --- readiness probes --------------------------------------------------------
munge_ok() { munge -S "$DIR/munge/munge.socket" -n | unmunge -S "$DIR/munge/munge.socket"; }
mysql_ok() { mariadb-admin --no-defaults --socket="$DIR/mysql/mysqld.sock" ping; }
dbd_ok() { sacctmgr -n -P show cluster format=cluster; }
ctld_ok() { scontrol ping | grep -q 'is UP'; }
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }
node_idle() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

# --- commands ----------------------------------------------------------------
up() {
  local t0=$SECONDS st resumed=0
  mkdir -p "$DIR"/{log,pids,run,state,spool,munge}
  chmod 755 "$DIR" "$DIR/munge"   # munged wants its socket directory world-executable
  [[ $ACCOUNTING == slurmdbd ]] && mkdir -p "$DIR/mysql" && chmod 700 "$DIR/mysql"
  install_packages

  # MUNGE: our own key, socket and daemon, separate from any system munged
  if [[ ! -s $DIR/munge/munge.key ]]; then
    mungekey -c -k "$DIR/munge/munge.key"
  fi
  chown root:root "$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
  write_configs
  link_etc_conf

  # Changed slurm.conf or gres.conf: restart slurmctld and slurmd to pick it up
  if ((CONFIG_CHANGED)) && { is_running slurmctld || is_running slurmd; }; then
    log "configuration changed: restarting slurmctld and slurmd"
    stop_daemon slurmd
    stop_daemon slurmctld
  fi

  start_daemon munged munged -F --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
    --seed-file="$DIR/munge/munged.seed" --log-file="$DIR/log/munged.log"
  wait_for "munged" munge_ok

  if [[ $ACCOUNTING == slurmdbd ]]; then
    if [[ ! -d $DIR/mysql/data/mysql ]]; then
      log "initialising the MariaDB data directory"
      mariadb-install-db --no-defaults --datadir="$DIR/mysql/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db >>"$DIR/log/mariadb-install.log" 2>&1 ||
        die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
    fi
    start_daemon mariadbd mariadbd --no-defaults --datadir="$DIR/mysql/data" \
      --socket="$DIR/mysql/mysqld.sock" --pid-file="$DIR/run/mariadbd.pid" \
      --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve --user=root \
      --log-error="$DIR/log/mariadb.err" --innodb-buffer-pool-size=128M \
      --innodb-lock-wait-timeout=900
    wait_for "mariadbd" mysql_ok
    mariadb --no-defaults --socket="$DIR/mysql/mysqld.sock" -uroot <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(<"$DIR/mysql/dbpass")';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(<"$DIR/mysql/dbpass")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
    start_daemon slurmdbd slurmdbd -D
    wait_for "slurmdbd" dbd_ok
    # Cluster, account and user associations (sacctmgr add exits 1 if nothing new)
    sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" ||
      sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n -P show account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
      sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci >/dev/null
    sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$RUN_USER" format=user |
      grep -qx "$RUN_USER" ||
      sacctmgr -i add user "$RUN_USER" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
  fi

  start_daemon slurmctld slurmctld -D
  wait_for "slurmctld" ctld_ok
  start_daemon slurmd slurmd -D -N "$NODE"

  # Wait for the node to register as idle. A drain or down left in the saved
  # state from an earlier run is cleared once.
  local end=$((SECONDS + TIMEOUT))
  until node_idle; do
    st=$(node_state)
    if [[ $st == inval* ]]; then
      scontrol show node "$NODE" | grep -E 'State|Reason' >&2 || true
      die "node registered as INVALID (configuration does not match the hardware)"
    fi
    if ((!resumed)) && [[ $st =~ drain|down|fail ]]; then
      scontrol update nodename="$NODE" state=resume || true
      resumed=1
    fi
    ((SECONDS < end)) || { sinfo >&2; die "timed out after ${TIMEOUT}s waiting for node $NODE to be idle (state: ${st:-?})"; }
    sleep 0.5
  done
  log "cluster up in $((SECONDS - t0))s: $(sinfo -h -o '%P %a %T %N %G' | tr '\n' ';')"
  if [[ $ACCOUNTING == none ]]; then
    log "no accounting: run snakemake with --slurm-status-command squeue (sacct cannot answer)"
  fi
  log "config: $DIR/slurm.conf (linked from $ETC_CONF); logs: $DIR/log"
}

down() {
  local end i ids
  if [[ ! -d $DIR/pids ]]; then
    log "no $DIR/pids, nothing started here"
    unlink_etc_conf
    return 0
  fi
  if is_running slurmctld; then
    ids=$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null | tr '\n' ' ') || true
    if [[ -n ${ids// /} ]]; then
      log "cancelling jobs: $ids"
      # shellcheck disable=SC2086
      scancel $ids || true
      end=$((SECONDS + 20))
      while [[ -n $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]] && ((SECONDS < end)); do sleep 0.5; done
    fi
  fi
  for i in slurmd slurmctld slurmdbd mariadbd munged; do
    stop_daemon "$i"
  done
  unlink_etc_conf
}

status() {
  local n
  for n in munged mariadbd slurmdbd slurmctld slurmd; do
    if is_running "$n"; then echo "$n: running (pid $(<"$(pidfile "$n")"))"; else echo "$n: not running"; fi
  done
  if is_running slurmctld; then sinfo; squeue -t all 2>/dev/null | head -n 20; fi
}

case $CMD in
  up) up ;;
  down) down ;;
  status) status ;;
  purge)
    down
    [[ -n $DIR && $DIR != / ]] && rm -rf "$DIR" && log "removed $DIR"
    ;;
  *) die "usage: $0 up|down|status|purge [DIR]" ;;
esac
