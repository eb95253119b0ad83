#!/usr/bin/env bash
# dsnparse report: tests/test_report_browser.py opens the HTML report in headless Chromium
# (Debian's package; no browser is downloaded from anywhere else).  Idempotent.
set -euo pipefail
"$(dirname "$0")/../apt-install" chromium fonts-dejavu-core
