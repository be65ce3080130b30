#!/usr/bin/env bash
# Regenerate imports/*.ts (and imports/schemas) from the pinned CRD files with cdk8s-cli, offline.
#
# Usage: npm run import -- <crd-dir>   (scripts/import-crds.sh <crd-dir>)
#
# cdk8s.yaml's `imports:` lists each module with its pinned upstream URL; <crd-dir> holds the same
# files under the local names below (cdk8s.yaml's table says which file is which). Each CRD gets its
# own module name (`name:=file`) because cdk8s writes one module per API group and files of the same
# group would otherwise overwrite each other. The CRD YAML files are never copied into this
# repository; only the generated TypeScript is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
crd_dir="${1:-}"
if [ -z "$crd_dir" ] || [ ! -d "$crd_dir" ]; then
  echo "import-crds: CRD directory '${crd_dir}' does not exist; pass the folder holding the CRD files cdk8s.yaml lists: npm run import -- <crd-dir>" >&2
  exit 1
fi

# module name := CRD file name (kinds the constructs use)
modules=(
  "modelservice:=modelservice.llm-d.ai.yaml"
  "gateway:=gateway.gateway.networking.k8s.io.yaml"
  "httproute:=httproute.gateway.networking.k8s.io.yaml"
  "envoyfilter:=envoyfilter.networking.istio.io.yaml"
  "destinationrule:=destinationrule.networking.istio.io.yaml"
  "inferencepool:=inferencepool.inference.networking.k8s.io.yaml"
  "servicemonitor:=servicemonitor.monitoring.coreos.com.yaml"
  "podmonitor:=podmonitor.monitoring.coreos.com.yaml"
  "application:=application.argoproj.io.yaml"
)

# The modules here are exactly the ones cdk8s.yaml lists.
listed=$(sed -nE 's/^  - ([a-z0-9-]+):=https:.*/\1/p' cdk8s.yaml | sort | tr '\n' ' ')
mapped=$(for m in "${modules[@]}"; do echo "${m%%:=*}"; done | sort | tr '\n' ' ')
if [ "$listed" != "$mapped" ]; then
  echo "import-crds: cdk8s.yaml imports ($listed) and this script's modules ($mapped) differ; list every module in both" >&2
  exit 1
fi

for m in "${modules[@]}"; do
  name="${m%%:=*}"
  file="${m#*:=}"
  if [ ! -f "$crd_dir/$file" ]; then
    echo "import-crds: missing $crd_dir/$file (expected CRD for module '$name')" >&2
    exit 1
  fi
  echo "import-crds: $name <- $crd_dir/$file"
  npx cdk8s import "$name:=$crd_dir/$file" --language typescript --output imports --no-save --no-check-upgrade >/dev/null
done

# JSON schemas of the same CRDs for the manifest validation tests (imports/schemas).
npx tsx scripts/crd-schemas.ts "$crd_dir" imports/schemas
ls imports
