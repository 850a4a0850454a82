#!/bin/sh
# Creates the three DPoW logins on a running RabbitMQ cluster, gives each its permissions, caps
# MQTT connections, and removes the default guest login. Run it once, on any node: users,
# permissions and limits are cluster-wide. Running it again changes the passwords and resets the
# permissions.
#
#   SERVER_PASSWORD=... DASHBOARD_PASSWORD=... [CLIENT_PASSWORD=client] [DASHBOARD_USER=dashboard] \
#     [MAX_CONNECTIONS=100000] ./make-users.sh [-n rabbit@mq1]
#
# The client password is public on purpose (every volunteer's page uses it); the server and
# dashboard passwords are secrets. Passwords come from the environment and reach rabbitmqctl on
# its standard input, so they show up in no process list or shell history.
#
# Topic permissions on amq.topic say what deploy/mosquitto/acl says, with MQTT's "/" written as
# AMQP's "." and "+" as "*" (RabbitMQ matches a publish's topic, and a subscription's filter
# once, when it is made):
#   server     writes heartbeat, statistics, work/<type>, cancel/<type>, client/<address>;
#              reads result/<type> (or result/+, result/#)
#   client     writes result/<type>; reads heartbeat, statistics, work/…, cancel/…, client/…
#   dashboard  reads everything, writes nothing (not even to amq.topic)
# A volunteer's "#" or "+/+" filter would cover every result: RabbitMQ refuses it, where
# Mosquitto grants it and filters message by message.
set -eu

: "${SERVER_PASSWORD:?set SERVER_PASSWORD (the dispatcher's secret)}"
: "${DASHBOARD_PASSWORD:?set DASHBOARD_PASSWORD}"
CLIENT_PASSWORD=${CLIENT_PASSWORD:-client}
DASHBOARD_USER=${DASHBOARD_USER:-dashboard}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-100000}
RABBITMQCTL=${RABBITMQCTL:-rabbitmqctl}
VHOST=/

ctl() { "$RABBITMQCTL" "$@" --quiet; }

# The user with the password read from standard input: added, or its password changed.
login() {
  user=$1 password=$2
  shift 2
  if ctl "$@" list_users --silent | cut -f1 | grep -qx "$user"; then
    printf '%s\n' "$password" | ctl "$@" change_password "$user" >/dev/null
  else
    printf '%s\n' "$password" | ctl "$@" add_user "$user" >/dev/null
  fi
}

# Queues the MQTT plugin makes for a session's subscriptions, and the exchange it routes through.
QUEUES='^mqtt-subscription-.*$'
QUEUES_AND_TOPICS='^(amq\.topic|mqtt-subscription-.*)$'
TYPES='(precache|ondemand)'

login server "$SERVER_PASSWORD" "$@"
ctl "$@" set_permissions -p "$VHOST" server "$QUEUES" "$QUEUES_AND_TOPICS" "$QUEUES_AND_TOPICS"
ctl "$@" set_topic_permissions -p "$VHOST" server amq.topic \
  "^(heartbeat|statistics|(work|cancel)\.$TYPES|client\.[^.*#]+)\$" \
  "^result\.($TYPES|\*|#)\$"

login client "$CLIENT_PASSWORD" "$@"
ctl "$@" set_permissions -p "$VHOST" client "$QUEUES" "$QUEUES_AND_TOPICS" "$QUEUES_AND_TOPICS"
ctl "$@" set_topic_permissions -p "$VHOST" client amq.topic \
  "^result\.$TYPES\$" \
  "^(heartbeat|statistics|(work|cancel)\.($TYPES|\*|#)|client\.([^.*#]+|\*|#))\$"

login "$DASHBOARD_USER" "$DASHBOARD_PASSWORD" "$@"
ctl "$@" set_permissions -p "$VHOST" "$DASHBOARD_USER" "$QUEUES" "$QUEUES" "$QUEUES_AND_TOPICS"
ctl "$@" set_topic_permissions -p "$VHOST" "$DASHBOARD_USER" amq.topic '^$' '.*'

# MQTT connections (TCP and WebSocket) across the cluster; a volunteer page is one each.
ctl "$@" set_vhost_limits -p "$VHOST" "{\"max-connections\": $MAX_CONNECTIONS}"

if ctl "$@" list_users --silent | cut -f1 | grep -qx guest; then
  ctl "$@" delete_user guest >/dev/null
fi
echo "made the users server, client and $DASHBOARD_USER on vhost $VHOST (max $MAX_CONNECTIONS connections); removed guest"
