#!/usr/bin/env bash
# Runs the build steps of epp/Dockerfile in a clean directory (no Docker engine needed) and checks
# the runtime layout: the CLI starts, under the image's Node version and with its ENTRYPOINT, from
# compiled JS with production dependencies only; the arm64 dependency set holds arm64 binaries.
# Usage: bash epp/scripts/check-image-build.sh   (from the repository root; needs the npm registry)
set -euo pipefail
# Run a step quietly; on failure show its output and stop.
step() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then echo "FAIL: $*"; tail -40 "$log"; exit 1; fi
  rm -f "$log"
}
root=$(cd "$(dirname "$0")/../.." && pwd)
dockerfile="$root/epp/Dockerfile"
# The image's Node is the project's: run the checks with node_modules/.bin/node when installed.
[ -x "$root/node_modules/.bin/node" ] && PATH="$root/node_modules/.bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/src" deps="$work/deps" deps_arm64="$work/deps-arm64" app="$work/app"
mkdir -p "$src/epp" "$deps/epp" "$deps_arm64/epp" "$app/epp"
fail=0

echo "== Dockerfile: the steps replayed here are the Dockerfile's"
for line in \
  'FROM --platform=$BUILDPLATFORM node:' \
  '-bookworm-slim AS compile' \
  'RUN npm ci --workspace epp --include-workspace-root=false --ignore-scripts --no-audit --no-fund' \
  'RUN npm run build -w epp' \
  '-bookworm-slim AS deps' \
  'npm ci --omit=dev --workspace epp --include-workspace-root=false --ignore-scripts' \
  '--os="$TARGETOS" --cpu="$cpu" --no-audit --no-fund' \
  'COPY --from=deps /src/node_modules ./node_modules' \
  'COPY --from=compile /src/epp/dist ./epp/dist' \
  'USER 65532:65532'; do
  grep -qF -- "$line" "$dockerfile" || { echo "FAIL: epp/Dockerfile no longer contains '$line': update this script with it"; fail=1; }
done
image_node=$(sed -nE 's/^FROM (--platform=\S+ )?node:([0-9]+\.[0-9]+\.[0-9]+)-bookworm-slim.*/\2/p' "$dockerfile" | sort -u)
dev_node=$(node -p "require('$root/package.json').devDependencies.node")
[ "$(grep -c '^FROM ' "$dockerfile")" = 3 ] && [ "$(printf '%s\n' "$image_node" | grep -c .)" = 1 ] || { echo "FAIL: the 3 stages of epp/Dockerfile must use one exact node:X.Y.Z-bookworm-slim (got: $(grep '^FROM ' "$dockerfile" | tr '\n' ';'))"; fail=1; }
[ "$image_node" = "$dev_node" ] || { echo "FAIL: the image's Node ($image_node, epp/Dockerfile FROM lines) differs from the tests' Node ($dev_node, package.json devDependencies.node); use one exact version"; fail=1; }
[ "$(node -p 'process.versions.node')" = "$dev_node" ] || echo "note: checking with Node $(node -v), the image has $image_node"

echo "== compile stage (npm ci of the epp workspace, no scripts; COPY epp; build)"
cp "$root/package.json" "$root/package-lock.json" "$root/tsconfig.base.json" "$src/"
cp "$root/epp/package.json" "$src/epp/package.json"
step bash -c "cd '$src' && npm ci --workspace epp --include-workspace-root=false --ignore-scripts --no-audit --no-fund"
for rootdep in node cdk8s cdk8s-cli; do
  if [ -e "$src/node_modules/$rootdep" ]; then echo "FAIL: the compile stage installs the root's '$rootdep'"; fail=1; fi
done
# COPY epp/ epp/ (the .dockerignore keeps node_modules, dist, tests and the lab out)
tar -C "$root" --exclude='epp/node_modules' --exclude='epp/dist' --exclude='epp/test' --exclude='epp/lab' --exclude='epp/testkit' -cf - epp | tar -C "$src" -xf -
step bash -c "cd '$src' && npm run build -w epp"

