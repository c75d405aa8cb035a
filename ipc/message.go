package ipc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Hello is a worker's first frame.
type Hello struct {
	WorkerID int `json:"worker_id"`
	PID      int `json:"pid"`
	Protocol int `json:"protocol"`
}

// Config carries one validated configuration snapshot to a worker. The
// snapshot is the JSON form of a configs.Snapshot; ipc does not look inside.
type Config struct {
	Revision uint64          `json:"revision"`
	Snapshot json.RawMessage `json:"snapshot"`
}

// Ack reports the revision a worker now serves. Error is set when the
// worker could not apply the offered revision and still serves Revision.
type Ack struct {
	Revision uint64 `json:"revision"`
	Error    string `json:"error,omitempty"`
}

// Ready tells the master that the worker accepts connections.
type Ready struct {
	Revision uint64 `json:"revision"`
}

// Drain orders a worker to stop accepting, answer what it has read, close
// keep-alive connections that stay idle for Grace, and exit when empty or
// after Timeout.
type Drain struct {
	Grace   time.Duration `json:"grace_ns"`
	Timeout time.Duration `json:"timeout_ns"`
}

// Stats is a worker's periodic report.
type Stats struct {
	Requests uint64 `json:"requests"`
	Active   int64  `json:"active"`
	// Draining is set once the worker drains, whoever asked it to (the
	// master, a SIGTERM sent to the worker, the master's channel ended):
	// it beats on while it finishes its requests.
	Draining bool `json:"draining,omitempty"`
	// Metrics are the worker's counters since it started, for /metrics.
	Metrics *Metrics `json:"metrics,omitempty"`
}

// LatencyBuckets are the upper bounds, in seconds, of the request
// duration histogram.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics are one worker's counters. Every field only grows.
type Metrics struct {
	// Requests counts answers by proxy and status class ("2xx" …).
	Requests map[string]map[string]uint64 `json:"requests,omitempty"`
	// Upstream counts failed target calls by proxy and kind (error, timeout).
	Upstream map[string]map[string]uint64 `json:"upstream,omitempty"`
	// Rejections counts requests answered by a plugin, by plugin.
	Rejections map[string]uint64 `json:"rejections,omitempty"`
	// Latency counts requests per LatencyBuckets bound (not cumulative;
	// one more for +Inf), with their sum in seconds.
	Latency    []uint64 `json:"latency,omitempty"`
	LatencySum float64  `json:"latency_sum,omitempty"`
	// RecordsDropped counts analytics records the worker could not hold
	// while the master did not read them.
	RecordsDropped uint64 `json:"records_dropped,omitempty"`
}

// KeyAsk asks the master for the token of an API key. The master keeps
// one cache for the instance, so a key costs one Edge call per token
// lifetime however many workers see it.
type KeyAsk struct {
	ID  uint64 `json:"id"`
	Key string `json:"key"`
}

