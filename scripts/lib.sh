# shellcheck shell=bash
# Shared set-up steps for scripts/up and scripts/test. Source it; don't run it.
#
# Everything here is idempotent: on a machine that already has what is needed,
# the steps only check and return.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' (not root, and sudo is not installed)"
  fi
}

_APT_UPDATED=0

# apt_install PKG...: install Debian packages (apt-get update at most once per run).
#
# Package scripts must not start services (nginx would take port 80, a stock
# PostgreSQL cluster would take 5432 with the wrong auth): a temporary
# policy-rc.d tells invoke-rc.d to start nothing while we install.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself"
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added_policy=1
  fi
  local status=0
  {
    if [[ $_APT_UPDATED -eq 0 ]]; then
      say "apt-get update"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq && _APT_UPDATED=1
    fi &&
      say "apt-get install $*" &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  } || status=$?
  if [[ $added_policy -eq 1 ]]; then as_root rm -f "$policy"; fi
  [[ $status -eq 0 ]] || die "apt-get install $* failed (exit $status)"
}

# Pick the interpreter for the venv: $PYTHON, else python3.11, else python3; it must be >= 3.11.
_pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [[ -n $candidate ]] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  die "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)"
}

# ensure_venv EXTRAS: create .venv when missing and install the package editable
# with the given extras ("" or "test"). A stamp holding the hash of
# pyproject.toml skips the install when nothing changed since the last one.
ensure_venv() {
  local extras=$1 python
  if [[ ! -x $VENV/bin/python ]]; then
    python=$(_pick_python)
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
      apt_install python3-venv
    fi
    say "creating $VENV with $python"
    "$python" -m venv "$VENV"
  fi
  local want stamp
  want=$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)
  stamp="$VENV/.intentd-installed-${extras:-base}"
  # The test install includes the base one.
  for done_stamp in "$stamp" "$VENV/.intentd-installed-test"; do
    if [[ -f $done_stamp && $(cat "$done_stamp") == "$want" ]]; then
      return 0
    fi
  done
  local target="."
  [[ -z $extras ]] || target=".[${extras}]"
  say "pip install -e '$target'"
  (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$target") ||
    die "pip install -e '$target' failed"
  echo "$want" >"$stamp"
}
