#!/usr/bin/env bash
# Installs the Debian 12 packages mailgrid needs, as root.
#   deploy/install-deps.sh build   compilers and libraries only
#   deploy/install-deps.sh demo    build + Postfix and swaks for the demo
#   deploy/install-deps.sh all     everything the test suite runs against
# Services that the packages would start (Postfix on :25, slapd, Redis,
# Cyrus, nginx) are kept from starting: the suite starts its own, on
# loopback, from temporary directories.
set -euo pipefail

what=${1:-all}
build_pkgs=(build-essential cmake ninja-build pkg-config python3
    libldap-dev libsasl2-dev libmilter-dev libhiredis-dev doctest-dev libasio-dev libssl-dev
    libcrypt-dev libargon2-dev libcli11-dev liblmdb-dev)
demo_pkgs=(postfix swaks)
test_pkgs=(clang libclang-rt-14-dev slapd ldap-utils postfix postfix-ldap redis-server swaks sasl2-bin
    libsasl2-modules cyrus-imapd cyrus-pop3d cyrus-murder cyrus-admin cyrus-clients nginx libnginx-mod-mail maildrop
    dpkg-dev)
# mailgrid_policy: libmilter's test harness (the MTA side of the milter
# protocol, as Sendmail speaks it; sendmail-bin conflicts with postfix) and
# postfwd, the policy server its benchmark runs against.
test_pkgs+=(miltertest postfwd)
# maildir_deliver's peers: dovecot-lda, doveadm and Dovecot's LMTP (no
# imap-server: cyrus-imapd stays installable).
test_pkgs+=(dovecot-core dovecot-lmtpd)

# The webmail browser test: Roundcube (run by PHP's own server) and headless
# Chromium driven through chromedriver. Without their recommends, which
# would bring systemd, apache2 and a desktop.
browser_pkgs=(roundcube-core roundcube-sqlite3 php-cli php-sqlite3 chromium chromium-driver)

case $what in
    build) pkgs=("${build_pkgs[@]}") ;;
    demo) pkgs=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
    all) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${browser_pkgs[@]}") ;;
    *) echo "usage: $0 build|demo|all" >&2; exit 64 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: run as root (apt-get install)" >&2
    exit 77
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
echo "roundcube-core roundcube/dbconfig-install boolean false" | debconf-set-selections

policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=yes
fi
trap '[ "$own_policy" = yes ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
norecommends=()
plain=()
for p in "${missing[@]}"; do
    if [[ " ${browser_pkgs[*]} " == *" $p "* ]]; then norecommends+=("$p"); else plain+=("$p"); fi
done
[ ${#plain[@]} -eq 0 ] || apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${plain[@]}" >/dev/null
[ ${#norecommends[@]} -eq 0 ] ||
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${norecommends[@]}" >/dev/null
echo "installed: ${missing[*]}"
