#!/bin/sh
# Stand-in for the preflight CLI: `preflight.sh <config> <input.pdf> <outdir>`.
# Copies the input to <outdir>/<name>, writes <outdir>/report.xml (a task report with the
# exit code and the error, failure and fix counts) and prints the counts as one JSON line.
# A file whose name contains `broken` gets one error and exit code 1.
set -eu
config=$1
input=$2
outdir=$3
name=$(basename "$input")
mkdir -p "$outdir"
errors=0
failures=0
fixes=2
code=0
case $name in
  *broken*) errors=1; code=1 ;;
esac
cp "$input" "$outdir/$name"
cat > "$outdir/report.xml" <<XML
<TaskReport config="$config" file="$name">
  <ExitCode>$code</ExitCode>
  <Errors>$errors</Errors>
  <Failures>$failures</Failures>
  <Fixes>$fixes</Fixes>
</TaskReport>
XML
printf '{"config": "%s", "errors": %d, "failures": %d, "fixes": %d}\n' "$config" "$errors" "$failures" "$fixes"
exit $code
