#!/usr/bin/env bash
# Container test: the two images, run the way SageMaker runs them.
#
#   1. makes a tiny class-per-folder image set (inside the training image: the host needs no numpy)
#   2. `IMAGE train` with a small /opt/ml tree mounted (efficientnet_lite0, 1 epoch, 64 px, offline);
#      checks exit 0, output/success, model/model.pth + model/model_config.json and its classes
#   3. `IMAGE train` again with many epochs, SIGTERM once its first epoch is done, then a third job with
#      SIGTERM during its start-up: checks that the program stops by itself (non-zero exit,
#      output/failure names SIGTERM, no process left) well within 120 s, both times
#   4. `TRAINING_IMAGE serve` (what the SDK's default estimator.deploy() runs): exits 1 at once with a
#      message naming the serving image; the serving image holds the /ping plugin jar pre-built
#   5. `IMAGE serve` with that model mounted read-only at /opt/ml/model; waits for GET /ping on 8080,
#      checks that it uses the pre-built plugin jar
#   6. POST /invocations with held-out JPEGs (one per request, and a JSON batch): checks the answers
#      and the accuracy, and that a bad request gets a 4xx while the server stays up; then that 8080
#      serves only GET /ping and POST /invocations (MMS's management API: 404, PUT /invocations: 405)
#      and the model is still loaded after
#   7. SIGTERM to the serving container: checks it stops by itself, exit 0, within 30 s
#
# Usage: make container-test   (builds the images first), or directly:
#   TRAINING_IMAGE=byoc-classifier-training:TAG SERVING_IMAGE=byoc-classifier-serving:TAG \
#     tests/container/run_container_test.sh
# Env: CONTAINER_ENGINE (docker|podman|buildah; default: the first that can run containers here),
#      CONTAINER_TEST_DIR (default build/container-test), CONTAINER_TEST_PORT (8080),
#      CONTAINER_TEST_MIN_ACCURACY (0.6), CONTAINER_TEST_SKIP_STOP_TRAINING=1 skips step 3,
#      CONTAINER_TEST_PYTHON (python3), FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist; synthetic shapes when missing).
# `docker run` is emulated with `buildah run --isolation chroot --network host` where neither docker
# nor podman can run containers (this project's machines): the image's ENTRYPOINT is read from the
# image and called with `train` / `serve`, as docker would.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TRAINING_IMAGE="${TRAINING_IMAGE:-byoc-classifier-training:latest}"
SERVING_IMAGE="${SERVING_IMAGE:-byoc-classifier-serving:latest}"
WORK="${CONTAINER_TEST_DIR:-$REPO/build/container-test}"
PORT="${CONTAINER_TEST_PORT:-8080}"
MIN_ACCURACY="${CONTAINER_TEST_MIN_ACCURACY:-0.6}"
FASHION_MNIST_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
TRAIN_TIMEOUT=900
PING_TIMEOUT=240        # SageMaker: /ping must pass within 4 minutes of start
TRAIN_STOP_GRACE=120    # StopTrainingJob: SIGKILL 120 s after SIGTERM
SERVE_STOP_GRACE=30     # endpoint scale-in: SIGKILL 30 s after SIGTERM
PYTHON="${CONTAINER_TEST_PYTHON:-python3}"  # the host side needs only the standard library

T0=$(date +%s)
PASSED=0
FAILED=0
SERVER_PID=""
SERVER_CTR=""
CONTAINERS=()

