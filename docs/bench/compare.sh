#!/usr/bin/env bash
# bench-compare.sh - CPU per request of examples/gateway before issue 11 and
# now, in ONE run of the shared harness (../shared/bench/peers.sh) with
# haproxy and gofloor as rulers.
#
# peers.sh takes one CANDIDATE_CMD, so the candidate is a small picker that
# execs the "before" and the "after" build in turn: with RUNS=4 the passes
# are before, after, before, after (ORDER="after before" swaps them). Same
# backends, same harness process, same settings; each pass also measures
# haproxy and gofloor. The picker execs the gateway in place, so the
# harness's CPU accounting (by process group) sees the gateway alone.
#
#   before: $BEFORE_REV of $REPO (default 4459a4c), built to $BEFORE_BIN
#           (reused when it exists; REBUILD_BEFORE=1 rebuilds)
#   after:  $AFTER_REV of $REPO (default HEAD, committed state only: a fresh
#           clone, so nobody's uncommitted edits are in it), built to
#           $AFTER_BIN
#
# Usage (7-8 minutes with the defaults on this VM: about 1 min of clone and
# builds, then 12 peer runs of 30-35 s each):
#   docs/bench/compare.sh 2>&1 | tee /tmp/bench-compare.txt
#
# Knobs (env), defaults in brackets:
#   RUNS [4]  PEERS ["haproxy gofloor candidate"]  ORDER ["before after"]
#   REPO [the repository holding this script]  BENCH [$REPO/../shared/bench]  BEFORE_REV [4459a4c]  AFTER_REV [HEAD]
#   BEFORE_BIN [/tmp/gateway-before]  AFTER_BIN [/tmp/gateway-after]
#   GATEWAY_ARGS ['-listen {LISTEN} -backends http://{BACKEND1},http://{BACKEND2} -sticky learn']
#   OUT [/tmp/bench-compare-<time>]  (the harness's RUN_DIR is $OUT/run)
#   Harness knobs pass through. This script sets, unless given:
#   DUR=10 CONNS=64 THREADS=2 WARM_DUR=2 SESSIONS=1000 (the harness's
#   defaults: the throughput run, whose CPU µs/req, req/s and p99 are
#   compared), LAT_DUR=3 (harness: 10) and BIG_DUR=0 (harness: 5; skips
#   /big) - the latency and /big runs are not part of the comparison.
#
# Noise check: AFTER_REV=4459a4c compares the build with itself (A/A): what
# it shows is the machine's pass-to-pass noise, which must be well under 5%
# for the verdict to mean anything; gofloor and haproxy show it too.
#
# Needs: go, wrk, haproxy (apt-get install -y nginx haproxy caddy wrk), and
# nothing listening on 127.0.0.1:18080, :19001, :19002.
# Exit status: peers.sh's (1 if a peer could not be started or driven).
set -uo pipefail

REPO=${REPO:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}
BENCH=${BENCH:-$REPO/../shared/bench}
BEFORE_REV=${BEFORE_REV:-4459a4c}
AFTER_REV=${AFTER_REV:-HEAD}
BEFORE_BIN=${BEFORE_BIN:-/tmp/gateway-before}
AFTER_BIN=${AFTER_BIN:-/tmp/gateway-after}
ORDER=${ORDER:-"before after"}
GATEWAY_ARGS=${GATEWAY_ARGS:-'-listen {LISTEN} -backends http://{BACKEND1},http://{BACKEND2} -sticky learn'}
OUT=${OUT:-/tmp/bench-compare-$(date +%Y%m%d-%H%M%S)}
export RUNS=${RUNS:-4}
export PEERS=${PEERS:-"haproxy gofloor candidate"}
export DUR=${DUR:-10} THREADS=${THREADS:-2} CONNS=${CONNS:-64} WARM_DUR=${WARM_DUR:-2} SESSIONS=${SESSIONS:-1000}
export LAT_DUR=${LAT_DUR:-3} BIG_DUR=${BIG_DUR:-0}

say() { echo "[$(date +%T)] bench-compare: $*" >&2; }
die() { say "FATAL: $*"; exit 2; }

mkdir -p "$OUT" || die "cannot create $OUT"
start=$SECONDS

# build REV BIN DIR : clone REPO afresh into DIR, check out REV, build the gateway to BIN.
build() {
  local rev=$1 bin=$2 dir=$3
  rm -rf "$dir"
  git clone -q "$REPO" "$dir" || die "clone $REPO"
  git -C "$dir" checkout -q "$rev" || die "checkout $rev"
  say "building $(git -C "$dir" log --oneline -1) -> $bin"
  (cd "$dir" && go build -o "$bin" ./examples/gateway) || die "build of $rev failed"
  git -C "$dir" rev-parse HEAD
}

if [ ! -x "$BEFORE_BIN" ] || [ "${REBUILD_BEFORE:-0}" = 1 ]; then
  before_commit=$(build "$BEFORE_REV" "$BEFORE_BIN" "$OUT/src-before") || exit 2
else
  before_commit="$(git -C "$REPO" rev-parse "$BEFORE_REV" 2>/dev/null) (prebuilt $(date -r "$BEFORE_BIN" +%FT%T))"
  say "using prebuilt $BEFORE_BIN ($BEFORE_REV)"
fi
after_commit=$(build "$AFTER_REV" "$AFTER_BIN" "$OUT/src-after") || exit 2

# The picker: each start of the candidate takes the next build of ORDER.
cat >"$OUT/pick.sh" <<EOF
#!/usr/bin/env bash
# Started by peers.sh once per pass as the candidate: exec the next build.
set -u
order=($ORDER)
n=\$(cat "$OUT/pick.count" 2>/dev/null || echo 0)
echo \$((n + 1)) >"$OUT/pick.count"
label=\${order[n % \${#order[@]}]}
case \$label in
  before) bin=$BEFORE_BIN ;;
  after)  bin=$AFTER_BIN ;;
  *) echo "pick.sh: unknown build \$label" >&2; exit 2 ;;
