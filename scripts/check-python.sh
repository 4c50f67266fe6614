#!/usr/bin/env bash
# Check that PYTHON (argument 1) is a CPython 3.11 that microlambda can embed and make a venv with: a shared
# libpython to link against (pyo3) and the venv/ensurepip modules. Print exactly what to install otherwise.
set -u
py="${1:-}"
debian_fix="  Debian/Ubuntu, as root (or with sudo): apt-get install python3.11 python3.11-venv libpython3.11-dev"
pyenv_fix="  pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install --force 3.11 && pyenv local 3.11"
again="  then run make again (or point it at an interpreter: make PYTHON=/path/to/python3.11 ...)"
if [ -z "$py" ] || ! command -v "$py" >/dev/null 2>&1; then
    echo "setup: no python3.11 (nor python3) on PATH; microlambda needs CPython 3.11 with a shared libpython:" >&2
    printf '%s\n%s\n%s\n' "$debian_fix" "$pyenv_fix" "$again" >&2
    exit 1
fi
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
impl=$("$py" -c 'import platform; print(platform.python_implementation())' 2>/dev/null)
if [ "$version" != "3.11" ] || [ "$impl" != "CPython" ]; then
    echo "setup: $py is $impl $version; microlambda needs CPython 3.11 (checkpoints are bytecode-exact):" >&2
    printf '%s\n%s\n%s\n' "$debian_fix" "$pyenv_fix" "$again" >&2
    exit 1
fi
# The library the linker needs (libpython3.11.so, unversioned), where sysconfig says it would be.
if ! "$py" - <<'PY'
import os, sys, sysconfig as s
v = s.get_config_var
name = "libpython%s.so" % v("LDVERSION")
dirs = [v("LIBDIR"), os.path.join(v("LIBDIR") or "", v("MULTIARCH") or ""), v("LIBPL")]
sys.exit(0 if any(d and os.path.exists(os.path.join(d, name)) for d in dirs) else 1)
PY
then
    echo "setup: $py has no shared libpython3.11.so to link against (pyo3 embeds CPython). Install one:" >&2
    case "$("$py" -c 'import sys; print(sys.prefix)')" in
        */.pyenv/*) printf '%s\n%s\n' "$pyenv_fix" "  (pyenv builds a static libpython by default)" >&2 ;;
        /usr) printf '%s\n' "$debian_fix" >&2 ;;
        *) printf '%s\n%s\n' "$debian_fix" "$pyenv_fix" >&2 ;;
    esac
    echo "$again" >&2
    exit 1
fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: $py cannot make a venv (no ensurepip):" >&2
    printf '%s\n%s\n' "$debian_fix" "$again" >&2
    exit 1
fi