log() { printf '[container-test %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
pass() { PASSED=$((PASSED + 1)); log "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL: $*"; }
die() { fail "$*"; summary; exit 1; }
summary() {
    log "done in $(( $(date +%s) - T0 )) s (engine $ENGINE)"
    echo "container-test: $PASSED passed, $FAILED failed"
}

# ---------------------------------------------------------------------------------------------------
# Engine: docker / podman run the images as SageMaker would; buildah emulates `docker run`.
have() { command -v "$1" >/dev/null 2>&1; }
pick_engine() {
    if [ -n "${CONTAINER_ENGINE:-}" ] && [ "$CONTAINER_ENGINE" != buildah ]; then
        # make passes the engine that built the images; podman may build but not run (rlimits in VMs).
        if [ "$CONTAINER_ENGINE" = podman ] && ! podman run --rm --entrypoint /bin/true "$TRAINING_IMAGE" >/dev/null 2>&1; then
            log "podman cannot run containers here; using buildah run" >&2
            echo buildah; return
        fi
        echo "$CONTAINER_ENGINE"; return
    fi
    if [ -n "${CONTAINER_ENGINE:-}" ]; then echo buildah; return; fi
    if have docker && docker info >/dev/null 2>&1; then echo docker; return; fi
    if have podman && podman run --rm --entrypoint /bin/true "$TRAINING_IMAGE" >/dev/null 2>&1; then echo podman; return; fi
    if have buildah; then echo buildah; return; fi
    echo none
}

# The image's ENTRYPOINT as separate words (buildah run does not apply it).
entrypoint_of() {
    buildah inspect --type image "$1" |
        "$PYTHON" -c 'import json, sys; print("\n".join(json.load(sys.stdin)["OCIv1"]["config"].get("Entrypoint") or []))'
}

# run_container MODE NAME IMAGE [-v SPEC]... [-e K=V]... -- ARGS...
#   MODE fg: runs to the end, returns its exit code; MODE bg: starts it, sets SERVER_PID (the process
#   to wait for) and SERVER_CTR. Output goes to $WORK/NAME.log.
run_container() {
    local mode="$1" name="$2" image="$3"; shift 3
    local volumes=() envs=() publish=0
    while [ "$1" != -- ]; do
        case "$1" in
            -v) volumes+=("$2"); shift 2 ;;
            -e) envs+=("$2"); shift 2 ;;
            -p) publish=1; shift ;;
            *) echo "run_container: bad option $1" >&2; return 2 ;;
        esac
    done
    shift
    local logfile="$WORK/$name.log" args=()
    case "$ENGINE" in
        docker|podman)
            "$ENGINE" rm -f "$name" >/dev/null 2>&1 || true
            for v in "${volumes[@]}"; do args+=(-v "$v"); done
            for e in "${envs[@]}"; do args+=(-e "$e"); done
            if [ "$mode" = fg ]; then
                CONTAINERS+=("$name")
                "$ENGINE" run --name "$name" "${args[@]}" "$image" "$@" >"$logfile" 2>&1
            else
                CONTAINERS+=("$name")
                [ "$publish" = 0 ] || args+=(-p "127.0.0.1:$PORT:8080")
                "$ENGINE" run -d --name "$name" "${args[@]}" "$image" "$@" >/dev/null
                "$ENGINE" logs -f "$name" >"$logfile" 2>&1 &
                SERVER_PID=$!
                SERVER_CTR="$name"
            fi
            ;;
        buildah)
            local ctr entry=()
            buildah rm "$name" >/dev/null 2>&1 || true
            ctr=$(buildah from --pull=false --name "$name" "$image") || return 1
            CONTAINERS+=("$ctr")
            mapfile -t entry < <(entrypoint_of "$image")
            [ ${#entry[@]} -gt 0 ] || { echo "no ENTRYPOINT in $image" >&2; return 1; }
            for v in "${volumes[@]}"; do args+=(-v "$v"); done
            for e in "${envs[@]}"; do args+=(-e "$e"); done
            if [ "$mode" = fg ]; then
                buildah run --isolation chroot --network host "${args[@]}" "$ctr" -- "${entry[@]}" "$@" >"$logfile" 2>&1
            else
                # The container shares the host network: tell the server the port to use.
                [ "$publish" = 0 ] || args+=(-e "SAGEMAKER_BIND_TO_PORT=$PORT")
                buildah run --isolation chroot --network host "${args[@]}" \
                    "$ctr" -- "${entry[@]}" "$@" >"$logfile" 2>&1 &
                SERVER_PID=$!
                SERVER_CTR="$ctr"
            fi
            ;;
        *) echo "run_container: unknown engine '$ENGINE'" >&2; return 2 ;;
    esac
}