esac
echo "\$((n + 1)) \$label \$bin" >>"$OUT/picks.log"
echo "bench-compare: candidate start \$((n + 1)) is \$label (\$bin)" >&2
exec "\$bin" "\$@"
EOF
chmod +x "$OUT/pick.sh"
: >"$OUT/picks.log"
rm -f "$OUT/pick.count"

{
  echo "before: $BEFORE_BIN  $before_commit"
  echo "after:  $AFTER_BIN  $after_commit"
  echo "order:  $ORDER (repeated over RUNS=$RUNS passes); peers: $PEERS"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/builds.txt"

export RUN_DIR=$OUT/run
export CANDIDATE_CMD="exec $OUT/pick.sh $GATEWAY_ARGS"
say "running the harness: RUN_DIR=$RUN_DIR RUNS=$RUNS PEERS=\"$PEERS\" DUR=$DUR LAT_DUR=$LAT_DUR BIG_DUR=$BIG_DUR"
(cd "$BENCH" && ./peers.sh)
rc=$?
say "harness exited $rc after $((SECONDS - start)) s in all"

# Report: the throughput run of every pass, the candidate rows labelled by
# the picker's log (the i-th candidate row is the i-th start).
[ -s "$RUN_DIR/results.tsv" ] || die "no results in $RUN_DIR/results.tsv"
awk -F'\t' -v picks="$OUT/picks.log" -v loadnote="$(cut -d' ' -f1-3 /proc/loadavg)" '
  BEGIN { while ((getline l < picks) > 0) { split(l, p, " "); label[++np] = p[2] } }
  {
    peer = $2
    if (peer == "candidate") { nc++; peer = (nc in label ? label[nc] : "candidate?") }
    if ($3 != "OK") { rows[++n] = sprintf("%-4s %-9s %s", $1, peer, $3); next }
    rows[++n] = sprintf("%-4s %-9s %9.0f %8.2f %10s %7s %6s %-6s %s", $1, peer, $4, $6 / 1000, $12, $15, $14, $16, $19)
    if (peer == "gofloor") floor[$1] = $12
    if (peer == "before" || peer == "after") { cpu[peer] += $12; rps[peer] += $4; k[peer]++; pass[peer, k[peer]] = $1; c[peer, k[peer]] = $12
      if ($16 != "PASS") bad[peer] = bad[peer] " pass" $1 ":" $16 }
  }
  END {
    printf "\nThroughput run per pass (wrk -t%s -c%s -d%ss, %s sessions); proxy = cores the proxy used\n", ENVIRON["THREADS"], ENVIRON["CONNS"], ENVIRON["DUR"], ENVIRON["SESSIONS"]
    printf "%-4s %-9s %9s %8s %10s %7s %6s %-6s %s\n", "pass", "peer", "req/s", "p99 ms", "CPU us/req", "errors", "miss%", "sticky", "proxy"
    for (i = 1; i <= n; i++) print rows[i]
    if (nc != np) printf "\nWARNING: %d candidate rows but %d picker starts: labels may be off (see picks.log)\n", nc, np
    if (!k["before"] || !k["after"]) { print "\nno before/after pair measured"; exit }
    printf "\nCandidate CPU us/req, and over gofloor of the same pass:\n"
    for (b = 1; b <= 2; b++) { name = (b == 1 ? "before" : "after")
      s = ""; for (i = 1; i <= k[name]; i++) { r = pass[name, i]
        s = s sprintf("  pass %s: %s (%.2fx gofloor)", r, c[name, i], (floor[r] > 0 ? c[name, i] / floor[r] : 0)) }
      printf "%-7s mean %.1f us/req, %.0f req/s;%s\n", name, cpu[name] / k[name], rps[name] / k[name], s }
    m = (k["before"] < k["after"] ? k["before"] : k["after"]); s = ""; nb = 0; na = 0; fb = 0; fa = 0
    for (i = 1; i <= m; i++) s = s sprintf("  passes %s,%s: %.3f", pass["before", i], pass["after", i], c["after", i] / c["before", i])
    for (i = 1; i <= k["before"]; i++) if (floor[pass["before", i]] > 0) { fb += c["before", i] / floor[pass["before", i]]; nb++ }
    for (i = 1; i <= k["after"]; i++) if (floor[pass["after", i]] > 0) { fa += c["after", i] / floor[pass["after", i]]; na++ }
    printf "\nafter / before, pass by pass:%s\n", s
    if (nb && na) printf "after / before, each over its pass'"'"'s gofloor: %.3f\n", (fa / na) / (fb / nb)
    ratio = (cpu["after"] / k["after"]) / (cpu["before"] / k["before"])
    printf "\nafter / before, mean CPU us/req: %.3f (%+.1f%%): %s the 5%% bound\n", ratio, 100 * (ratio - 1), (ratio <= 1.05 ? "within" : "OUTSIDE")
    printf "sticky: before %s, after %s\n", (bad["before"] ? "FAIL in" bad["before"] : "PASS in every pass"), (bad["after"] ? "FAIL in" bad["after"] : "PASS in every pass")
    printf "load average at the end: %s (the rulers haproxy and gofloor show how much the machine moved between passes)\n", loadnote
  }' "$RUN_DIR/results.tsv" | tee "$OUT/compare.txt"
echo
echo "files: $OUT (compare.txt, builds.txt, picks.log; harness output in $RUN_DIR: summary.txt, results.tsv, peers.log, r<N>-<peer>/)"
exit $rc
