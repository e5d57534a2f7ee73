#!/usr/bin/env bash
# tests/cluster/run_slurm_test.sh - end-to-end test of the workflow on a real SLURM cluster.
#
# Starts a single-node SLURM cluster on localhost (tests/cluster/slurm_local.sh: slurmctld,
# slurmd, munge, slurmdbd + MariaDB from Debian's packages, two fake GPUs), runs the tiny test
# config (by default one model's part of it, see TARGETS) through
# `snakemake --profile tests/cluster/profile` (executor slurm, the structure of
# profiles/slurm), checks that the jobs went through SLURM, and tears the cluster down.
#
# Needs: root, Debian/Ubuntu (apt-get), a Python with snakemake 9 (default: .venv/bin/python of
# the repository). snakemake-executor-plugin-slurm 2.8.0 is pip-installed into it if missing.
# Runs in a throwaway copy of the repository; the checkout itself is never written to.
#
# Checks:
#   * snakemake exits 0 within 900 s, and a second dry run has nothing left to do;
#   * every sbatch call (logged by an sbatch wrapper first on PATH, which then runs the real
#     sbatch) became a SLURM job that sacct reports COMPLETED;
#   * the train runs went out as group jobs (--comment rule_train_train) asking for one GPU
#     (--gpus=1, -p gpu, --cpus-per-gpu), at least one submission holding several runs, and
#     sacct shows gres/gpu=1 allocated to them.
#
# Environment: MMK_PYTHON (python to use), MMK_SLURM_TIMEOUT (seconds, default 900),
# MMK_SLURM_TARGETS (snakemake targets; "all" = the whole tiny config; default: see TARGETS),
# MMK_SLURM_KEEP=1 (keep the scratch directory), MMK_SLURM_ARTIFACTS=DIR (copy the sbatch log,
# sacct table, snakemake log and SLURM job logs there).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${MMK_PYTHON:-$REPO/.venv/bin/python}
TIMEOUT=${MMK_SLURM_TIMEOUT:-900}
CONFIG=tests/config/tiny.yaml
T0=$SECONDS

log() { printf '[slurm-test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (apt-get, SLURM daemons, /etc/slurm)"
command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu)"
[[ -x $PY ]] || die "no python at $PY (set MMK_PYTHON)"
"$PY" -c 'import snakemake' 2>/dev/null || die "$PY has no snakemake"
[[ -f $REPO/$CONFIG ]] || die "$CONFIG is missing"

if ! "$PY" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
  log "installing snakemake-executor-plugin-slurm==2.8.0 into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q snakemake-executor-plugin-slurm==2.8.0 || die "pip install of the SLURM plugin failed"
fi

WORK=$(mktemp -d /tmp/mmk-slurm-test.XXXXXX)
chmod 755 "$WORK"
SLURM_DIR=$WORK/slurm
RUN=$WORK/repo
CALLS=$WORK/sbatch_calls.log
SMK_LOG=$WORK/snakemake.log

