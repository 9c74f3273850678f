# Shared by .ci/run and .ci/lower-bounds (sourced, not run).

# README's test command: the first line after the `<!-- test-command -->` marker that is not a
# code fence. Fails when it is missing or does not run pytest.
readme_test_command() {
  local cmd
  cmd=$(awk '/<!-- test-command -->/{getline; while ($0 ~ /^```/) getline; print; exit}' README.md)
  if [ -z "$cmd" ]; then
    echo "README.md has no test command after the <!-- test-command --> marker" >&2
    return 1
  fi
  case "$cmd" in
    *"-m pytest"*) ;;
    *) echo "the README test command does not run 'python -m pytest': $cmd" >&2; return 1 ;;
  esac
  printf '%s\n' "$cmd"
}

# The pytest arguments of README's test command (what follows `-m pytest`), so the lower-bound
# job runs exactly the main job's selection.
readme_pytest_args() {
  local cmd
  cmd=$(readme_test_command) || return 1
  printf '%s\n' "${cmd##*-m pytest}"
}

# Turn pytest's exit code into a verdict. 0 passed. 5 means pytest collected no test: a suite of
# several hundred tests that runs none is broken (a wrong path or marker), so it fails, with a
# message saying so, instead of passing silently. Anything else is a failure.
pytest_verdict() {
  local rc=$1 job=$2
  case "$rc" in
    0) echo passed ;;
    5) echo "the $job job's pytest collected no tests (exit 5): failing" >&2
       echo "FAILED (no tests collected)" ;;
    *) echo "FAILED (exit $rc)" ;;
  esac
}
