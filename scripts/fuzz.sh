#!/usr/bin/env bash
# Runs every fuzz target in the module for a bounded budget each: an
# execution count such as 300000x (the default) or a duration such as 30s.
set -euo pipefail
fuzztime=${1:-300000x}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -timeout 10m "$pkg"
  done
done
