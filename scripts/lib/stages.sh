# Stage bookkeeping for scripts/test.sh, sourced (tests/unit/test_test_sh.py drives it on a
# tiny test tree of its own). Functions:
#   run_stage NAME COMMAND...   run one stage, time it, record ok/FAILED and its detail line
#   run_pytest ARGS...          pytest for the current stage, with its per-test time limit; the
#                               stage passes only if a test ran, none failed and every skip is on
#                               the allowed list (see sriov_stage_report.py next to this file)
#   print_summary               one line per stage, the skips it allowed, a total; non-zero if
#                               any stage failed
# Settings (set before calling):
#   STAGES             stage names to run, space-separated (default: every stage)
#   ALLOWED_SKIPS      the reviewed allowed-skips list (default: tests/allowed_skips.txt of the repo)
#   STAGE_REPORT_DIR   where each stage's JSON report goes (default: a fresh temporary directory)
#   EXTRA_PYTEST_ARGS  the user's extra pytest arguments, as text, named when a stage selects
#                      nothing
#   stage_timeout[NAME]  seconds one test of stage NAME may take (pytest-timeout; default 1800)

stages_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ALLOWED_SKIPS=${ALLOWED_SKIPS:-$(cd "$stages_lib/../.." && pwd)/tests/allowed_skips.txt}
STAGE_REPORT_DIR=${STAGE_REPORT_DIR:-$(mktemp -d /tmp/sriov-stages-XXXXXX)}
EXTRA_PYTEST_ARGS=${EXTRA_PYTEST_ARGS:-}
STAGES=${STAGES:-}
not_run=()
declare -A stage_timeout=()
declare -A stage_detail=()
stage_names=()
failed=()
summary=()
current_stage=

# Lock fds the caller holds (in HELD_FDS) are not for its children: a long-lived child would
# keep the lock after the caller is gone. Call in the child's subshell before exec.
HELD_FDS=${HELD_FDS:-}
close_held_fds() {
    local fd
    for fd in $HELD_FDS; do
        exec {fd}>&-
    done
}

heading() {
    printf '\n===== %s =====\n' "$1"
}

run_stage() {
    local name=$1 start status
    shift
    if [ -n "$STAGES" ] && [[ " $STAGES " != *" $name "* ]]; then
        not_run+=("$name")
        return 0
    fi
    heading "$name"
    current_stage=$name
    stage_names+=("$name")
    start=$SECONDS
    "$@"
    status=$?
    summary+=("$(printf '%-7s %-6s %4ss  %s' "$name" "$([ "$status" -eq 0 ] && echo ok || echo FAILED)" \
        $((SECONDS - start)) "${stage_detail[$name]:-exit status $status}")")
    [ "$status" -eq 0 ] || failed+=("$name")
    current_stage=
}

run_pytest() {
    local name=${current_stage:-pytest} report verdict status
    report="$STAGE_REPORT_DIR/$name.json"
    rm -f "$report"
    (
        close_held_fds
        SRIOV_STAGE_REPORT=$report PYTHONPATH="$stages_lib${PYTHONPATH:+:$PYTHONPATH}" \
            exec pytest -p sriov_stage_report --timeout "${stage_timeout[$name]:-1800}" "$@"
    )
    verdict=$(python3 "$stages_lib/sriov_stage_report.py" "$report" \
        --allowed "$ALLOWED_SKIPS" --extra-args "$EXTRA_PYTEST_ARGS")
    status=$?
    stage_detail[$name]=$verdict
    printf '%s: %s\n' "$name" "$verdict"
    return "$status"
}

print_summary() {
    local report passed=0 failed_tests=0 skipped=0 counts
    heading "summary"
    printf '%s\n' "${summary[@]}"
    for name in "${stage_names[@]}"; do
        report="$STAGE_REPORT_DIR/$name.json"
        [ -f "$report" ] || continue
        counts=$(python3 -c 'import json, sys
o = json.load(open(sys.argv[1]))["outcomes"].values()
print(*(sum(1 for x in o if x == k) for k in ("passed", "failed", "skipped")))' "$report") || continue
        read -r p f s <<<"$counts"
        passed=$((passed + p)) failed_tests=$((failed_tests + f)) skipped=$((skipped + s))
    done
    for name in $STAGES; do
        if [[ " ${stage_names[*]} " != *" $name "* ]]; then
            echo "unknown stage: $name (stages: ${stage_names[*]} ${not_run[*]})"
            failed+=("$name")
        fi
    done
    [ "${#not_run[@]}" -eq 0 ] || echo "not run (--stage): ${not_run[*]}"
    if [ "${#failed[@]}" -ne 0 ]; then
        echo "failed stages: ${failed[*]}"
    else
        echo "all stages passed"
    fi
    # pytest's own closing words, over every stage, as the last line
    echo "total: $passed passed, $failed_tests failed, $skipped skipped"
    [ "${#failed[@]}" -eq 0 ]
}