# All processes below pid $1 ("pid args" per line), found by walking the process tree.
descendants_of() {
    ps -ww -e -o pid=,ppid=,args= | awk -v root="$1" '
        { pid[NR] = $1; ppid[NR] = $2; cmd = $0; sub(/^ *[0-9]+ +[0-9]+ +/, "", cmd); args[NR] = cmd }
        END {
            inside[root] = 1; changed = 1
            while (changed) { changed = 0
                for (i = 1; i <= NR; i++) if (inside[ppid[i]] && !inside[pid[i]]) { inside[pid[i]] = 1; changed = 1 } }
            for (i = 1; i <= NR; i++) if (inside[pid[i]] && pid[i] != root) print pid[i], args[i]
        }'
}

# The container's PID 1 (tini) under a `buildah run` process: the first descendant running the
# entrypoint's first word.
tini_pid_under() {
    descendants_of "$1" | awk -v first="$2" 'index($0, $1 " " first) == 1 { print $1; exit }'
}

# Which of the processes listed in $1 ("pid args" lines) are still running, same command line.
still_running() {
    local pid args
    while read -r pid args; do
        [ -n "$pid" ] || continue
        if [ -r "/proc/$pid/cmdline" ] && [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed 's/ $//')" = "$args" ]; then
            echo "$pid $args"
        fi
    done <<<"$1"
}

# Send SIGTERM to a running container, as `docker stop` does (the container's PID 1).
# For the fg-started ones under buildah, $1 is the `buildah run` pid.
sigterm_container() {
    local name="$1" root_pid="$2" image="$3"
    case "$ENGINE" in
        docker|podman) "$ENGINE" kill --signal TERM "$name" >/dev/null ;;
        buildah)
            local entry pid first
            mapfile -t entry < <(entrypoint_of "$image")
            first="${entry[0]}"
            pid=$(tini_pid_under "$root_pid" "$first")
            [ -n "$pid" ] || { log "no $first process under pid $root_pid"; return 1; }
            kill -TERM "$pid"
            ;;
    esac
}

# Wait up to $3 s for a container started in the background; sets WAIT_RC to its exit code, or to
# "timeout". Not to be called in $(...): the pid must be a child of this shell.
wait_container() {
    local name="$1" root_pid="$2" limit="$3" start
    start=$(date +%s)
    WAIT_RC=timeout
    while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
        case "$ENGINE" in
            docker|podman)
                if [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$name")" = false ]; then
                    WAIT_RC=$("$ENGINE" inspect -f '{{.State.ExitCode}}' "$name"); return
                fi ;;
            buildah)
                if ! kill -0 "$root_pid" 2>/dev/null; then
                    WAIT_RC=0; wait "$root_pid" || WAIT_RC=$?; return
                fi ;;
        esac
        sleep 0.5
    done
}

# Kill what is left of the background container (if anything) and forget it.
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            case "$ENGINE" in
                docker|podman) "$ENGINE" kill "$SERVER_CTR" >/dev/null 2>&1 || true ;;
                buildah)
                    # Killing `buildah run` would orphan what runs in the container: kill that first.
                    local pid
                    for pid in $(descendants_of "$SERVER_PID" | awk '{ print $1 }'); do kill -KILL "$pid" 2>/dev/null || true; done
                    kill -KILL "$SERVER_PID" 2>/dev/null || true ;;
            esac
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID="" SERVER_CTR=""
}

cleanup() {
    local rc=$?
    stop_server
    for c in "${CONTAINERS[@]}"; do
        case "$ENGINE" in
            docker|podman) "$ENGINE" rm -f "$c" >/dev/null 2>&1 || true ;;
            buildah) buildah rm "$c" >/dev/null 2>&1 || true ;;
        esac
    done
    exit "$rc"
}

