package logkey

// The fields zerolog writes on every line.
const (
	// Time is when the line was written (RFC 3339, nanoseconds).
	Time = "time"
	// Level is the line's level: error, warn, info, debug or trace.
	Level = "level"
	// Message is what happened, in a sentence that never varies.
	Message = "message"
	// Error is the error the line reports, as text (zerolog's Err).
	Error = "error"
)

// Who wrote the line.
const (
	// Component is the kind of process that wrote the line: cli, keeper,
	// master or worker.
	Component = "component"
	// PID is the process id of the process that wrote the line.
	PID = "pid"
	// Generation is the master generation the writing master or worker
	// belongs to; each reload or upgrade starts the next.
	Generation = "generation"
	// WorkerID is the slot of the worker the line is about (0 to
	// processes-1), kept by its replacements; in a worker's own lines,
	// its own slot.
	WorkerID = "worker_id"
	// Subsystem is the part of a process that wrote the line, when it is
	// not a plugin: http (net/http's own error log).
	Subsystem = "subsystem"
	// Plugin is the plugin that wrote the line, or whose work it reports.
	Plugin = "plugin"
)

// The Component values.
const (
	// ComponentCLI is the mgw command line: lines a command writes itself.
	ComponentCLI = "cli"
	// ComponentKeeper is the process mgw start leaves running: it starts
	// and restarts the master and passes signals on.
	ComponentKeeper = "keeper"
	// ComponentMaster is the master: it owns the sockets, supervises the
	// workers and pushes configuration to them.
	ComponentMaster = "master"
	// ComponentWorker is a worker: it serves requests through the plugin
	// chains.
	ComponentWorker = "worker"
)

// The Subsystem values.
const (
	// SubsystemHTTP is net/http's own error log, and handler panics.
	SubsystemHTTP = "http"
)

// Processes a line talks about.
const (
	// WorkerPID is the process id of the worker the line is about.
	WorkerPID = "worker_pid"
	// MasterPID is the process id of the master the line is about.
	MasterPID = "master_pid"
	// NextGeneration is the generation a reload starts.
	NextGeneration = "next_generation"
	// Workers is how many workers a generation runs.
	Workers = "workers"
	// Exit is how a process ended: its wait status, or why it could not
	// be waited for.
	Exit = "exit"
	// Signal is the signal received, or passed on.
	Signal = "signal"
	// Restarts is how many times in a row a worker was restarted without
	// serving.
	Restarts = "restarts"
	// Failures is how many times in a row a restarted master failed to
	// start.
	Failures = "failures"
	// Protocol is the IPC protocol version a worker said it speaks.
	Protocol = "protocol"
	// Kind is the kind of an IPC message.
	Kind = "kind"
	// UnlockedWrites is how many log writes went out without the log
	// directory's lock (another process held it too long).
	UnlockedWrites = "unlocked_writes"
)

// Durations: each is written with zerolog's Dur, in milliseconds.
const (
	// UptimeMS is how long a process ran, in milliseconds.
	UptimeMS = "uptime_ms"
	// TookMS is how long the work the line reports took (a request in
	// the access log, a drain), in milliseconds.
	TookMS = "took_ms"
	// RestartInMS is the backoff before a process is started again, in
	// milliseconds.
	RestartInMS = "restart_in_ms"
	// IntervalMS is the period of a repeated task (the Edge poll), in
	// milliseconds.
	IntervalMS = "interval_ms"
	// GraceMS is how long a draining worker keeps accepting connections,
	// in milliseconds.
	GraceMS = "grace_ms"
	// TimeoutMS is how long a drain may take before the remaining
	// connections are closed, in milliseconds.
	TimeoutMS = "timeout_ms"
	// SilentMS is how long a worker has not been heard from, in
	// milliseconds.
	SilentMS = "silent_ms"
	// StalledMS is how long the master's own loop did not run (stopped,
	// starved of CPU, a paused VM), in milliseconds.
	StalledMS = "stalled_ms"
)

// Configuration.
const (
	// Config is the source of the configuration: its file, or the
	// embedded default.
	Config = "config"
	// Revision is a configuration revision: the one started, applied or
	// pushed.
	Revision = "revision"
	// ServingRevision is the revision that keeps serving when an edit is
	// rejected.
	ServingRevision = "serving_revision"
	// OfferedRevision is the revision a worker was offered and rejected.
	OfferedRevision = "offered_revision"
	// Proxies is how many proxies a configuration has.
	Proxies = "proxies"
	// Addr is an address listened on (host:port).
	Addr = "addr"
	// Reason is why it happened, where the message leaves a choice of
	// causes.
	Reason = "reason"
	// Cache is the path of the Edge configuration cache.
	Cache = "cache"
	// DownloadedAt is when a cached Edge configuration was downloaded
	// (RFC 3339).
	DownloadedAt = "downloaded_at"
)

// Edge entities.
const (
	// Proxy is the name of the proxy a line is about.
	Proxy = "proxy"
	// OtherProxy is the name of another proxy, one the proxy a line is
	// about conflicts with.
	OtherProxy = "other_proxy"
	// BasePath is a proxy's base path.
	BasePath = "base_path"
	// URL is a proxy's target URL.
	URL = "url"
	// Product is the name of an API product.
	Product = "product"
	// QuotaTimeUnit is a product's quota time unit as Edge sent it.
	QuotaTimeUnit = "quota_time_unit"
	// Identifier is the quota identifier (the product and application a
	// count is kept for).
	Identifier = "identifier"
)

// Requests and connections.
const (
	// Method is the request's method.
	Method = "method"
	// Path is the request's path, without the query.
	Path = "path"
	// Status is the status code answered to the client.
	Status = "status"
	// ClientIP is the address of the client's connection.
	ClientIP = "client_ip"
	// RequestID is the request's id: its X-Request-Id, else the one the
	// plugins gave it.
	RequestID = "request_id"
	// Requests is how many requests a worker served.
	Requests = "requests"
	// Connections is how many client connections are open.
	Connections = "connections"
	// LimitNOFILE is the process's limit of open files (ulimit -n).
	LimitNOFILE = "limit_nofile"
	// FailedAccepts is how many accepts failed for want of descriptors.
	FailedAccepts = "failed_accepts"
)

// Analytics records.
const (
	// Records is how many analytics records a line is about.
	Records = "records"
	// Dropped is how many analytics records were dropped.
	Dropped = "dropped"
	// DroppedTotal is how many analytics records were dropped since the
	// process started.
	DroppedTotal = "dropped_total"
	// Sent is how many analytics records were sent to Edge.
	Sent = "sent"
	// Left is how many analytics records were still queued.
	Left = "left"
	// Spool is the path of an analytics spool file.
	Spool = "spool"
	// RetryInTicks is how many flush intervals pass before an upload is
	// tried again.
	RetryInTicks = "retry_in_ticks"
)
