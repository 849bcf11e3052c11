#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine with Python 3.11, then runs
# the whole suite. Extra arguments go to pytest (./test.sh -k cpyopt).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    xorriso genisoimage p7zip-full libarchive-tools udftools udfclient acl rsync strace xfsprogs e2fsprogs exfatprogs exfat-fuse \
    python3-venv >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
