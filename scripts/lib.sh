# Shared helpers for scripts/bench and scripts/reload-under-load.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MGW=${MGW:-$ROOT/bin/mgw} # MGW=/abs/path/mgw runs another binary
WORK=$(mktemp -d /tmp/mgw-bench.XXXXXX)
PIDS=()
MGW_DIRS=()

need() { # need CMD PACKAGE: install a Debian package when CMD is missing
	command -v "$1" >/dev/null && return
	echo "installing $2 ..." >&2
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for d in "${MGW_DIRS[@]}"; do
		[ -f "$d/mgw.pid" ] && "$MGW" stop --config-dir "$d" --timeout 5s >/dev/null 2>&1 || true
	done
	for f in "$WORK"/nginx-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # wait_port PORT: until something answers HTTP there
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return
		sleep 0.1
	done
	echo "nothing answers on port $1" >&2
	exit 1
}

# start_nginx NAME WORKERS PORT HTTP_BODY: nginx with WORKERS workers, its
# files named $WORK/nginx-NAME.*, HTTP_BODY inside its http block after
# the settings both nginx setups share.
start_nginx() {
	cat >"$WORK/nginx-$1.conf" <<CONF
worker_processes $2;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
$4
}
CONF
	nginx -c "$WORK/nginx-$1.conf"
	wait_port "$3"
}

# start_target PORT: nginx with one worker answering every request with a small body.
start_target() {
	start_nginx target 1 "$1" "	server {
		listen 127.0.0.1:$1;
		location / { default_type text/plain; return 200 \"hello from the target\\n\"; }
	}"
}

