#!/bin/bash
# Fresh venv per variant, pip cache warm (both variants' wheels were already downloaded by the worktree venv).
set -e
for v in old new; do
  rm -rf /tmp/azml/venv-$v
  python3.11 -m venv /tmp/azml/venv-$v
  /tmp/azml/venv-$v/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  s=$(date +%s.%N)
  /tmp/azml/venv-$v/bin/pip install -q "/tmp/azml/src-$v[test]" > /tmp/azml/install-$v.log 2>&1
  e=$(date +%s.%N)
  echo "$v install_s=$(echo "$e - $s" | bc) packages=$(/tmp/azml/venv-$v/bin/pip list 2>/dev/null | tail -n +3 | wc -l) size=$(du -sm /tmp/azml/venv-$v | cut -f1)MB check=$(/tmp/azml/venv-$v/bin/pip check 2>&1 | tail -1)"
done
