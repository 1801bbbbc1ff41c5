#!/bin/sh
# Stand-in for the preflight CLI: `preflight.sh <config.xml> <input.pdf> <outdir>`.
# Copies the input to <outdir>/<name> and writes <outdir>/report.xml, a task report with the
# exit code and the error, failure and fix counts. A file whose name contains `broken` gets
# one error and exit code 1.
set -eu
config=$1 input=$2 outdir=$3
name=$(basename "$input")
[ -r "$config" ] || { echo "cannot read the config $config" >&2; exit 3; }
errors=0 code=0
case $name in *broken*) errors=1 code=1 ;; esac
mkdir -p "$outdir"
cp "$input" "$outdir/$name"
cat > "$outdir/report.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<TaskReport config="$config" file="$name">
  <ExitCode>$code</ExitCode>
  <Errors>$errors</Errors>
  <Failures>0</Failures>
  <Fixes>2</Fixes>
</TaskReport>
XML
exit $code
