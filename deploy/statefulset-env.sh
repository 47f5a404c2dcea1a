#!/bin/sh
# Derives a raftbus node's identity from its StatefulSet pod name, then execs
# the command it was given (the Kubernetes manifest runs
# `statefulset-env.sh node bin/raftbus.js node`).
#
#   pod <set>-<ordinal>  ->  RAFTBUS_ID = ordinal + 1
#   RAFTBUS_PEERS        =  every other ordinal below INITIAL_VOTERS, as
#                           <id>=<set>-<ordinal>.<service>.<namespace>.svc.<domain>:<raft port>
#   RAFTBUS_ADVERTISE_*  =  this pod's own stable DNS name
#
# Inputs (env): HOSTNAME (set by Kubernetes), INITIAL_VOTERS (initial
# voters, default 3), PEER_SERVICE (the headless Service),
# POD_NAMESPACE, CLUSTER_DOMAIN (default cluster.local),
# RAFT_PORT / HTTP_PORT (default 9090 / 8080).
set -eu

name="${HOSTNAME:?HOSTNAME is not set}"
set_name="${name%-*}"
ordinal="${name##*-}"
case "$ordinal" in
  ''|*[!0-9]*) echo "statefulset-env.sh: pod name '$name' does not end in -<ordinal>" >&2; exit 2 ;;
esac
replicas="${INITIAL_VOTERS:-3}"
service="${PEER_SERVICE:?PEER_SERVICE is not set}"
namespace="${POD_NAMESPACE:-default}"
domain="${CLUSTER_DOMAIN:-cluster.local}"
raft_port="${RAFT_PORT:-9090}"
http_port="${HTTP_PORT:-8080}"
fqdn() { echo "$set_name-$1.$service.$namespace.svc.$domain"; }

peers=""
i=0
while [ "$i" -lt "$replicas" ]; do
  if [ "$i" -ne "$ordinal" ]; then
    peers="$peers${peers:+,}$((i + 1))=$(fqdn "$i"):$raft_port"
  fi
  i=$((i + 1))
done

export RAFTBUS_ID="$((ordinal + 1))"
export RAFTBUS_HTTP="0.0.0.0:$http_port"
export RAFTBUS_RAFT="0.0.0.0:$raft_port"
export RAFTBUS_ADVERTISE_HTTP="$(fqdn "$ordinal"):$http_port"
export RAFTBUS_ADVERTISE_RAFT="$(fqdn "$ordinal"):$raft_port"
# Pods beyond the initial voters start empty and wait to be added
# (POST /v1/cluster/members), as with `raftbus node --join`.
export RAFTBUS_PEERS="$peers"
if [ "$ordinal" -ge "$replicas" ]; then export RAFTBUS_JOIN=true; fi
exec "$@"
