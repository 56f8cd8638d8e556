#!/usr/bin/env bash
# End to end under a real systemd: the unit of docs/upgrades.md, line for
# line (the program path replaced by examples/04_upgrade), run by a systemd
# user manager started here with its own XDG_RUNTIME_DIR.
#
# Checks: 10 `systemctl --user reload` under continuous HTTP load with no
# failed request, the unit active throughout and MainPID moving each time;
# a reload whose new process crashes makes `systemctl reload` fail; and
# `systemctl stop` is graceful (lame duck and drain logged, exit 0).
#
# Needs Debian's systemd (252 or later), curl, and root or a user allowed to
# create /run/systemd/system (it tells systemd it runs on a systemd system).
# Exits non-zero, saying why, when the manager cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

RELOADS=${RELOADS:-10}
fail() { echo "systemd-e2e: FAIL: $*" >&2; exit 1; }
say() { echo "systemd-e2e: $*"; }

for tool in systemd systemctl curl; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
SYSTEMD=$(command -v systemd)
[ -x /lib/systemd/systemd ] && SYSTEMD=/lib/systemd/systemd

cargo build --quiet --example 04_upgrade --features systemd
EXE="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/examples/04_upgrade"
[ -x "$EXE" ] || fail "$EXE was not built"

WORK=$(mktemp -d /tmp/lameduck-e2e.XXXXXX)
export XDG_RUNTIME_DIR="$WORK/run" XDG_CONFIG_HOME="$WORK/config"
mkdir -m 700 "$XDG_RUNTIME_DIR"
UNIT_DIR="$XDG_CONFIG_HOME/systemd/user"
mkdir -p "$UNIT_DIR/app.service.d"
MADE_RUN_DIR=
MANAGER=
LOAD_PIDS=()

cleanup() {
    set +e
    touch "$WORK/stop-load"
    for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "$MANAGER" ]; then
        timeout 20 systemctl --user stop app >/dev/null 2>&1
        kill "$MANAGER" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$MANAGER" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$MANAGER" 2>/dev/null
        wait "$MANAGER" 2>/dev/null
    fi
    [ -n "$MADE_RUN_DIR" ] && rmdir /run/systemd/system 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# systemd refuses to run a user manager unless the machine "runs systemd".
if [ ! -d /run/systemd/system ]; then
    mkdir -p /run/systemd/system || fail "cannot create /run/systemd/system"
    MADE_RUN_DIR=1
fi
"$SYSTEMD" --user --log-target=console --log-level=notice >"$WORK/manager.log" 2>&1 &
MANAGER=$!
state=
for _ in $(seq 100); do
    state=$(systemctl --user is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    kill -0 "$MANAGER" 2>/dev/null || break
    sleep 0.1
done
case "$state" in
    running|degraded) say "user manager $MANAGER is $state" ;;
    *) cat "$WORK/manager.log" >&2
       fail "the systemd user manager did not start (state: ${state:-none})" ;;
esac

# The documented unit, line for line; only the program path differs.
awk '/^```ini$/{on=1; next} /^```$/{on=0} on' docs/upgrades.md \
    | sed "s#/usr/local/bin/app#$EXE#g" >"$UNIT_DIR/app.service"
grep -q '^ExecStart=' "$UNIT_DIR/app.service" || fail "no unit found in docs/upgrades.md"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The example's settings, as a deployment's drop-in would give them.
cat >"$UNIT_DIR/app.service.d/e2e.conf" <<CONF
[Service]
Environment=DEMO_ADDR=127.0.0.1:$PORT DEMO_PID_FILE=%t/app/app.pid DEMO_CONTROL=%t/app/control.sock DEMO_FAIL_FILE=$WORK/fail
StandardOutput=append:$WORK/app.log
StandardError=append:$WORK/app.log
CONF
systemctl --user daemon-reload
timeout 60 systemctl --user start app || { cat "$WORK/app.log" >&2; fail "the unit did not start"; }
main_pid() { systemctl --user show -p MainPID --value app; }
active_state() { systemctl --user show -p ActiveState --value app; }
[ "$(active_state)" = active ] || fail "not active after start: $(active_state)"
say "app.service active, MainPID $(main_pid), http on 127.0.0.1:$PORT"

