#!/usr/bin/env bash
# Runs the repository's fuzz targets one after the other, each for a set
# time, and prints one summary line per target. go test runs only their
# seed corpora; this runs the fuzzer itself.
#
#   scripts/fuzz.sh [duration] [package.FuzzName ...]
#
# duration is go test's -fuzztime for each target (default 10m; e.g. 30s,
# 1h, or 100000x for a count of runs). Without names, every Fuzz function
# of the repository's test files is run (consumer.FuzzHandle,
# pyjson.FuzzDecode, pyjson.FuzzDecodeLimited, ...). Each target's full
# output is kept in a directory the script names. A target that fails
# leaves its input in <package>/testdata/fuzz/<FuzzName>/ (go test reruns
# it as a seed from then on) and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH

duration=${1:-10m}
shift || true

if [ $# -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(
		git ls-files '*_test.go' 2>/dev/null | xargs grep -H -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' |
			sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1.\2#' | sort -u
	)
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 2
fi

logs=$(mktemp -d /tmp/fuzz-XXXXXX)
echo "fuzz.sh: ${#targets[@]} targets, $duration each; full output in $logs" >&2
status=0
for target in "${targets[@]}"; do
	pkg=${target%.*}
	name=${target##*.}
	log="$logs/${pkg//\//_}.$name.log"
	started=$(date +%s)
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" "./$pkg" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		status=1
		if input=$(grep -o 'Failing input written to [^ ]*' "$log" | tail -1); then
			result="FAIL (${input#Failing input written to }; rerun: go test -run '$name' ./$pkg)"
		else
			result="FAIL ($(grep -m1 -E 'FAIL|panic|error' "$log" || tail -1 "$log"))"
		fi
	fi
	wall=$(($(date +%s) - started))
	# The fuzzer's last progress line, "fuzz: elapsed: 10m0s, execs: N (R/sec),
	# new interesting: K (total: T)", whose rate is the last interval's:
	# print the average instead.
	progress=$(grep -E '^fuzz: elapsed: [0-9hms.]+, execs: ' "$log" | tail -1 | awk '{
		d = $3; sub(/,$/, "", d); s = 0
		if (match(d, /[0-9.]+h/)) s += 3600 * substr(d, RSTART, RLENGTH - 1)
		if (match(d, /[0-9.]+m/)) s += 60 * substr(d, RSTART, RLENGTH - 1)
		if (match(d, /[0-9.]+s/)) s += substr(d, RSTART, RLENGTH - 1)
		execs = $5; total = $11; sub(/\)$/, "", total)
		printf "fuzzed %s: %d execs (%d/s), %d new interesting (corpus %d)", d, execs, (s > 0 ? execs / s : 0), $9, total
	}' || true)
	printf '%-32s %-80s %s (%ds)\n' "$target" "${progress:-no fuzzing progress}" "$result" "$wall"
done
exit $status
