#!/usr/bin/env bash
# Builds the kvroute-epp image (epp/Dockerfile) with docker buildx, tagged with epp/package.json's
# version — the tag the chart references.
#   npm run image                   this machine's platform, loaded into the local Docker
#   npm run image -- --push         linux/amd64 + linux/arm64, pushed to the registry
#   npm run image -- --dry-run ...  print the docker command instead of running it
# KVROUTE_EPP_IMAGE sets the repository (default ghcr.io/kvroute/kvroute-epp), e.g.
#   KVROUTE_EPP_IMAGE=registry.example.com/team/kvroute-epp npm run image -- --push
# Needs Docker with buildx (and `docker login` to the registry for --push). Without a Docker engine,
# `bash epp/scripts/check-image-build.sh` replays the Dockerfile's steps instead.
set -euo pipefail
cd "$(dirname "$0")/.."

repository=${KVROUTE_EPP_IMAGE:-ghcr.io/kvroute/kvroute-epp}
if ! [[ "$repository" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]]; then
  echo "build-image: KVROUTE_EPP_IMAGE '$repository' is not an image repository; use registry/path/name without a tag, e.g. registry.example.com/team/kvroute-epp" >&2
  exit 2
fi
version=$(node -p "require('./epp/package.json').version")
image="$repository:$version"

push=false dry=false
for arg in "$@"; do
  case "$arg" in
    --push) push=true ;;
    --dry-run) dry=true ;;
    *) echo "build-image: unknown option '$arg'; use --push and/or --dry-run" >&2; exit 2 ;;
  esac
done

if $push; then
  cmd=(docker buildx build -f epp/Dockerfile --platform linux/amd64,linux/arm64 -t "$image" --push .)
else
  cmd=(docker buildx build -f epp/Dockerfile -t "$image" --load .)
fi
if $dry; then
  echo "${cmd[*]}"
  exit 0
fi
if ! command -v docker >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
  echo "build-image: needs docker with the buildx plugin ($(command -v docker >/dev/null 2>&1 && echo 'docker buildx is missing' || echo 'docker is not installed')) to build $image; without a Docker engine, 'bash epp/scripts/check-image-build.sh' checks the build steps" >&2
  exit 1
fi
echo "build-image: $image"
"${cmd[@]}"
echo "build-image: built $image$($push && echo ' and pushed it (linux/amd64, linux/arm64)')"
