#!/usr/bin/env bash
# Debian packages the project needs, installed only when missing: venv and a compiler with Python headers
# (sagemaker-training and pyinstrument-cext build from source), the sample data, a Java runtime for
# multi-model-server and nginx in front of it, Chromium for the report's rendering check, fonts for class names in
# Chinese, Japanese, Korean and emoji in the reports' figures (8 MB). Uses sudo when not root.
set -euo pipefail
need=()
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v gcc >/dev/null || need+=(gcc)
pyinc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$pyinc/Python.h" ] || need+=(python3-dev)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v java >/dev/null || need+=(default-jre-headless)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
[ -f /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf ] || need+=(fonts-symbola)
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${need[*]}"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
# The local endpoint runs nginx itself; the system service the package starts (a default site on :80) is not wanted.
if [[ " ${need[*]} " == *" nginx "* ]] && [ -d /run/systemd/system ]; then $sudo systemctl disable --now nginx || true; fi
