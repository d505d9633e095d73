#!/usr/bin/env bash
# The mailgrid demo on one machine, with the embedded directory (no LDAP
# server): an unmodified Postfix asks ldap_tablemap where each user's mail
# goes and delivers it into that user's backend mailbox.
#
#   deploy/demo.sh          install, build, start, send a message, show it
#   deploy/demo.sh stop     stop the demo's Postfix and ldap_tablemap
#
# Everything lives in $MAILGRID_DEMO (default /tmp/mailgrid-demo); Postfix
# listens on 127.0.0.1:$MAILGRID_DEMO_SMTP (default 2525), ldap_tablemap on
# 127.0.0.1:10027 (socketmap) and :10031 (tcp_table). Run as root.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
demo=${MAILGRID_DEMO:-/tmp/mailgrid-demo}
smtp_port=${MAILGRID_DEMO_SMTP:-2525}
build=${MAILGRID_BUILD:-$repo/build}

stop() {
    if [ -f "$demo/postfix/etc/main.cf" ]; then postfix -c "$demo/postfix/etc" stop 2>/dev/null || true; fi
    if [ -f "$demo/tablemap.pid" ]; then kill "$(cat "$demo/tablemap.pid")" 2>/dev/null || true; rm -f "$demo/tablemap.pid"; fi
}

if [ "${1:-start}" = stop ]; then
    stop
    echo "demo stopped; files remain in $demo"
    exit 0
fi

step() { printf '\n== %s\n' "$*"; }

step "installing packages (build tools, Postfix, swaks)"
"$repo/deploy/install-deps.sh" demo

step "building ldap_tablemap"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target ldap_tablemap

stop
rm -rf "$demo"
mkdir -p "$demo/postfix/etc" "$demo/postfix/queue" "$demo/postfix/data" "$demo/mail"
chmod 755 "$demo"
chown postfix:postfix "$demo/postfix/data"
chown nobody:nogroup "$demo/mail"

step "the embedded directory and the table files (unchanged ldap_table(5) syntax)"
cp "$repo/deploy/examples/users.ldif" "$demo/users.ldif"
for t in virtual transport relay_domains; do
    sed -e "s|^server_host = .*|server_host = ldif:$demo/users.ldif|" "$repo/deploy/examples/$t.cf" > "$demo/$t.cf"
done
cat > "$demo/mailgrid.cf" <<EOF
tablemap_tables = virtual=$demo/virtual.cf, transport=$demo/transport.cf, relay_domains=$demo/relay_domains.cf
tablemap_socketmap = 127.0.0.1:10027
tablemap_tcp = virtual=127.0.0.1:10031
tablemap_metrics = 127.0.0.1:10029
daemon_user = nobody
EOF
cat "$demo/virtual.cf" | grep -v '^#'

step "starting ldap_tablemap"
"$build/ldap_tablemap/ldap_tablemap" --check -c "$demo/mailgrid.cf"
setsid "$build/ldap_tablemap/ldap_tablemap" -f -c "$demo/mailgrid.cf" >"$demo/tablemap.log" 2>&1 </dev/null &
echo $! > "$demo/tablemap.pid"
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/10027) 2>/dev/null && break
    sleep 0.1
done

# The backends' mailbox list, from the maildrop values in the directory
# (virtual(8) accepts no tcp:, socketmap: or regexp substitutions here).
mailboxes() {
    sed -n 's/^maildrop: \([^@]*\)@\(mail0[0-9]\)\.example\.com$/\1@\2.example.com=\2\/\1\//p' "$demo/users.ldif" |
        sort -u | tr '\n' ' '
}

step "starting a private Postfix on 127.0.0.1:$smtp_port"
cat > "$demo/postfix/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $demo/postfix/queue
data_directory = $demo/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $demo/postfix/maillog
maillog_file_prefixes = $(dirname "$demo"), /var
myhostname = mx.example.com
mydomain = example.com
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_transport = error:no local delivery in the demo
recipient_delimiter = +
# The frontend: who is who, asked of ldap_tablemap.
virtual_alias_domains = socketmap:inet:127.0.0.1:10027:relay_domains
virtual_alias_maps = socketmap:inet:127.0.0.1:10027:virtual
# The two backends, mail01 and mail02, live on this host for the demo.
virtual_mailbox_domains = mail01.example.com, mail02.example.com
virtual_mailbox_base = $demo/mail
virtual_mailbox_maps = inline:{ $(mailboxes) }
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
EOF
cat > "$demo/postfix/etc/master.cf" <<EOF
127.0.0.1:$smtp_port inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 1 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
smtp      unix - - n - - smtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
postfix -c "$demo/postfix/etc" check
postfix -c "$demo/postfix/etc" start >/dev/null

step "a real lookup through Postfix: postmap -q alice@example.com socketmap:...:virtual"
postmap -c "$demo/postfix/etc" -q alice@example.com socketmap:inet:127.0.0.1:10027:virtual
step "the same through tcp_table, with an address extension"
postmap -c "$demo/postfix/etc" -q alice+demo@example.com tcp:127.0.0.1:10031

step "sending a message to alice+demo@example.com with swaks"
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$smtp_port") 2>/dev/null && break; sleep 0.1; done
swaks --silent 1 --server "127.0.0.1:$smtp_port" --from visitor@example.org --to alice+demo@example.com \
    --header "Subject: hello from the mailgrid demo" --body "Routed by ldap_tablemap."

box="$demo/mail/mail01/alice/new"
for _ in $(seq 100); do
    [ -n "$(ls -A "$box" 2>/dev/null)" ] && break
    sleep 0.1
done
if [ -z "$(ls -A "$box" 2>/dev/null)" ]; then
    echo "the message did not arrive; see $demo/postfix/maillog and $demo/tablemap.log" >&2
    exit 1
fi
step "delivered to alice's mailbox on backend mail01: $box"
ls "$box"
grep -E '^(Delivered-To|X-Original-To|Subject):' "$box"/*
grep -E 'status=sent' "$demo/postfix/maillog" | tail -1

cat <<EOF

The demo is running. Try:
  postmap -c $demo/postfix/etc -q staff@example.com socketmap:inet:127.0.0.1:10027:virtual
  swaks --server 127.0.0.1:$smtp_port --to bob@example.com   # lands in $demo/mail/mail02/bob/
  curl -s http://127.0.0.1:10029/metrics | grep mailgrid_lookups
  edit $demo/users.ldif: ldap_tablemap re-reads it within a second
Stop it with: $0 stop
EOF