# start_nginx_proxy PORT TARGET_PORT: nginx with two workers as a keep-alive
# reverse proxy doing the header work mgw does by default ([headers],
# docs/COMPATIBILITY.md): X-Forwarded-For, -Host and Via appended to the client's,
# X-Forwarded-Proto and X-Request-Id kept or set, the target's own Host,
# and a response-time header on the answer.
start_nginx_proxy() {
	start_nginx proxy 2 "$1" "	upstream target { server 127.0.0.1:$2; keepalive 128; }
	map \$http_x_forwarded_host \$mgw_xfh { \"\" \$http_host; default \"\$http_x_forwarded_host, \$http_host\"; }
	map \$http_x_forwarded_proto \$mgw_xfp { \"\" \$scheme; default \$http_x_forwarded_proto; }
	map \$http_via \$mgw_via { \"\" \"1.1 \$host\"; default \"\$http_via, 1.1 \$host\"; }
	map \$http_x_request_id \$mgw_rid { \"\" \$request_id; default \$http_x_request_id; }
	server {
		listen 127.0.0.1:$1;
		location /api/ {
			proxy_pass http://target/;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host \$mgw_xfh;
			proxy_set_header X-Forwarded-Proto \$mgw_xfp;
			proxy_set_header Via \$mgw_via;
			proxy_set_header X-Request-Id \$mgw_rid;
			add_header X-Response-Time \$request_time always;
		}
	}"
}

# start_nginx_plain PORT TARGET_PORT: nginx with two workers as the plain
# keep-alive reverse proxy a user who needs no auth, limits or header
# rules would run: no forwarding headers, no response-time header.
start_nginx_plain() {
	start_nginx plain 2 "$1" "	upstream plain { server 127.0.0.1:$2; keepalive 128; }
	server {
		listen 127.0.0.1:$1;
		location /api/ {
			proxy_pass http://plain/;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
		}
	}"
}

# start_mgw PORT TARGET_PORT WORKERS [DIR [EXTRA_TOML]]: mgw with one proxy
# /api, its config and run files in DIR (default $WORK), and EXTRA_TOML
# appended to its config (plugins, products, apps).
start_mgw() {
	local dir=${4:-$WORK}
	mkdir -p "$dir"
	MGW_DIRS+=("$dir")
	cat >"$dir/mgw.toml" <<CONF
[edgemicro]
port = $1
address = "127.0.0.1"
[edgemicro.logging]
level = "warn"
[[proxies]]
name = "api"
base_path = "/api"
url = "http://127.0.0.1:$2"
${5:-}
CONF
	"$MGW" start --config-dir "$dir" --processes "$3" >"$dir/mgw.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		"$MGW" status --config-dir "$dir" >/dev/null 2>&1 && break
		sleep 0.1
	done
	wait_port "$1"
}

# OAUTH_TOML: the oauth plugin with one product and app (local mode).
OAUTH_TOML='
[edgemicro.plugins]
sequence = ["oauth"]
[[products]]
name = "bench-product"
proxies = ["api"]
apiResources = ["/**"]
[[apps]]
name = "bench-app"
developer_email = "bench@example.com"
key = "bench-key"
secret = "bench-secret"
products = ["bench-product"]'

# FULL_TOML: the full chain: analytics (to a file), oauth, spike arrest
# and quota, with limits far above what the bench reaches. Spike arrest
# spaces requests 1 µs apart; without a burst, two requests in the same
# microsecond on two workers would meet a 503.
FULL_TOML='
[edgemicro.plugins]
sequence = ["oauth", "spikearrest", "quota"]
[spikearrest]
timeUnit = "second"
allow = 1000000
burst = 100000
[analytics]
flushInterval = 250
[[products]]
name = "bench-product"
proxies = ["api"]
apiResources = ["/**"]
quota = 1000000000
quotaInterval = 1
quotaTimeUnit = "minute"
[[apps]]
name = "bench-app"
developer_email = "bench@example.com"
key = "bench-key"
secret = "bench-secret"
products = ["bench-product"]'

# start_mgw_oauth PORT TARGET_PORT WORKERS DIR [TOML]: mgw with the oauth
# plugin (or the chain in TOML), signing its own tokens with the key pair
# `mgw init` writes; sets TOKEN.
start_mgw_oauth() {
	mkdir -p "$4"
	"$MGW" init --config-dir "$4" >/dev/null
	start_mgw "$1" "$2" "$3" "$4" "${5:-$OAUTH_TOML}"
	TOKEN=$(curl -s -H 'Content-Type: application/json' \
		-d '{"client_id":"bench-key","client_secret":"bench-secret","grant_type":"client_credentials"}' \
		"http://127.0.0.1:$1/edgemicro-auth/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
	[ -n "$TOKEN" ] || { echo "no token from mgw" >&2; exit 1; }
}

# EDGE_FULL_TOML: the full chain in Edge mode (analytics is on there
# without a section): oauth, spike arrest and quota with limits far above
# what the bench reaches; the quota is the product's, from the fake org.
EDGE_FULL_TOML='
[edgemicro.plugins]
sequence = ["oauth", "spikearrest", "quota"]
[spikearrest]
timeUnit = "second"
allow = 1000000
burst = 100000'

# start_mgw_edge PORT TARGET_PORT EDGE_PORT WORKERS DIR: scripts/bench-edge
# (a fake Apigee org) on EDGE_PORT deploying /api to the target, and mgw
# in Edge mode against it with EDGE_FULL_TOML; sets TOKEN to a Bearer JWT
# of the org's app.
start_mgw_edge() {
	local dir=$5
	mkdir -p "$dir"
	[ -x "$WORK/bench-edge" ] || (cd "$ROOT" && go build -o "$WORK/bench-edge" ./scripts/bench-edge)
	"$WORK/bench-edge" "$3" "http://127.0.0.1:$2" "$dir" &
	PIDS+=($!)
	echo $! >"$dir/fake-edge.pid"
	for _ in $(seq 100); do [ -s "$dir/token" ] && break; sleep 0.1; done
	wait_port "$3"
	MGW_DIRS+=("$dir")
	cat "$dir/edge.toml" - >"$dir/mgw.toml" <<CONF
[edgemicro]
port = $1
address = "127.0.0.1"
[edgemicro.logging]
level = "warn"
$EDGE_FULL_TOML
CONF
	# shellcheck disable=SC2046
	"$MGW" start --config-dir "$dir" --processes "$4" $(cat "$dir/flags") >"$dir/mgw.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		"$MGW" status --config-dir "$dir" >/dev/null 2>&1 && break
		sleep 0.1
	done
	wait_port "$1"
	TOKEN=$(cat "$dir/token")
}
