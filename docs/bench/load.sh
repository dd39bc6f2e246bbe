#!/bin/bash
# load.sh: one proxy under the side-by-side harness's load, alone, with
# the figures that explain its CPU (docs/benchmarks.md, "What is left").
#
#   docs/bench/load.sh CMD ARGS...        # CMD listens on 127.0.0.1:18080
#   DUR=6 docs/bench/load.sh /tmp/gateway -procs 1 -listen 127.0.0.1:18080 \
#       -backends http://127.0.0.1:19001,http://127.0.0.1:19002 -sticky learn
#   docs/bench/load.sh haproxy -db -f ../shared/bench/conf/haproxy.cfg
#
# It builds the harness's fake Carbon backend and client (BENCH, default
# ../shared/bench) into a temporary directory, starts two backends on
# 127.0.0.1:19001 and :19002 and CMD, opens 1,000 sessions, warms up for
# 2 s, and runs wrk -t2 -c$CONNS for $DUR s with the harness's session
# script on $PATHX. It prints, per request: the proxy's CPU (user and
# system, all its processes), its voluntary and involuntary context
# switches, the backends' CPU and the host's; the share of its threads'
# time spent runnable but waiting for a CPU; the host's idle share; req/s
# and wrk's p99. STRACE=1 also counts the proxy's system calls (strace -c,
# which slows everything; the counts, not the times, are the figures).
# Every process it starts is stopped on exit; all traffic is on loopback.
set -euo pipefail
[ $# -gt 0 ] || { sed -n '2,21p' "$0"; exit 2; }
DUR=${DUR:-10} CONNS=${CONNS:-64} PATHX=${PATHX:-/}
BENCH=${BENCH:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/bench}
for tool in go wrk bc setsid pgrep; do
	command -v "$tool" >/dev/null || { echo "load.sh: $tool is missing" >&2; exit 1; }
done
W=$(mktemp -d /tmp/carbonlb-load.XXXXXX)
(cd "$BENCH/backend" && GOWORK=off go build -o "$W/backend" .)
(cd "$BENCH/client" && GOWORK=off go build -o "$W/benchclient" .)

P1= P2= PC= SP=
stop() {
	for p in $SP $PC $P1 $P2; do kill -- "-$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap stop EXIT
setsid "$W/backend" -addr 127.0.0.1:19001 -name b1 >/dev/null 2>&1 & P1=$!
setsid "$W/backend" -addr 127.0.0.1:19002 -name b2 >/dev/null 2>&1 & P2=$!
setsid "$@" >"$W/proxy.log" 2>&1 & PC=$!
"$W/benchclient" wait -url http://127.0.0.1:19001/stats -timeout 10s
"$W/benchclient" wait -url http://127.0.0.1:19002/stats -timeout 10s
"$W/benchclient" wait -url http://127.0.0.1:18080/ -timeout 20s
"$W/benchclient" sessions -url http://127.0.0.1:18080/ -n 1000 -out "$W/sessions.txt" >/dev/null 2>&1

# ticks PGID: CPU clock ticks (user + system) of the processes in PGID.
ticks() {
	local t=0 p a
	for p in $(pgrep -g "$1"); do
		read -r -a a <"/proc/$p/stat" 2>/dev/null || continue
		t=$((t + a[13] + a[14]))
	done
	echo "$t"
}
# switches: voluntary and involuntary context switches of the proxy's threads.
switches() {
	local v=0 n=0 f k x
	for f in /proc/"$PC"/task/*/status; do
		while read -r k x; do
			case $k in
			voluntary_ctxt_switches:) v=$((v + x)) ;;
			nonvoluntary_ctxt_switches:) n=$((n + x)) ;;
			esac
		done <"$f"
	done
	echo "$v $n"
}
# sched: ns the proxy's threads ran and ns they waited, runnable, for a CPU.
sched() {
	local r=0 w=0 p f a b _n
	for p in $(pgrep -g "$PC"); do
		for f in /proc/"$p"/task/*/schedstat; do
			read -r a b _n <"$f" 2>/dev/null || continue
			r=$((r + a)) w=$((w + b))
		done
	done
	echo "$r $w"
}
# host: busy and idle ticks of all CPUs.
host() {
	local _c u n s i w irq sirq _r
	read -r _c u n s i w irq sirq _r </proc/stat
	echo "$((u + n + s + irq + sirq)) $i"
}
run_wrk() { # DURATION OUTFILE
	WRK_SESSIONS=$W/sessions.txt WRK_PATH=$PATHX timeout $(($1 + 30)) \
		wrk -t2 -c"$CONNS" -d"$1"s --timeout 5s --latency -s "$BENCH/lua/sessions.lua" "http://127.0.0.1:18080$PATHX" >"$2"
}

run_wrk 2 /dev/null
c0=$(ticks "$PC") b0=$(($(ticks "$P1") + $(ticks "$P2")))
read -r v0 n0 <<<"$(switches)"
read -r r0 w0 <<<"$(sched)"
read -r h0 i0 <<<"$(host)"
if [ -n "${STRACE:-}" ]; then
	setsid strace -c -f -p "$PC" -o "$W/strace.txt" & SP=$!
fi
run_wrk "$DUR" "$W/wrk.txt"
c1=$(ticks "$PC") b1=$(($(ticks "$P1") + $(ticks "$P2")))
read -r v1 n1 <<<"$(switches)"
read -r r1 w1 <<<"$(sched)"
read -r h1 i1 <<<"$(host)"
if [ -n "$SP" ]; then
	kill -INT "$SP"
	while kill -0 "$SP" 2>/dev/null; do sleep 0.2; done
	SP=
	head -25 "$W/strace.txt"
fi

req=$(awk '/requests in/ {print $1}' "$W/wrk.txt")
[ "${req:-0}" -gt 0 ] || { cat "$W/wrk.txt"; exit 1; }
hz=$(getconf CLK_TCK)
per() { echo "scale=2; $1 / $req" | bc; }               # a count per request
us() { echo "scale=1; $1 * 1000000 / $hz / $req" | bc; } # ticks, in µs per request
echo "proxy_cpu_us=$(us $((c1 - c0))) voluntary=$(per $((v1 - v0))) involuntary=$(per $((n1 - n0)))" \
	"proxy_waiting_pct=$(echo "scale=1; 100 * ($w1 - $w0) / ($r1 - $r0 + $w1 - $w0)" | bc)" \
	"backends_cpu_us=$(us $((b1 - b0))) host_busy_us=$(us $((h1 - h0)))" \
	"host_idle_pct=$(echo "scale=1; 100 * ($i1 - $i0) / ($h1 - $h0 + $i1 - $i0)" | bc)" \
	"req_s=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.txt") p99=$(awk '/ 99%/ {print $2}' "$W/wrk.txt")"
