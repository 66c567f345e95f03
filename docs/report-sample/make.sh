#!/bin/sh
# Regenerates the sample report that README.md shows: a real batch of 80 jobs run by
# procexec (4 at a time, retries, a timeout), then a screenshot of it by headless Chromium.
# Run from anywhere with procexec installed: sh docs/report-sample/make.sh
set -eu
cd "$(dirname "$0")"
FLAKY_DIR=$(mktemp -d)
export FLAKY_DIR
procexec -j 4 --retries 2 --timeout 2 --joblog-json run.jsonl --report report.html --summary \
  sh job.sh ::: $(seq 80) || true
rm -rf "$FLAKY_DIR" run.jsonl
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1250 \
  --screenshot=screenshot.png "file://$PWD/report.html" 2>/dev/null
