#!/usr/bin/env bash
# Runs govulncheck over the module. Exit 0 when no known vulnerability
# affects code kmt calls, 1 when one does (its report is printed), and 0
# with a message when govulncheck cannot run here: its module does not
# build with this Go, or its vulnerability database cannot be reached.
set -uo pipefail
version=${GOVULNCHECK_VERSION:-v1.8.0}
go=${GO:-go}
out=$($go run "golang.org/x/vuln/cmd/govulncheck@$version" ./... 2>&1)
rc=$?
case $rc in
  0) echo "govulncheck $version: no vulnerabilities affect kmt" ;;
  3) echo "$out"; echo "govulncheck $version: vulnerabilities found (above)"; exit 1 ;;
  *) echo "govulncheck $version unavailable here; skipped: $(echo "$out" | grep -v '^exit status' | tail -n 1)" ;;
esac
