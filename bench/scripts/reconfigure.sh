#!/bin/bash
# Latency over time around an EPaxos add and remove made by an operator
# (docs/membership-latency.md): a cluster up with emulated WAN, the bench against it with
# --timeline, and `cluster add` / `cluster remove` beside it. Run from the repository root
# after `cargo build --release -p meridian-server -p meridian-bench`; the bench's table
# (with its latency over time) is in /tmp/rc-bench.out, the operator's times in
# /tmp/rc-ops.log. (The bench's own `--reconfigure` does the same on replicas it starts.)
set -u
BIN=${BIN:-target/release}
D=/tmp/rc; OUT=/tmp/rc-ops.log
$BIN/meridian cluster down --dir $D >/dev/null 2>&1; rm -rf $D
$BIN/meridian cluster up --topology epaxos-5 --wan --protocol epaxos --dir $D --base-port 27100 --metrics-base-port 27200 > /tmp/rc-up.out 2>&1 || { cat /tmp/rc-up.out; exit 1; }
NODES=127.0.0.1:27100,127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103,127.0.0.1:27104
METRICS=127.0.0.1:27200,127.0.0.1:27201,127.0.0.1:27202,127.0.0.1:27203,127.0.0.1:27204
$BIN/meridian-bench --backend cluster --topology epaxos-5 --protocols epaxos --conflicts 2 \
  --clients 5 --warmup 2 --duration 50 --nodes $NODES --certs $D/certs --metrics $METRICS \
  --timeline 2 --quiet > /tmp/rc-bench.out 2>&1 &
BENCH=$!
T0=$(date +%s.%N); echo "ready $T0" > $OUT
sleep 16
echo "add-start $(date +%s.%N)" >> $OUT
$BIN/meridian cluster add --dir $D --region us-west-1 > /tmp/rc-add.out 2>&1; echo "add-exit $? $(date +%s.%N)" >> $OUT
sleep 14
echo "remove-start $(date +%s.%N)" >> $OUT
$BIN/meridian cluster remove --dir $D --id 5 > /tmp/rc-remove.out 2>&1; echo "remove-exit $? $(date +%s.%N)" >> $OUT
wait $BENCH; echo "bench-exit $? $(date +%s.%N)" >> $OUT
$BIN/meridian cluster down --dir $D > /dev/null 2>&1
