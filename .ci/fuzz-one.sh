#!/usr/bin/env bash
# .ci/fuzz-one.sh MODULE PACKAGE TARGET FUZZTIME — one fuzz target, for make fuzz-ci.
#
# Go's fuzz coordinator can fail a run at the end of a duration -fuzztime with a
# bare "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in Go 1.27; CPU contention makes it likelier). Such a run found nothing:
# it is said so and run once more. A run that writes a failing input to
# testdata/fuzz/TARGET, or fails any other way, fails.
set -uo pipefail
mod=$1 pkg=$2 fn=$3 fuzztime=$4
corpus="$mod/${pkg#./}/testdata/fuzz/$fn"
count() { find "$corpus" -type f 2>/dev/null | wc -l; }
for attempt in 1 2; do
	before=$(count)
	out=$(cd "$mod" && go test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	((rc == 0)) && exit 0
	if ((attempt == 1)) && (($(count) == before)) &&
		[[ $(printf '%s\n' "$out" | grep -A1 -- '--- FAIL: ' | tail -1) =~ ^[[:space:]]*context\ deadline\ exceeded$ ]]; then
		echo "fuzz $fn: the run ended with \"context deadline exceeded\" and no failing input: Go's fuzz coordinator race (go.dev/issue/75804); running it once more"
		continue
	fi
	exit 1
done
exit 1