# Continuous load: two clients, one request after another, each counted.
load() {
    local ok=0 bad=0 deadline=$((SECONDS + 600))
    while [ ! -e "$WORK/stop-load" ] && [ $SECONDS -lt $deadline ]; do
        if curl -fsS --max-time 10 -o /dev/null "http://127.0.0.1:$PORT/"; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
        fi
    done
    echo "$ok $bad" >"$WORK/load.$1"
}
load 1 & LOAD_PIDS+=($!)
load 2 & LOAD_PIDS+=($!)
# The unit's state, sampled throughout.
(
    deadline=$((SECONDS + 600))
    while [ ! -e "$WORK/stop-load" ] && [ $SECONDS -lt $deadline ]; do
        s=$(active_state)
        case "$s" in active|reloading) ;; *) echo "$s" >>"$WORK/bad-states" ;; esac
        sleep 0.1
    done
) & LOAD_PIDS+=($!)

wait_gone() {
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    fail "process $1 still running 30 s after handing over"
}

sleep 1
for i in $(seq "$RELOADS"); do
    old=$(main_pid)
    t0=$(date +%s%N)
    timeout 120 systemctl --user reload app || { tail -30 "$WORK/app.log" >&2; fail "reload $i failed"; }
    ms=$((($(date +%s%N) - t0) / 1000000))
    new=$(main_pid)
    [ "$new" != "$old" ] && [ "$new" != 0 ] || fail "reload $i: MainPID did not move ($old -> $new)"
    [ "$(active_state)" = active ] || fail "reload $i: unit $(active_state)"
    say "reload $i: MainPID $old -> $new in $ms ms"
    # The old generation drains and exits by itself; the next upgrade is
    # refused until it has.
    wait_gone "$old"
    sleep 0.3
done

# A new process that crashes during init: the reload fails, nothing moves.
echo exit1 >"$WORK/fail"
before=$(main_pid)
if timeout 120 systemctl --user reload app 2>"$WORK/reload.err"; then
    fail "a reload whose new process crashed succeeded"
fi
rm -f "$WORK/fail"
[ "$(main_pid)" = "$before" ] || fail "MainPID moved on a failed reload"
[ "$(active_state)" = active ] || fail "unit $(active_state) after a failed reload"
say "failed reload reported: $(tr '\n' ' ' <"$WORK/reload.err" | cut -c1-160)"

sleep 1
touch "$WORK/stop-load"
for p in "${LOAD_PIDS[@]}"; do wait "$p"; done
LOAD_PIDS=()
read -r ok1 bad1 <"$WORK/load.1"
read -r ok2 bad2 <"$WORK/load.2"
ok=$((ok1 + ok2)); bad=$((bad1 + bad2))
say "load: $ok requests answered, $bad failed"
[ "$bad" -eq 0 ] || fail "$bad requests failed during the reloads"
[ "$ok" -gt 0 ] || fail "no request was answered"
[ ! -s "$WORK/bad-states" ] || fail "unit left active: $(sort -u "$WORK/bad-states" | tr '\n' ' ')"

last=$(main_pid)
t0=$(date +%s%N)
timeout 60 systemctl --user stop app
stop_ms=$((($(date +%s%N) - t0) / 1000000))
result=$(systemctl --user show -p Result --value app)
status=$(systemctl --user show -p ExecMainStatus --value app)
say "stop: $stop_ms ms, result $result, exit status $status"
logged() { grep -q "^\[$last\] .*$1" "$WORK/app.log"; }
show_log() { tail -40 "$WORK/app.log" >&2; systemctl --user status app --no-pager >&2; }
logged "phase: lame duck -> draining" || { show_log; fail "no lame duck logged by $last"; }
logged "stopped \`http\`" || { show_log; fail "no drain logged by $last"; }
grep "^\[$last\] .*\(shutting down\|lame duck\|draining\)" "$WORK/app.log" | sed 's/^/systemd-e2e:   /' 
grep -q "^exit pid=$last ok=true" "$WORK/app.log" || fail "$last did not exit cleanly"
[ "$result" = success ] || fail "stop result: $result (status $status)"
say "PASS: $RELOADS reloads, $ok requests, $bad failed, crash reload failed as it should, stop $stop_ms ms"
