#!/usr/bin/env bash
# System (Debian) packages the platform needs besides the Python venv: Orthanc with its DICOMweb plugin (the
# PACS of the ingest tests and of the one-machine stack) and Chromium + chromedriver (the UI's browser tests).
# Called by `make setup`. Installs only what is missing, only as root with apt-get; otherwise it says what to
# install and exits 0 (the tests that need a missing package skip with the reason). Fast when all is present.
set -u
PACKAGES=(orthanc orthanc-dicomweb chromium chromium-driver)

missing=()
for p in "${PACKAGES[@]}"; do
  # dpkg-query status "install ok installed" means present; anything else (or not known) means missing.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: system packages missing: ${missing[*]} (install them with: sudo apt-get install ${missing[*]});" \
       "the Orthanc and browser tests skip without them" >&2
  exit 0
fi

echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a colleague's, unattended upgrades) may hold the lock: wait for it rather than fail.
if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || true
  if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "warning: apt-get could not install ${missing[*]}; the tests that need them will skip" >&2
    exit 0
  fi
fi
# The Debian package starts Orthanc as a system service on 4242/8042; the tests start their own on free
# ports, so the service is left as the package set it up.
exit 0
