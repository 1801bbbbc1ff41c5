#!/usr/bin/env bash
# The Debian package, installed on this machine as a user would: builds it (from the dev
# build: `pkg/deb/test.sh release` for the release one), installs it with dpkg, checks the
# installed files, the service's user and unit, runs the installed binary (--version,
# validate, and `serve` as the unit starts it), then purges it and checks nothing is left.
# Needs root (or sudo); CI runs it from .ci/run.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

fail() { echo "package test: $*" >&2; exit 1; }

if dpkg -s octoflow >/dev/null 2>&1; then
    fail "octoflow is installed on this machine already; the test would replace it"
fi
had_user=no
if getent passwd octoflow >/dev/null; then had_user=yes; fi
had_state=no
if [ -e /var/lib/octoflow ]; then had_state=yes; fi

pkg/deb/build.sh "${1:-dev}"
deb="$(ls target/debian/octoflow_*.deb | head -n 1)"
work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    $sudo dpkg -P octoflow >/dev/null 2>&1 || true
    if [ "$had_user" = no ] && getent passwd octoflow >/dev/null; then
        $sudo deluser --quiet --system octoflow >/dev/null 2>&1 || true
        $sudo delgroup --quiet --system octoflow >/dev/null 2>&1 || true
    fi
    if [ "$had_state" = no ]; then $sudo rm -rf /var/lib/octoflow; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "package test: installing $deb"
$sudo dpkg -i "$deb"

# The binary, from its installed path.
version="$(/usr/bin/octoflow --version)"
expected="octoflow $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)"
[ "$version" = "$expected" ] || fail "--version says '$version', expected '$expected'"

mkdir -p "$work/data/flows"
printf 'steps:\n  - name: hi\n    exec: {command: [echo, hi]}\n' >"$work/data/flows/hi.yml"
/usr/bin/octoflow validate --data "$work/data" >/dev/null || fail "validate refused a good flow"
printf 'steps:\n  - name: hi\n    exec: {comand: [echo, hi]}\n' >"$work/data/flows/bad.yml"
if out="$(/usr/bin/octoflow validate --data "$work/data" 2>&1)"; then
    fail "validate took a misspelt field"
fi
grep -q "unknown field \`comand\`" <<<"$out" || fail "validate said: $out"

# The files, where Debian's tools look for them.
for file in \
    /usr/lib/systemd/system/octoflow.service \
    /etc/octoflow/config.yml \
    /usr/share/bash-completion/completions/octoflow \
    /usr/share/zsh/vendor-completions/_octoflow \
    /usr/share/fish/vendor_completions.d/octoflow.fish \
    /usr/share/man/man1/octoflow.1.gz \
    /usr/share/man/man1/octoflow-serve.1.gz \
    /usr/share/doc/octoflow/copyright; do
    [ -f "$file" ] || fail "$file is missing"
done
zcat /usr/share/man/man1/octoflow-serve.1.gz | grep -q '^\.TH' || fail "octoflow-serve.1 is not a manual page"
grep -q "complete" /usr/share/bash-completion/completions/octoflow || fail "no bash completion"
dpkg-query -W -f='${Conffiles}\n' octoflow | grep -q /etc/octoflow/config.yml ||
    fail "config.yml is not a conffile"

# The service's user, its data directory and its config, readable by it alone.
getent passwd octoflow >/dev/null || fail "no octoflow user"
[ "$(stat -c %U:%a /var/lib/octoflow)" = "octoflow:750" ] || fail "/var/lib/octoflow: $(stat -c %U:%a /var/lib/octoflow)"
[ "$(stat -c %G:%a /etc/octoflow/config.yml)" = "octoflow:640" ] || fail "config.yml: $(stat -c %G:%a /etc/octoflow/config.yml)"

# The unit, checked by systemd where it can be.
unit=/usr/lib/systemd/system/octoflow.service
grep -q '^ExecStart=/usr/bin/octoflow serve --data /var/lib/octoflow --config /etc/octoflow/config.yml$' "$unit" ||
    fail "unexpected ExecStart"
if command -v systemd-analyze >/dev/null; then
    if ! report="$(systemd-analyze verify "$unit" 2>&1)"; then
        fail "systemd-analyze verify: $report"
    fi
    # Messages about the machine (no running systemd, other units) are not the unit's.
    if grep -i "octoflow.service" <<<"$report" | grep -vi "not running\|/run/systemd"; then
        fail "systemd-analyze verify found problems in the unit"
    fi
    echo "package test: systemd-analyze verify passed"
else
    echo "package test: systemd-analyze not available; unit not verified"
fi

# The service's command, as its user, with the packaged config (on a free port).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
$sudo runuser -u octoflow -- env OCTOFLOW_LISTEN="127.0.0.1:$port" \
    /usr/bin/octoflow serve --data /var/lib/octoflow --config /etc/octoflow/config.yml \
    >"$work/serve.log" 2>&1 &
server=$!
ready=no
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/readyz', timeout=1)" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.1
done
[ "$ready" = yes ] || fail "the packaged service did not become ready: $(cat "$work/serve.log")"
[ -f /var/lib/octoflow/octoflow.db ] || fail "no store in /var/lib/octoflow"
[ "$(stat -c %U /var/lib/octoflow/octoflow.db)" = octoflow ] || fail "the store is not the service user's"
$sudo pkill -TERM -f "^/usr/bin/octoflow serve --data /var/lib/octoflow" || true
wait "$server" || true
server=""

# Removal: purging leaves no file of the package (the data directory is kept on purpose).
$sudo dpkg -P octoflow
if dpkg -s octoflow >/dev/null 2>&1; then fail "still installed after purge"; fi
for file in /usr/bin/octoflow "$unit" /etc/octoflow/config.yml /usr/share/man/man1/octoflow.1.gz \
    /etc/systemd/system/multi-user.target.wants/octoflow.service; do
    [ ! -e "$file" ] || fail "$file is left after purge"
done
echo "package test: passed ($deb)"
