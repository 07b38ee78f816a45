#!/bin/sh
# Renders the sample report (three real NAB series with a fake rolling
# median band, plus the edge cases) and screenshots it in headless
# Chromium, to look at the charts the way a person will.
#
#   pkg/report/testdata/screenshot.sh [out-dir] [width,height]
#
# Writes out-dir/report.html, report.json and report.png (default
# /tmp/openanomaly-report, 1400,2000). Needs Debian's chromium
# (apt-get install chromium); without it only the HTML is written.
set -eu
out=${1:-/tmp/openanomaly-report}
mkdir -p "$out"
cd "$(dirname "$0")/.."
OPENANOMALY_REPORT_DIR=$(cd "$out" && pwd) OPENANOMALY_REPORT_WINDOW=${2:-1400,2000} \
	go test -count=1 -run '^TestNABReport$' -v . | grep -v '^=== RUN'
ls -l "$out"
