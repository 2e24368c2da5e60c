#!/usr/bin/env bash
# Installs what building and testing amxq needs, when it is missing (Debian/Ubuntu, apt-get).
# Sourced by tools/demo.sh and tools/test-all.sh; does nothing when everything is present.
amxq_need_pkgs=(meson ninja-build pkg-config gcc g++ clang clang-format python3 binutils
                libnuma-dev libbenchmark-dev libsimde-dev)

amxq_install_deps() {
    local missing=()
    for p in "${amxq_need_pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "amxq: installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
}
