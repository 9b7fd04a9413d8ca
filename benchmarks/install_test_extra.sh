#!/bin/bash
# Install time of the `test` extra with and without azure-ai-ml (issue 8: is putting the azureml
# extra into `test` cheap enough for CI?). Fresh venv per variant; run twice and take the second
# (warm pip cache) figure. Usage, from the repository root:
#   rm -rf /tmp/rt-new /tmp/rt-old && mkdir /tmp/rt-new /tmp/rt-old
#   git archive HEAD | tar -x -C /tmp/rt-new && git archive HEAD | tar -x -C /tmp/rt-old
#   sed -i 's/, "releasetest\[azureml\]"\]/]/' /tmp/rt-old/pyproject.toml
#   benchmarks/install_test_extra.sh /tmp/rt-old /tmp/rt-new
set -e
for src in "$@"; do
  venv=$(mktemp -d /tmp/rt-venv.XXXX)
  python3.11 -m venv "$venv"
  s=$(date +%s.%N)
  "$venv/bin/pip" install -q "$src[test]" > "$venv.log" 2>&1
  e=$(date +%s.%N)
  echo "$src install_s=$(echo "$e - $s" | bc) packages=$("$venv/bin/pip" list 2>/dev/null | tail -n +3 | wc -l)" \
       "size=$(du -sm "$venv" | cut -f1)MB pip_check=\"$("$venv/bin/pip" check 2>&1 | tail -1)\""
  rm -rf "$venv" "$venv.log"
done
