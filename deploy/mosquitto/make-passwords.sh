#!/bin/sh
# Writes the Mosquitto password file for the three DPoW roles with mosquitto_passwd.
#
#   SERVER_PASSWORD=... DASHBOARD_PASSWORD=... [CLIENT_PASSWORD=client] [DASHBOARD_USER=dashboard] \
#     ./make-passwords.sh /etc/mosquitto/dpow/passwords
#
# DASHBOARD_USER names the monitoring login (the original DPoW ACL calls it dpowinterface); the
# `user` line of the monitoring role in the acl file must say the same name.
#
# The client password is public on purpose (every volunteer's page uses it); the server and
# dashboard passwords are secrets. Passwords come from the environment, not the command line,
# so they do not show up in `ps` or shell history. The file is replaced atomically.
set -eu

out=${1:?usage: SERVER_PASSWORD=... DASHBOARD_PASSWORD=... $0 <password-file>}
: "${SERVER_PASSWORD:?set SERVER_PASSWORD (the dispatcher's secret)}"
: "${DASHBOARD_PASSWORD:?set DASHBOARD_PASSWORD}"
CLIENT_PASSWORD=${CLIENT_PASSWORD:-client}
DASHBOARD_USER=${DASHBOARD_USER:-dashboard}

command -v mosquitto_passwd >/dev/null 2>&1 || {
  echo "$0: mosquitto_passwd not found (Debian: apt-get install mosquitto)" >&2
  exit 1
}

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
umask 027
: >"$tmp"
mosquitto_passwd -b "$tmp" server "$SERVER_PASSWORD"
mosquitto_passwd -b "$tmp" client "$CLIENT_PASSWORD"
mosquitto_passwd -b "$tmp" "$DASHBOARD_USER" "$DASHBOARD_PASSWORD"
# Mosquitto drops root privileges to its own user before it reads this file.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chgrp mosquitto "$tmp"
fi
chmod 0640 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out (users: server, client, $DASHBOARD_USER)"
