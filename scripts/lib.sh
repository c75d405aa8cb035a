# Shared helpers for scripts/bench and scripts/reload-under-load.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MGW=$ROOT/bin/mgw
WORK=$(mktemp -d /tmp/mgw-bench.XXXXXX)
PIDS=()

need() { # need CMD PACKAGE: install a Debian package when CMD is missing
	command -v "$1" >/dev/null && return
	echo "installing $2 ..." >&2
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	[ -f "$WORK/mgw.pid" ] && "$MGW" stop --config-dir "$WORK" --timeout 5s >/dev/null 2>&1 || true
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

# start_target PORT: nginx with one worker answering every request with a small body.
start_target() {
	cat >"$WORK/nginx-target.conf" <<CONF
worker_processes 1;
pid $WORK/nginx-target.pid;
error_log $WORK/nginx-target.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$1;
		location / { default_type text/plain; return 200 "hello from the target\n"; }
	}
}
CONF
	nginx -c "$WORK/nginx-target.conf"
	wait_port "$1"
}

# start_nginx_proxy PORT TARGET_PORT: nginx with two workers as a keep-alive reverse proxy.
start_nginx_proxy() {
	cat >"$WORK/nginx-proxy.conf" <<CONF
worker_processes 2;
pid $WORK/nginx-proxy.pid;
error_log $WORK/nginx-proxy.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	upstream target { server 127.0.0.1:$2; keepalive 128; }
	server {
		listen 127.0.0.1:$1;
		location /api/ {
			proxy_pass http://target/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
		}
	}
}
CONF
	nginx -c "$WORK/nginx-proxy.conf"
	wait_port "$1"
}

# start_mgw PORT TARGET_PORT WORKERS: mgw with one proxy and no plugins.
start_mgw() {
	cat >"$WORK/mgw.toml" <<CONF
[edgemicro]
port = $1
address = "127.0.0.1"
[edgemicro.logging]
level = "warn"
[[proxies]]
name = "api"
base_path = "/api"
url = "http://127.0.0.1:$2"
CONF
	"$MGW" start --config-dir "$WORK" --processes "$3" >"$WORK/mgw.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		"$MGW" status --config-dir "$WORK" >/dev/null 2>&1 && break
		sleep 0.1
	done
	wait_port "$1"
}