// KeyTell answers the KeyAsk with the same ID: a token, or Status (the
// HTTP status with which Edge refused the key) or Error (Edge could not
// be asked).
type KeyTell struct {
	ID     uint64 `json:"id"`
	Token  string `json:"token,omitempty"`
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// A records frame carries analytics records from a worker to the master,
// which uploads them for the whole instance. Its payload is not a JSON
// document but JSON lines: one record (a JSON object, which never holds a
// raw newline) per line, so that neither side parses what it only passes
// on. A worker appends each record and a newline to the payload it
// sends. The master queues the payload whole and counts its lines;
// SplitRecords takes them apart where records are needed one by one.

// SplitRecords returns the records of a records frame's payload; empty
// lines are skipped. The records share the payload's memory.
func SplitRecords(payload []byte) [][]byte {
	var out [][]byte
	for len(payload) > 0 {
		i := bytes.IndexByte(payload, '\n')
		if i < 0 {
			i = len(payload)
		}
		if i > 0 {
			out = append(out, payload[:i:i])
		}
		payload = payload[min(i+1, len(payload)):]
	}
	return out
}

// QuotaWatch tells the master that a worker counts requests for a quota
// identifier with the edge backend. The master then sends the weight
// counted in the shared zone to Edge every second and keeps Edge's answer
// in the zone for every worker. A worker sends it once per identifier.
type QuotaWatch struct {
	Identifier string `json:"identifier"`
	Allow      uint32 `json:"allow"`
	Interval   int    `json:"interval"`
	TimeUnit   string `json:"timeUnit"`
}

// Control commands sent by the command line to the master.
const (
	CommandStatus = "status"
	CommandReload = "reload"
	CommandStop   = "stop"
)

// Control is one command-line request to the master.
type Control struct {
	Command string `json:"command"`
	// Timeout bounds the drain of a stop. Zero means the master's default.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	// Processes, Port and Config are what `mgw reload` was given with
	// -p, -r and --config (zero or empty: not given). The new generation
	// takes a new worker count or port; a config file other than the
	// instance's is refused.
	Processes int    `json:"processes,omitempty"`
	Port      int    `json:"port,omitempty"`
	Config    string `json:"config,omitempty"`
	// Org, Env, KeyDigest, SecretDigest and LogLevel are what `mgw
	// reload` was given with -o, -e, -k, -s and --log-level (empty: not
	// given). A reload keeps the instance's own; the master refuses a
	// different one, so that scripts may pass start's flags to reload.
	// The key and secret travel as Digest.
	Org          string `json:"org,omitempty"`
	Env          string `json:"env,omitempty"`
	KeyDigest    string `json:"key_digest,omitempty"`
	SecretDigest string `json:"secret_digest,omitempty"`
	LogLevel     string `json:"log_level,omitempty"`
}

// Digest is the hex SHA-256 of a secret, which Control carries instead
// of the secret itself.
func Digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Reply answers a Control frame. Error is set when the command failed.
type Reply struct {
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
	Message string  `json:"message,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Status is the state of a running instance, as `mgw status --json` prints it.
type Status struct {
	MasterPID  int            `json:"master_pid"`
	Generation int            `json:"generation"`
	UptimeS    float64        `json:"uptime_s"`
	Mode       string         `json:"mode"`
	Config     ConfigStatus   `json:"config"`
	Workers    []WorkerStatus `json:"workers"`
	// Analytics is present when analytics are on (beyond the fields edgemicro-era scripts read).
	Analytics *AnalyticsStatus `json:"analytics,omitempty"`
}

// AnalyticsStatus counts the master's analytics records.
type AnalyticsStatus struct {
	Queued  int    `json:"queued"`
	Dropped uint64 `json:"dropped"`
	Sent    uint64 `json:"sent"`
}

// ConfigStatus describes where the serving configuration came from.
type ConfigStatus struct {
	Source    string     `json:"source"`
	Revision  uint64     `json:"revision"`
	LastPoll  *time.Time `json:"last_poll"`
	LastError *string    `json:"last_error"`
}

// Worker states as reported in WorkerStatus.State.
const (
	StateStarting = "starting"
	StateServing  = "serving"
	StateDraining = "draining"
	StateBackoff  = "backoff"
	// StateUnresponsive is a serving worker that has missed its stats
	// beats (sent every second) for UnresponsiveAfter; it is killed and
	// replaced when it stays silent for longer.
	StateUnresponsive = "unresponsive"
)

// WorkerStatus is one row of the worker table.
type WorkerStatus struct {
	ID       int     `json:"id"`
	PID      int     `json:"pid"`
	State    string  `json:"state"`
	UptimeS  float64 `json:"uptime_s"`
	Requests uint64  `json:"requests"`
	Active   int64   `json:"active"`
	Revision uint64  `json:"revision"`
	Restarts int     `json:"restarts"`
}

// Marshal encodes v as the payload of a frame of the given kind.
func Marshal(kind Kind, v any) (Frame, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Frame{}, fmt.Errorf("encoding %s: %w", kind, err)
	}
	if len(b) > MaxFrameSize {
		return Frame{}, fmt.Errorf("%w: %s payload of %d bytes", ErrFrameSize, kind, len(b))
	}
	return Frame{Kind: kind, Payload: b}, nil
}

// Decode decodes the frame's payload into v. Unknown JSON fields are
// ignored so that a newer peer may add fields.
func (f Frame) Decode(v any) error {
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("decoding %s: %w", f.Kind, err)
	}
	return nil
}
