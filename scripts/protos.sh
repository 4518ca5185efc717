#!/usr/bin/env bash
# Generate the Python code of proto/ (messages, type stubs, gRPC stubs) into
# titus/api/grpc/gen/, which is committed: installing titus needs no code generator.
#
#   scripts/protos.sh          regenerate after changing a .proto file
#   scripts/protos.sh --check  exit 1 when the committed code differs from the protos
#
# protoc names imports after the proto directories (`from netflix.titus import ...`);
# the generated modules live flat in one package, so those imports are made relative.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
OUT=titus/api/grpc/gen
LOG_PREFIX=protos
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m grpc_tools.protoc -Iproto \
  --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" \
  proto/netflix/titus/*.proto

mkdir -p "$work/flat"
for f in "$work"/netflix/titus/*.py "$work"/netflix/titus/*.pyi; do
  sed -E 's/^from netflix\.titus import /from . import /' "$f" >"$work/flat/$(basename "$f")"
done
printf '"""Code generated from proto/ by scripts/protos.sh: do not edit."""\n' \
  >"$work/flat/__init__.py"

if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$work/flat" "$OUT" >/dev/null 2>&1; then
    diff -r "$work/flat" "$OUT" >&2 || true
    die "$OUT is stale: run scripts/protos.sh"
  fi
  log "$OUT matches proto/"
  exit 0
fi

rm -rf "$OUT"
cp -r "$work/flat" "$OUT"
log "generated $OUT"
