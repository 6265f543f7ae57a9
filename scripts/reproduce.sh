#!/usr/bin/env bash
# `make reproduce`: run every canned experiment (configs/experiment/NAME.yaml, or the NAMEs given)
# as `vgx sweep +experiment=NAME`, then print whether each sweep shows its published result.
# Re-running resumes: runs already finished with the same config are skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
VGX=${VGX:-.venv/bin/vgx}
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-outputs/reproduce}

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for file in configs/experiment/*.yaml; do names+=("$(basename "$file" .yaml)"); done
fi

failed=0
dirs=()
for name in "${names[@]}"; do
  start=$SECONDS
  "$VGX" sweep +experiment="$name" hydra.sweep.dir="$OUT/$name" progress=false || failed=1
  echo "== $name: $((SECONDS - start)) s"
  dirs+=("$OUT/$name")
done
echo
"$PYTHON" -m vgx.experiments "${dirs[@]}" || failed=1
exit $failed