echo "== deps stage (production dependencies for linux/amd64 and linux/arm64, no scripts)"
for d in "$deps" "$deps_arm64"; do cp "$root/package.json" "$root/package-lock.json" "$d/"; cp "$root/epp/package.json" "$d/epp/package.json"; done
step bash -c "cd '$deps' && npm ci --omit=dev --workspace epp --include-workspace-root=false --ignore-scripts --os=linux --cpu=x64 --no-audit --no-fund"
step bash -c "cd '$deps_arm64' && npm ci --omit=dev --workspace epp --include-workspace-root=false --ignore-scripts --os=linux --cpu=arm64 --no-audit --no-fund"
[ -e "$deps_arm64/node_modules/zeromq/build/linux/arm64" ] || { echo "FAIL: zeromq has no prebuilt linux-arm64 addon"; fail=1; }
# No package of the arm64 set is built for another CPU or OS (platform packages declare os/cpu).
foreign=$(node -e '
  const fs = require("fs"), path = require("path");
  const bad = [];
  const visit = (dir, depth) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === ".bin") continue;
      const p = path.join(dir, e.name);
      if (e.name.startsWith("@")) { visit(p, depth); continue; }
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(p, "package.json"), "utf8"));
        const ok = (list, want) => !Array.isArray(list) || list.includes(want) || (list.every((x) => x.startsWith("!")) && !list.includes("!" + want));
        if (!ok(pkg.cpu, "arm64") || !ok(pkg.os, "linux")) bad.push(pkg.name + " (cpu " + pkg.cpu + ", os " + pkg.os + ")");
      } catch {}
      if (depth < 4 && fs.existsSync(path.join(p, "node_modules"))) visit(path.join(p, "node_modules"), depth + 1);
    }
  };
  visit(process.argv[1], 0);
  console.log(bad.join(", "));
' "$deps_arm64/node_modules")
[ -z "$foreign" ] || { echo "FAIL: the arm64 dependency set holds packages for another platform: $foreign"; fail=1; }

echo "== runtime stage (COPY --from=deps, --from=compile, epp/package.json, bin, proto)"
cp -r "$deps/node_modules" "$app/node_modules"
cp -r "$src/epp/dist" "$app/epp/dist"
cp -r "$root/epp/package.json" "$root/epp/bin" "$root/epp/proto" "$app/epp/"

echo "== checks"
for dev in typescript jest ts-jest tsx cdk8s cdk8s-plus-28 vega node; do
  if [ -e "$app/node_modules/$dev" ]; then echo "FAIL: dev/root dependency '$dev' is in the runtime image"; fail=1; fi
done
for dep in $(node -p "Object.keys(require('$root/epp/package.json').dependencies).join(' ')"); do
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
# The container's command: the Dockerfile's ENTRYPOINT with /app mapped to the replayed app dir.
mapfile -t entry < <(node -e '
  const m = /^ENTRYPOINT (\[.*\])$/m.exec(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!m) { console.error("no exec-form ENTRYPOINT"); process.exit(1); }
  for (const a of JSON.parse(m[1])) console.log(a.replace(/^\/app\//, process.argv[2] + "/"));
' "$dockerfile" "$app")
[ "${entry[0]:-}" = node ] || { echo "FAIL: the ENTRYPOINT does not start node: ${entry[*]:-none}"; fail=1; }
(cd "$app" && NODE_ENV=production "${entry[@]}" --help >/dev/null) || { echo "FAIL: ENTRYPOINT --help (${entry[*]})"; fail=1; }
(cd "$app" && NODE_ENV=production "${entry[@]}" serve --help | grep -q -- '--zmq-bind') || { echo "FAIL: ENTRYPOINT serve --help"; fail=1; }
echo '[1,2,3,4]' | (cd "$app" && NODE_ENV=production "${entry[@]}" hash --algo sha256_cbor --block-size 2 --hash-seed 42) | grep -q '^\["' || { echo "FAIL: ENTRYPOINT hash"; fail=1; }
echo "runtime size: $(du -sh "$app" | cut -f1) (Node $(node -v))"
[ "$fail" -eq 0 ] && echo "OK: Dockerfile build steps verified in $work"
exit "$fail"