port_open() {
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# SageMaker mounts /opt/ml's parts, not /opt/ml itself (the code is in the image at /opt/ml/code).
ml_volumes() {
    local d
    for d in input model output checkpoints; do printf -- '-v %s ' "$1/$d:/opt/ml/$d"; done
}

write_job_config() {  # write_job_config ML_DIR HYPERPARAMETERS_JSON
    local ml="$1" hps="$2"
    mkdir -p "$ml/input/config" "$ml/model" "$ml/output/data" "$ml/checkpoints"
    printf '%s\n' "$hps" >"$ml/input/config/hyperparameters.json"
    cat >"$ml/input/config/inputdataconfig.json" <<'EOF'
{"train": {"ContentType": "application/x-image", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
 "valid": {"ContentType": "application/x-image", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}
EOF
    # current_host must resolve: the toolkit waits for it (algo-1 does not exist outside SageMaker).
    cat >"$ml/input/config/resourceconfig.json" <<'EOF'
{"current_host": "localhost", "hosts": ["localhost"], "network_interface_name": "eth0"}
EOF
    mkdir -p "$ml/input/data"
    cp -r "$WORK/data/train" "$WORK/data/valid" "$ml/input/data/"
}

# ---------------------------------------------------------------------------------------------------
have "$PYTHON" || { echo "container-test: needs $PYTHON on the host (standard library only)" >&2; exit 1; }
ENGINE=$(pick_engine)
[ "$ENGINE" != none ] || { echo "container-test: needs docker, podman or buildah" >&2; exit 1; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# podman/buildah store unqualified names under localhost/.
if [ "$ENGINE" != docker ]; then
    case "$TRAINING_IMAGE" in */*) ;; *) TRAINING_IMAGE="localhost/$TRAINING_IMAGE" ;; esac
    case "$SERVING_IMAGE" in */*) ;; *) SERVING_IMAGE="localhost/$SERVING_IMAGE" ;; esac
fi
for image in "$TRAINING_IMAGE" "$SERVING_IMAGE"; do
    case "$ENGINE" in
        docker|podman) "$ENGINE" image inspect "$image" >/dev/null 2>&1 ;;
        buildah) buildah inspect --type image "$image" >/dev/null 2>&1 ;;
    esac || { echo "container-test: image $image not found (make build first)" >&2; exit 1; }
done
log "engine $ENGINE; training image $TRAINING_IMAGE; serving image $SERVING_IMAGE; work dir $WORK"
rm -rf "$WORK"
mkdir -p "$WORK"

# 1. data --------------------------------------------------------------------------------------------
data_volumes=(-v "$HERE:/test:ro" -v "$WORK:/work")
[ -d "$FASHION_MNIST_DIR" ] && data_volumes+=(-v "$FASHION_MNIST_DIR:/datasets/fashion-mnist:ro")
if run_container fg ct-data "$TRAINING_IMAGE" "${data_volumes[@]}" -- python /test/make_test_data.py /work/data; then
    pass "test data: $(cat "$WORK/ct-data.log" | tail -n 1)"
else
    cat "$WORK/ct-data.log"; die "making the test data failed"
fi
CLASSES=$(ls "$WORK/data/train" | sort | paste -sd, -)

# 2. train -------------------------------------------------------------------------------------------
ML="$WORK/ml"
write_job_config "$ML" '{"model_name": "efficientnet_lite0", "epochs": "1", "image_size": "64", "batch_size": "32", "lr": "0.01"}'
log "training: $TRAINING_IMAGE train (efficientnet_lite0, 1 epoch, 64 px) ..."
t=$(date +%s)
run_container bg ct-train "$TRAINING_IMAGE" $(ml_volumes "$ML") -- train
wait_container "$SERVER_CTR" "$SERVER_PID" "$TRAIN_TIMEOUT"; rc=$WAIT_RC
stop_server
TRAIN_S=$(( $(date +%s) - t ))
grep -E "epoch|accuracy|Reporting|failed|Error" "$WORK/ct-train.log" | tail -n 8 | sed 's/^/    /' || true
problems=()
[ "$rc" = 0 ] || problems+=("exit code $rc")
[ -f "$ML/output/success" ] || problems+=("no output/success")
[ ! -f "$ML/output/failure" ] || problems+=("output/failure: $(head -c 300 "$ML/output/failure")")
[ -s "$ML/model/model.pth" ] || problems+=("no model/model.pth")
[ -s "$ML/model/model_config.json" ] || problems+=("no model/model_config.json")
if [ -s "$ML/model/model_config.json" ]; then
    got=$("$PYTHON" -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["classes"]))' "$ML/model/model_config.json" 2>&1) || true
    [ "$got" = "$CLASSES" ] || problems+=("model_config.json classes '$got', expected '$CLASSES'")
