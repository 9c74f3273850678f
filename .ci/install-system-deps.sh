#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's chromium, for the headless-browser
# check of the HTML report (tests/report/test_report.py). Run as root (CI and the team machines are).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null | head -1)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
chromium --version 2>/dev/null | head -1
