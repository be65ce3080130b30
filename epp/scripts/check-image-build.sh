#!/usr/bin/env bash
# Runs the build steps of epp/Dockerfile in a clean directory (no Docker engine needed) and checks
# the runtime layout: the CLI starts from compiled JS with production dependencies only.
# Usage: bash epp/scripts/check-image-build.sh   (from the repository root; needs the npm registry)
set -euo pipefail
# Run a step quietly; on failure show its output and stop.
step() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then echo "FAIL: $*"; tail -40 "$log"; exit 1; fi
  rm -f "$log"
}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/src" app="$work/app"
mkdir -p "$src/epp" "$app/epp"

echo "== build stage (COPY manifests; npm ci; COPY epp; build; production-only reinstall)"
cp "$root/package.json" "$root/package-lock.json" "$root/tsconfig.base.json" "$src/"
cp "$root/epp/package.json" "$src/epp/package.json"
step bash -c "cd '$src' && npm ci --no-audit --no-fund"
# COPY epp/ epp/ (the .dockerignore keeps node_modules, dist and test data out)
tar -C "$root" --exclude='epp/node_modules' --exclude='epp/dist' -cf - epp | tar -C "$src" -xf -
step bash -c "cd '$src' && npm run build -w epp"
step bash -c "cd '$src' && rm -rf node_modules epp/node_modules && npm ci --omit=dev --workspace epp --include-workspace-root=false --no-audit --no-fund"

echo "== runtime stage (COPY --from=build)"
cp -r "$src/node_modules" "$app/node_modules"
cp "$src/epp/package.json" "$app/epp/package.json"
cp -r "$src/epp/dist" "$src/epp/bin" "$src/epp/proto" "$app/epp/" 2>/dev/null || cp -r "$src/epp/dist" "$src/epp/bin" "$app/epp/"

echo "== checks"
fail=0
for dev in typescript jest ts-jest cdk8s cdk8s-plus-28 vega; do
  if [ -e "$app/node_modules/$dev" ]; then echo "FAIL: dev/root dependency '$dev' is in the runtime image"; fail=1; fi
done
for dep in zod zeromq ioredis prom-client pino @grpc/grpc-js @huggingface/tokenizers msgpackr; do
  if [ ! -e "$app/node_modules/$dep" ]; then echo "FAIL: runtime dependency '$dep' is missing"; fail=1; fi
done
if find "$app/epp" -name '*.ts' ! -name '*.d.ts' | grep -q .; then echo "FAIL: TypeScript sources in the runtime stage"; fail=1; fi
# The image holds the product only: epp/dist mirrors epp/src; the lab (simulator, demo, benchmarks),
# the test stand-ins and the dev-only chart libraries stay out.
for lab in sim demo bench lab testkit test; do
  if [ -e "$app/epp/dist/$lab" ]; then echo "FAIL: '$lab' is in the image (epp/dist/$lab): it belongs to epp/lab or epp/testkit"; fail=1; fi
done
if grep -rlE "from ['\"](vega|vega-lite)['\"]" "$app/epp/dist" >/dev/null 2>&1; then echo "FAIL: a module in the image imports vega"; fail=1; fi
for d in "$root"/epp/src/*/; do
  n=$(basename "$d"); [ -d "$app/epp/dist/$n" ] || { echo "FAIL: epp/src/$n was not compiled into the image"; fail=1; }
done
(cd "$app" && node epp/bin/kvroute-epp.js --help >/dev/null) || { echo "FAIL: kvroute-epp --help"; fail=1; }
(cd "$app" && node epp/bin/kvroute-epp.js serve --help | grep -q -- '--zmq-bind') || { echo "FAIL: kvroute-epp serve --help"; fail=1; }
echo '[1,2,3,4]' | (cd "$app" && node epp/bin/kvroute-epp.js hash --algo sha256_cbor --block-size 2 --hash-seed 42) | grep -q '^\["' || { echo "FAIL: kvroute-epp hash"; fail=1; }
echo "runtime size: $(du -sh "$app" | cut -f1)"
[ "$fail" -eq 0 ] && echo "OK: Dockerfile build steps verified in $work"
exit "$fail"