cleanup() {
  local rc=$?
  set +e
  if [[ -n ${MMK_SLURM_ARTIFACTS:-} ]]; then
    mkdir -p "$MMK_SLURM_ARTIFACTS"
    cp -f "$CALLS" "$SMK_LOG" "$WORK/sacct.txt" "$MMK_SLURM_ARTIFACTS/" 2>/dev/null
    [[ -d $RUN/.snakemake/slurm_logs ]] && cp -rf "$RUN/.snakemake/slurm_logs" "$MMK_SLURM_ARTIFACTS/"
    [[ -d $SLURM_DIR/log ]] && cp -rf "$SLURM_DIR/log" "$MMK_SLURM_ARTIFACTS/daemon_logs"
  fi
  bash "$REPO/tests/cluster/slurm_local.sh" down "$SLURM_DIR" || log "cluster teardown reported an error"
  if [[ ${MMK_SLURM_KEEP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  log "total wall time $((SECONDS - T0)) s, exit $rc"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a throwaway copy of the repository (tracked + untracked, not ignored) ------------------
mkdir -p "$RUN"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$REPO" ls-files -z --cached --others --exclude-standard |
    tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$RUN" -xf -
else
  tar -C "$REPO" --exclude=./.venv --exclude=./results --exclude=./.snakemake --exclude=./logs -cf - . |
    tar -C "$RUN" -xf -
fi
rm -rf "$RUN/results" "$RUN/.snakemake" "$RUN/logs" "$RUN/benchmarks"

# --- the cluster --------------------------------------------------------------------------
log "starting the local SLURM cluster in $SLURM_DIR"
SLURM_LOCAL_ACCOUNTING=slurmdbd SLURM_LOCAL_PARTITIONS="debug gpu" SLURM_LOCAL_GPUS=2 \
  bash "$REPO/tests/cluster/slurm_local.sh" up "$SLURM_DIR"
T_UP=$SECONDS
export SLURM_CONF=$SLURM_DIR/slurm.conf

# sbatch wrapper: log the argv (shell-quoted, one call per line), then run the real sbatch
REAL_SBATCH=$(PATH=/usr/bin:/usr/sbin:/bin command -v sbatch) || die "no sbatch after installing SLURM"
mkdir -p "$WORK/bin"
cat >"$WORK/bin/sbatch" <<EOF
#!/usr/bin/env bash
{ printf 'sbatch'; printf ' %q' "\$@"; printf '\n'; } >>"$CALLS"
exec "$REAL_SBATCH" "\$@"
EOF
chmod 755 "$WORK/bin/sbatch"
: >"$CALLS"

# --- the workflow ---------------------------------------------------------------------------
# Jobs inherit this environment (sbatch --export=ALL): the venv's python first, no GPUs, no hub.
export PATH="$WORK/bin:$(dirname "$PY"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
unset SNAKEMAKE_PROFILE
cd "$RUN"
# Targets: the whole tiny config takes ~15 min of CPU on a 2-core machine, so by default the
# test builds the grid-point selections of every model of the tiny config under its first two
# conditions: the DAG then has every kind of step (local fetch, CPU data jobs, the GPU text
# encoder, train runs packed into GPU group jobs, local selection) at a few minutes' cost.
# MMK_SLURM_TARGETS="all" runs everything (raise MMK_SLURM_TIMEOUT), or give explicit targets.
TARGETS=${MMK_SLURM_TARGETS:-}
if [[ -z $TARGETS ]]; then
  TARGETS=$(PYTHONPATH=$RUN/src "$PY" - "$CONFIG" <<'PYEOF'
import sys, yaml
from mmknockout import paths
conf = yaml.safe_load(open("config/config.yaml"))
tiny = yaml.safe_load(open(sys.argv[1]))
conf.update(tiny)
ds = next(iter(conf["datasets"]))
fs = conf["datasets"][ds]["feature_sets"][0]
print(" ".join(paths.fill(paths.SELECTED, dataset=ds, feature_set=fs, model=m, condition=c, seed=conf["seeds"][0])
               for m in conf["models"] for c in list(tiny.get("conditions", conf["conditions"]))[:2]))
PYEOF
  ) || die "could not work out the default targets from $CONFIG"
fi
[[ $TARGETS == all ]] && TARGETS=""
log "snakemake --profile tests/cluster/profile --configfile $CONFIG (timeout ${TIMEOUT}s), targets: ${TARGETS:-<all>}"
T_RUN=$SECONDS
set +e
# shellcheck disable=SC2086
# (targets first: --configfile takes several values and would swallow them)
timeout -k 10 "$TIMEOUT" "$PY" -m snakemake $TARGETS --profile tests/cluster/profile --workflow-profile none \
  --configfile "$CONFIG" --slurm-keep-successful-logs >"$SMK_LOG" 2>&1
SMK_RC=$?
set -e
RUN_S=$((SECONDS - T_RUN))
log "snakemake exited $SMK_RC after ${RUN_S}s"
if ((SMK_RC != 0)); then
  tail -n 60 "$SMK_LOG" >&2
  for f in $(find .snakemake/slurm_logs -name '*.log' 2>/dev/null | head -n 5); do
    echo "--- $f" >&2; tail -n 30 "$f" >&2
  done
  ((SMK_RC == 124 || SMK_RC == 137)) && die "snakemake timed out after ${TIMEOUT}s"
  die "snakemake failed (exit $SMK_RC); log: $SMK_LOG"
fi

# --- checks ---------------------------------------------------------------------------------
# shellcheck disable=SC2086
"$PY" -m snakemake $TARGETS -n --workflow-profile none --configfile "$CONFIG" >"$WORK/after.txt" 2>&1 ||
  die "dry run after the SLURM run failed: $(tail -n 20 "$WORK/after.txt")"
grep -q "Nothing to be done" "$WORK/after.txt" || die "outputs missing after the SLURM run: $(grep -A12 'Job stats' "$WORK/after.txt")"

N_CALLS=$(wc -l <"$CALLS")
((N_CALLS > 0)) || die "no sbatch call was made"

sacct -X -P -n --starttime now-1days --format=JobIDRaw,JobName%64,State,Partition,Account,AllocTRES%80,Comment%120 \
  >"$WORK/sacct.txt"
RUN_UUID=$(sed -n 's/.*--job-name \([^ ]*\).*/\1/p' "$CALLS" | head -n 1)
grep -F "|$RUN_UUID|" "$WORK/sacct.txt" >"$WORK/sacct_run.txt" || true
N_JOBS=$(wc -l <"$WORK/sacct_run.txt")
((N_JOBS == N_CALLS)) || die "$N_CALLS sbatch calls but $N_JOBS SLURM jobs in sacct for run $RUN_UUID"
NOT_DONE=$(awk -F'|' '$3 != "COMPLETED"' "$WORK/sacct_run.txt")
[[ -z $NOT_DONE ]] || die "SLURM jobs not COMPLETED: $NOT_DONE"

# Parse the logged sbatch calls: the train group submissions, their resources and the runs
# (--target-jobs of the jobstep command in --wrap) each one carries.
"$PY" - "$CALLS" "$WORK/sacct_run.txt" >"$WORK/train_check.txt" 2>&1 <<'PYEOF' || die "$(cat "$WORK/train_check.txt")"
import shlex, sys
calls = [shlex.split(line) for line in open(sys.argv[1]) if line.strip()]
sacct = [line.rstrip("\n").split("|") for line in open(sys.argv[2]) if line.strip()]
def opt(argv, name):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
train = [c for c in calls if opt(c, "--comment") == "rule_train_train"]
if not train:
    sys.exit("no train group job was submitted; comments: %s" % sorted({opt(c, "--comment") for c in calls}))
runs = []
for c in train:
    wrap = shlex.split(opt(c, "--wrap") or "")
    i = wrap.index("--target-jobs") + 1 if "--target-jobs" in wrap else len(wrap)
    targets = []
    while i < len(wrap) and not wrap[i].startswith("--"):
        targets.append(wrap[i]); i += 1
    runs.append(len([t for t in targets if t.startswith("train:")]))
    for want, got in (("--gpus", opt(c, "--gpus")), ("-p", opt(c, "-p")), ("--cpus-per-gpu", opt(c, "--cpus-per-gpu")),
                      ("--mem", opt(c, "--mem")), ("-t", opt(c, "-t"))):
        if got is None:
            sys.exit(f"train submission lacks {want}: {shlex.join(c)[:600]}")
    if opt(c, "--gpus") != "1" or opt(c, "-p") != "gpu":
        sys.exit(f"train submission does not ask for one GPU on partition gpu: {shlex.join(c)[:600]}")
if max(runs) < 2:
    sys.exit(f"no train submission packed several runs (group-components): runs per submission {runs}")
bad = [r for r in sacct if r[6].startswith("rule_train_train") and "gres/gpu=1" not in r[5]]
if bad:
    sys.exit(f"train jobs without gres/gpu=1 in sacct: {bad}")
c = train[runs.index(max(runs))]
short = [a if not a.startswith("--wrap=") else "--wrap=<jobstep command>" for a in c]
print(f"TRAIN_RUNS={sum(runs)} TRAIN_SUBMITS={len(train)} PER_SUBMIT={'/'.join(map(str, runs))}")
print(shlex.join(short))
PYEOF
read -r TRAIN_STATS <"$WORK/train_check.txt"
GPU_CALL=$(sed -n 2p "$WORK/train_check.txt")

# --- report ---------------------------------------------------------------------------------
{
  echo "== SLURM end-to-end test: PASSED"
  echo "cluster up: $((T_UP - T0)) s; snakemake run: ${RUN_S} s"
  echo "sbatch calls: $N_CALLS (all COMPLETED in sacct); train: $TRAIN_STATS"
  echo "GPU train submission:"
  echo "$GPU_CALL"
  echo "sacct (JobID|JobName|State|Partition|Account|AllocTRES|Comment):"
  cat "$WORK/sacct_run.txt"
} | tee "$WORK/summary.txt"
[[ -n ${MMK_SLURM_ARTIFACTS:-} ]] && mkdir -p "$MMK_SLURM_ARTIFACTS" && cp "$WORK/summary.txt" "$MMK_SLURM_ARTIFACTS/"
exit 0
