#!/usr/bin/env bash
# The fuzz targets' short run (CI) or a campaign: each of the four targets for SECONDS, one after
# another, under libFuzzer's memory and time limits (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS]            default 60 per target; PYTHON (default: python) must have
#                                    vaecodec's dev install and atheris (pip install atheris)
#   FUZZ_TARGETS="decompress info" fuzz/run.sh 3600     some targets only
#   FUZZ_KEEP_GOING=1 fuzz/run.sh 3600                  a campaign: a found input does not end the
#                                    target's run (libFuzzer's fork mode, one worker: -fork=1
#                                    -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); every
#                                    distinct one is saved, and the run still fails at the end
#
# Per target, under fuzz/out/TARGET/ (ignored by git): corpus/ (what the run added; the committed
# seeds in fuzz/corpus/TARGET are read, never written), crashes/ (crash-*, timeout-*, oom-*,
# hang-* inputs), log (libFuzzer's output), outcomes (how the inputs ended). The exit status is 1
# if any target failed: an exception the contract does not allow, a hang over 10 s, memory over
# 2048 MB, a native crash. Replay a saved input with: python fuzz/TARGET.py --replay FILE
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
python="${PYTHON:-python}"
targets=(${FUZZ_TARGETS:-decompress pillow_open info compress})
rss_mb=2048
timeout_s=10

"$python" -c "import atheris, vaecodec" || { echo "fuzz/run.sh: $python needs atheris and vaecodec (pip install atheris)" >&2; exit 2; }
keep_going=()
[[ "${FUZZ_KEEP_GOING:-0}" == 1 ]] && keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
failed=()
for target in "${targets[@]}"; do
    out="fuzz/out/$target"
    rm -rf "$out/crashes" "$out/outcomes"  # what an earlier run found stays only until the next
    mkdir -p "$out/corpus" "$out/crashes"
    printf '== %s: %s s\n' "$target" "$seconds"
    VAECODEC_FUZZ_ARTIFACTS="$out/crashes" VAECODEC_FUZZ_OUTCOMES="$out/outcomes" \
        "$python" "fuzz/$target.py" "$out/corpus" "fuzz/corpus/$target" \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
        -artifact_prefix="$out/crashes/" -print_final_stats=1 "${keep_going[@]}" >"$out/log" 2>&1
    status=$?
    # the seeds' coverage, the end's (normal and fork mode), libFuzzer's final figures, the outcomes
    grep -E '^#[0-9]+[[:space:]]+INITED' "$out/log" | head -1
    grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$out/log" | tail -1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$out/log"
    [[ -f "$out/outcomes" ]] && head -6 "$out/outcomes"
    found=("$out"/crashes/*)
    if [[ $status -ne 0 || -e "${found[0]}" ]]; then
        failed+=("$target")
        echo "== $target FAILED (status $status); the input(s) in $out/crashes/, the log in $out/log:" >&2
        grep -E -A 30 'CONTRACT VIOLATION|ContractViolation|ERROR: libFuzzer|Uncaught Python exception|==ERROR' "$out/log" | head -60 >&2
    fi
done
if (( ${#failed[@]} )); then
    echo "fuzz/run.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets, $seconds s each, no failure"
