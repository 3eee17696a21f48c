#!/usr/bin/env bash
# Copy sequoia's shipped policies (policies/*.rego, Rego tests left out)
# into the Kustomize base and the Helm chart, and list them in the base's
# configMapGenerator. The deploy tests fail until this has been run after
# a change in policies/.
set -euo pipefail
cd "$(dirname "$0")"
for dir in kustomize/base/policies helm/sequoia/files/policies; do
  rm -f "$dir"/*.rego
  mkdir -p "$dir"
  for f in ../policies/*.rego; do
    case $f in *_test.rego) continue ;; esac
    cp "$f" "$dir/"
  done
done
k=kustomize/base/kustomization.yaml
# Replace the generator's file list (the lines after "    files:") with the copies.
awk -v files="$(cd kustomize/base && ls policies/*.rego)" '
  /^    files:$/ { print; n = split(files, f, "\n"); for (i = 1; i <= n; i++) print "      - " f[i]; skip = 1; next }
  skip && /^      - / { next }
  { skip = 0; print }
' "$k" > "$k.tmp" && mv "$k.tmp" "$k"
echo "copied $(ls kustomize/base/policies | wc -l) policies"
