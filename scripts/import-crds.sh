#!/usr/bin/env bash
# Regenerate imports/*.ts from the pinned CRD files with cdk8s-cli (offline).
#
# Usage: scripts/import-crds.sh [CRD_DIR]   (default: ../shared/crds)
#
# Each CRD gets its own module name (`name:=file`) because cdk8s writes one module per API group and
# files of the same group would otherwise overwrite each other. The CRD YAML files are never copied
# into this repository; only the generated TypeScript is committed. The upstream URL and tag of every
# file are recorded in cdk8s.yaml (comments), so a user with internet access can fetch the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
crd_dir="${1:-../shared/crds}"
if [ ! -d "$crd_dir" ]; then
  echo "import-crds: CRD directory '$crd_dir' does not exist; pass the folder holding the CRD YAML files" >&2
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

for m in "${modules[@]}"; do
  name="${m%%:=*}"
  file="${m#*:=}"
  if [ ! -f "$crd_dir/$file" ]; then
    echo "import-crds: missing $crd_dir/$file (expected CRD for module '$name')" >&2
    exit 1
  fi
  echo "import-crds: $name <- $crd_dir/$file"
  npx cdk8s import "$name:=$crd_dir/$file" --language typescript --output imports --no-save >/dev/null
done
ls imports
