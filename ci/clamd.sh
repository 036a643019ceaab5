#!/usr/bin/env bash
# Start or stop a throwaway clamd for the template's checks.
#
#   clamd.sh start DIR DBDIR   config, socket, log and PID under DIR; the TCP
#                              port is written to DIR/port; waits for PONG
#   clamd.sh stop DIR          SIGTERM to the PID, then waits for it to exit
#
# CLAMD_STREAM_MAX (default 8M) sets StreamMaxLength, MaxFileSize and
# MaxScanSize alike, so nothing is silently left unscanned; CLAMD_THREADS
# (default 4) sets MaxThreads.
set -euo pipefail

cmd=$1 dir=$2

case "$cmd" in
start)
    db=$3
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$dir/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $db
TemporaryDirectory $dir
LocalSocket $dir/clamd.sock
TCPSocket $port
TCPAddr 127.0.0.1
LogFile $dir/clamd.log
MaxThreads ${CLAMD_THREADS:-4}
StreamMaxLength ${CLAMD_STREAM_MAX:-8M}
MaxFileSize ${CLAMD_STREAM_MAX:-8M}
MaxScanSize ${CLAMD_STREAM_MAX:-8M}
CONF
    echo "$port" >"$dir/port"
    /usr/sbin/clamd -c "$dir/clamd.conf" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 300); do
        if reply=$(exec 2>/dev/null; exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'zPING\0' >&3 && timeout 2 head -c 4 <&3) \
            && [[ "$reply" == PONG ]]; then
            echo "clamd up on 127.0.0.1:$port (pid $(cat "$dir/pid"))"
            exit 0
        fi
        sleep 0.1
    done
    echo "clamd did not come up; log:" >&2
    cat "$dir/clamd.log" >&2 || true
    exit 1
    ;;
stop)
    if [[ -f "$dir/pid" ]]; then
        pid=$(cat "$dir/pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$dir/pid"
    fi
    ;;
*)
    echo "usage: clamd.sh start DIR DBDIR | stop DIR" >&2
    exit 2
    ;;
esac
