#!/usr/bin/env bash
# action.yml's gate step: the gate with annotations (workflow commands), the review when asked, SARIF for the
# upload step and the step summary; the verdict as a step output; the gate's own exit code.
set -uo pipefail
base="${INPUT_BASE:-}"
if [ -z "$base" ]; then
  base="origin/${GITHUB_BASE_REF:-main}"
fi
args=(gate --base "$base" --format github --sarif-out truthplane.truth.sarif
      --summary-out "${GITHUB_STEP_SUMMARY:-truthplane-summary.md}")
for verifier in ${INPUT_VERIFIERS:-}; do
  args+=(--verifier "$verifier")
done
if [ -n "${INPUT_FAIL_ON:-}" ]; then
  args+=(--fail-on "$INPUT_FAIL_ON")
fi
if [ "${INPUT_REVIEW:-false}" = "true" ]; then
  args+=(--review github)
fi
truthplane "${args[@]}"
code=$?
case "$code" in
  0) verdict=APPROVE ;;
  1) verdict=REJECT ;;
  3) verdict=REVIEW ;;
  *) verdict=UNVERIFIED ;;
esac
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "verdict=$verdict" >> "$GITHUB_OUTPUT"
fi
exit "$code"