fi
if [ ${#problems[@]} = 0 ]; then
    pass "training in ${TRAIN_S} s: exit 0, model artifact $(ls "$ML/model" | paste -sd' ' -)"
else
    tail -n 40 "$WORK/ct-train.log"; die "training: ${problems[*]}"
fi

# 3. SIGTERM during training and during start-up ----------------------------------------------------
# The job cannot end before the signal: it trains on augmented images (each epoch decodes them) for 300 epochs
# without early stopping. The signal is sent as soon as the job's log shows the marker (no sleep): the end of
# epoch 1, then, in a second job, its set-up (start-up, before any epoch). Both must end the documented way:
# a non-zero exit, output/failure naming SIGTERM, no process left (classifier/training/stopping.py).
stop_training_on() {  # $1: the log marker to signal on, $2: the step's name
    local marker="$1" what="$2"
    STOP_ML="$WORK/ml-stop"
    rm -rf "$STOP_ML"
    write_job_config "$STOP_ML" '{"model_name": "efficientnet_lite0", "epochs": "300", "image_size": "64", "batch_size": "8", "augment": "true", "early_stopping_patience": "0"}'
    log "stopping a training job: SIGTERM $what ..."
    run_container bg ct-train-stop "$TRAINING_IMAGE" $(ml_volumes "$STOP_ML") -- train
    stop_pid=$SERVER_PID stop_ctr=$SERVER_CTR
    started=""
    for _ in $(seq 1 1200); do
        if grep -q "$marker" "$WORK/ct-train-stop.log" 2>/dev/null; then started=1; break; fi
        kill -0 "$stop_pid" 2>/dev/null || break
        sleep 0.2
    done
    if [ -z "$started" ]; then
        tail -n 30 "$WORK/ct-train-stop.log"; fail "the stop test's training never logged '$marker'"
    else
        t=$(date +%s)
        procs=""
        [ "$ENGINE" != buildah ] || procs=$(descendants_of "$stop_pid")
        sigterm_container "$stop_ctr" "$stop_pid" "$TRAINING_IMAGE"
        wait_container "$stop_ctr" "$stop_pid" "$TRAIN_STOP_GRACE"; rc=$WAIT_RC
        took=$(( $(date +%s) - t ))
        left=$(still_running "$procs")
        reason=$(head -c 300 "$STOP_ML/output/failure" 2>/dev/null || true)
        if [ "$rc" != timeout ] && [ "$rc" != 0 ] && [ -z "$left" ] && grep -q SIGTERM <<<"$reason"; then
            pass "training stopped ${took} s after SIGTERM $what: exit $rc, no process left, failure reason: $reason"
        else
            tail -n 30 "$WORK/ct-train-stop.log"
            fail "training after SIGTERM $what: exit '$rc' after ${took} s, failure '$reason'; processes left: ${left:-none}"
            for pid in $(awk '{ print $1 }' <<<"$left"); do kill -KILL "$pid" 2>/dev/null || true; done
        fi
    fi
    stop_server
}
if [ "${CONTAINER_TEST_SKIP_STOP_TRAINING:-0}" != 1 ]; then
    stop_training_on "epoch=1 " "once its first epoch is done"
    stop_training_on "Job setup:" "during its start-up"
fi

# 4. each image does its own job -----------------------------------------------------------------------
t=$(date +%s)
rc=0
run_container fg ct-train-serve "$TRAINING_IMAGE" -v "$ML/model:/opt/ml/model:ro" -- serve || rc=$?
took=$(( $(date +%s) - t ))
if [ "$rc" = 1 ] && [ "$took" -le 60 ] && grep -q "byoc-classifier-serving" "$WORK/ct-train-serve.log" &&
        grep -q "image_uri=" "$WORK/ct-train-serve.log"; then
    pass "training image 'serve': exit 1 after ${took} s: $(head -c 160 "$WORK/ct-train-serve.log")..."
else
    cat "$WORK/ct-train-serve.log"; fail "training image 'serve': exit $rc after ${took} s, without naming the serving image"
fi
# The jar is in the image and plugin_dir() returns it without compiling (subprocess.run is gone).
plugin_check='import subprocess; from classifier.serving import mms_plugin as m
subprocess.run = None
d = m.plugin_dir(); j = d / m.JAR_NAME; assert j.is_file(), j; print(j)'
if run_container fg ct-plugin "$SERVING_IMAGE" -- python -c "$plugin_check"; then
    PLUGIN_JAR=$(tail -n 1 "$WORK/ct-plugin.log")
    pass "the /ping plugin jar is pre-built in the serving image: $PLUGIN_JAR"
else
    cat "$WORK/ct-plugin.log"; fail "no pre-built /ping plugin jar in the serving image"; PLUGIN_JAR=none
fi

# 5. serve -------------------------------------------------------------------------------------------
if port_open "$PORT"; then die "port $PORT is in use on this machine (set CONTAINER_TEST_PORT)"; fi
log "serving: $SERVING_IMAGE serve with /opt/ml/model mounted read-only ..."
t=$(date +%s)
run_container bg ct-serve "$SERVING_IMAGE" -p -v "$ML/model:/opt/ml/model:ro" -- serve
if "$PYTHON" "$HERE/invoke.py" wait "http://127.0.0.1:$PORT" "$PING_TIMEOUT"; then
    pass "GET /ping answered 200 $(( $(date +%s) - t )) s after start"
else
    tail -n 60 "$WORK/ct-serve.log"; die "the server did not become healthy"
fi
if grep -q "/ping plugin $(dirname "$PLUGIN_JAR")\$" "$WORK/ct-serve.log"; then
    pass "serve uses the pre-built plugin $(dirname "$PLUGIN_JAR")"
else
    grep "^serve:" "$WORK/ct-serve.log" || true; fail "serve does not use the pre-built plugin $PLUGIN_JAR"
fi

# 6. invoke ------------------------------------------------------------------------------------------
if "$PYTHON" "$HERE/invoke.py" check "http://127.0.0.1:$PORT" "$WORK/data/requests" "$MIN_ACCURACY"; then
    pass "POST /invocations: predictions checked"
else
    tail -n 40 "$WORK/ct-serve.log"; fail "POST /invocations"
fi
if "$PYTHON" "$HERE/invoke.py" closed "http://127.0.0.1:$PORT" "$WORK/data/requests"; then
    pass "port $PORT serves only GET /ping and POST /invocations; the model is still loaded after"
else
    tail -n 20 "$WORK/ct-serve.log"; fail "the endpoint's port serves more than GET /ping and POST /invocations"
fi

# 7. SIGTERM -----------------------------------------------------------------------------------------
t=$(date +%s)
procs=""
[ "$ENGINE" != buildah ] || procs=$(descendants_of "$SERVER_PID")
sigterm_container "$SERVER_CTR" "$SERVER_PID" "$SERVING_IMAGE"
wait_container "$SERVER_CTR" "$SERVER_PID" "$SERVE_STOP_GRACE"; rc=$WAIT_RC
took=$(( $(date +%s) - t ))
left=$(still_running "$procs")
if [ "$rc" = 0 ] && [ -z "$left" ] && ! port_open "$PORT"; then
    pass "serving stopped ${took} s after SIGTERM: exit 0, port $PORT closed, no process left"
else
    tail -n 30 "$WORK/ct-serve.log"
    fail "serving after SIGTERM: exit '$rc' after ${took} s; processes left: ${left:-none}"
    for pid in $(awk '{ print $1 }' <<<"$left"); do kill -KILL "$pid" 2>/dev/null || true; done
fi

summary
[ "$FAILED" = 0 ]
