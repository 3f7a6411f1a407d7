#!/usr/bin/env bash
# qdet against a real RTSP server (GStreamer's rtsp-server, tools/rtsp/server.py) serving
# the committed clip: the server is killed mid-stream and started again, qdet must say it
# lost the stream, retry, reconnect and go on counting frames; SIGTERM then ends it with
# status 0 and whole outputs; the frames of the first session give exactly the detections
# of the same frames read from the file. Run by .ci/run after `cargo test --release` (it
# uses that build's target/release/qdet); installs the Debian packages it needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/rtsp/setup.sh
qdet=$PWD/target/release/qdet
clip=$PWD/tests/data/video/moving.mp4
model=$PWD/models/shapes-yolov8n.onnx
work=$(mktemp -d)
port=$((20000 + $$ % 20000))
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${qdet_pid:-}" ] && kill -9 "$qdet_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
start_server() {
  /usr/bin/python3 tools/rtsp/server.py "$clip" "$port" > "$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do grep -q rtsp:// "$work/server.log" && return; sleep 0.1; done
  echo "tools/rtsp/test.sh: the RTSP server did not start: $(cat "$work/server.log")"; exit 1
}
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
has_lines() { [ "$(lines "$1")" -ge "$2" ]; }
wait_until() { # WHAT TEST...
  local what=$1; shift
  for _ in $(seq 300); do "$@" && return; sleep 0.1; done
  echo "tools/rtsp/test.sh: no $what after 30 s"; cat "$work/qdet.log"; exit 1
}
url=rtsp://127.0.0.1:$port/cam
"$qdet" detect --model "$model" "$clip" --jsonl "$work/file.jsonl" --out "$work/out-file" 2> /dev/null
start_server
"$qdet" detect --model "$model" "$url" --ffmpeg-input-args "-rtsp_transport tcp" --jsonl "$work/live.jsonl" \
  --threads 1 --out "$work/out" 2> "$work/qdet.log" &
qdet_pid=$!
wait_until "10 frames" has_lines "$work/live.jsonl" 10
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
before=$(lines "$work/live.jsonl")
wait_until "failed reconnection" grep -q "cannot reconnect" "$work/qdet.log"
start_server
wait_until "reconnection" grep -q "reconnected" "$work/qdet.log"
wait_until "frames after the reconnection" has_lines "$work/live.jsonl" $((before + 10))
kill -TERM "$qdet_pid"
status=0; wait "$qdet_pid" || status=$?; qdet_pid=
[ "$status" -eq 0 ] || { echo "tools/rtsp/test.sh: qdet exited $status after SIGTERM"; cat "$work/qdet.log"; exit 1; }
python3 - "$work/file.jsonl" "$work/live.jsonl" "$work/qdet.log" "$url" "$before" <<'PY'
import json, re, sys
file_lines = [json.loads(l) for l in open(sys.argv[1])]
live = [json.loads(l) for l in open(sys.argv[2])]  # every line whole, or this raises
log, url = open(sys.argv[3]).read(), sys.argv[4]
frames = [l["frame"] for l in live]
assert frames == sorted(set(frames)), f"frames not increasing: {frames}"
summary = next(l for l in log.splitlines() if l.startswith(f"{url}: "))
n = list(map(int, re.findall(r"(\d+) (?:frames|processed|dropped|reconnections)", summary)))
assert len(n) == 4 and n[3] >= 1 and n[1] == len(live) and n[1] + n[2] == n[0], summary
# The lines written before the server was killed are the first session's, whose frame k is
# the file's frame k: the same detections, bit for bit.
same = live[:int(sys.argv[5])]
for l in same:
    assert l["detections"] == file_lines[l["frame"]]["detections"], (l["frame"], l, file_lines[l["frame"]])
print(f"tools/rtsp/test.sh: ok: {summary}; {len(same)} frames of the first session equal the file's")
PY
