package analytics

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
	"unsafe"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/plugins"
)

// Section is the configuration table of analytics.
const Section = "analytics"

// Settings are the keys of [analytics].
type Settings struct {
	// Enabled turns records off (false) or on in local mode.
	Enabled *bool `json:"enabled"`
	// URI is Edge's axpublisher endpoint. Defaults to the bootstrap URL
	// with bootstrap replaced by axpublisher.
	URI string `json:"uri"`
	// File receives the records as JSON lines in local mode.
	File string `json:"file"`
	// BufferSize bounds the records held by the master. Defaults to 10000.
	BufferSize int `json:"bufferSize"`
	// BatchSize bounds the records of one upload. Defaults to 500.
	BatchSize int `json:"batchSize"`
	// FlushInterval is the time between uploads in ms. Defaults to 250.
	FlushInterval int `json:"flushInterval"`
	// Concurrency bounds the uploads in flight. Defaults to 16.
	Concurrency int  `json:"concurrency"`
	Compress    bool `json:"compress"`
	// Accepted for edgemicro files.
	Source        string `json:"source"`
	Proxy         string `json:"proxy"`
	ProxyRevision any    `json:"proxy_revision"`
}

// Load reads [analytics] with its defaults.
func Load(c *configs.Config) (Settings, error) {
	s := Settings{BufferSize: 10000, BatchSize: 500, FlushInterval: 250, Concurrency: 16}
	if err := c.Section(Section, &s); err != nil {
		return s, err
	}
	if s.BufferSize <= 0 || s.BatchSize <= 0 || s.FlushInterval <= 0 || s.Concurrency <= 0 {
		return s, errors.New("[analytics] bufferSize, batchSize, flushInterval and concurrency must be more than 0")
	}
	if s.URI == "" && c.EdgeConfig != nil {
		s.URI = edge.ServiceURL(c.EdgeConfig.Bootstrap, "axpublisher")
	}
	return s, nil
}

// Record is one request as Edge's analytics expect it.
type Record struct {
	ClientReceivedStart int64  `json:"client_received_start_timestamp"`
	ClientReceivedEnd   int64  `json:"client_received_end_timestamp"`
	RecordType          string `json:"recordType"`
	APIProxy            string `json:"apiproxy"`
	RequestURI          string `json:"request_uri"`
	RequestPath         string `json:"request_path"`
	RequestVerb         string `json:"request_verb"`
	ClientIP            string `json:"client_ip"`
	UserAgent           string `json:"useragent"`
	APIProxyRevision    string `json:"apiproxy_revision"`
	ResponseStatusCode  int    `json:"response_status_code"`
	ClientSentStart     int64  `json:"client_sent_start_timestamp"`
	ClientSentEnd       int64  `json:"client_sent_end_timestamp"`
	DeveloperEmail      string `json:"developer_email,omitempty"`
	DeveloperApp        string `json:"developer_app,omitempty"`
	AccessToken         string `json:"access_token,omitempty"`
	ClientID            string `json:"client_id,omitempty"`
	APIProduct          string `json:"api_product,omitempty"`
	TargetSentStart     int64  `json:"target_sent_start_timestamp,omitempty"`
	TargetReceivedStart int64  `json:"target_received_start_timestamp,omitempty"`
	TargetReceivedEnd   int64  `json:"target_received_end_timestamp,omitempty"`
	TargetBasepath      string `json:"target_basepath,omitempty"`
	TargetHost          string `json:"target_host,omitempty"`
	TargetURL           string `json:"target_url,omitempty"`
	TargetResponseCode  int    `json:"target_response_code,omitempty"`
	GatewayFlowID       string `json:"gateway_flow_id,omitempty"`
}

type plugin struct {
	proxy    *configs.Proxy
	sink     plugins.RecordSink
	now      func() time.Time
	revision string
}

// New builds the analytics plugin for a proxy. Without a sink (the
// master's check of a configuration) it only validates the settings.
func New(env plugins.Env, snap *configs.Snapshot, proxy *configs.Proxy) (plugins.Plugin, error) {
	if _, err := Load(&snap.Config); err != nil {
		return nil, err
	}
	rev := proxy.Revision
	if rev == "" {
		rev = "1"
	}
	return &plugin{proxy: proxy, sink: env.Analytics, now: env.Now, revision: rev}, nil
}

// statusWriter is the worker's response writer, which knows the status sent.
type statusWriter interface{ Status() int }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	start := p.now()
	if x := plugins.ExchangeOf(r); x != nil && !x.Start.IsZero() {
		start = x.Start
	}
	path, query := r.URL.Path, r.URL.RawQuery
	next.ServeHTTP(w, r)
	if p.sink == nil {
		return
	}
	end := p.now()
	status := http.StatusOK
	if s, ok := w.(statusWriter); ok && s.Status() != 0 {
		status = s.Status()
	}
	bufs := bufPool.Get().(*buffers)
	defer bufPool.Put(bufs)
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	// The request URI and the target's URL are put together in the pooled
	// scratch buffers, not as new strings: the record is encoded before
	// the buffers are used again.
	u := append(append(append(bufs.uri[:0], scheme...), r.Host...), path...)
	if query != "" {
		u = append(append(u, '?'), query...)
	}
	bufs.uri = u
	uri := unsafe.String(unsafe.SliceData(u), len(u))
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	rec := Record{
		ClientReceivedStart: ms(start), ClientReceivedEnd: ms(start), RecordType: "APIAnalytics",
		APIProxy: p.proxy.Name, RequestURI: uri, RequestPath: path, RequestVerb: r.Method,
		ClientIP: ip, UserAgent: r.UserAgent(), APIProxyRevision: p.revision,
		ResponseStatusCode: status, ClientSentStart: ms(end), ClientSentEnd: ms(end),
		GatewayFlowID: r.Header.Get("X-Request-Id"),
	}
	if x := plugins.ExchangeOf(r); x != nil {
		if pr := x.Principal; pr != nil {
			rec.DeveloperEmail = pr.ClaimString("developer_email")
			rec.DeveloperApp = pr.ClaimString("application_name")
			rec.ClientID = pr.ClaimString("client_id")
			rec.AccessToken = pr.ClaimString("access_token")
			rec.APIProduct = pr.Product
		}
		if u := x.Target; u != nil {
			rec.TargetBasepath = u.RequestURI()
			rec.TargetHost = u.Hostname()
			t := append(append(append(append(bufs.target[:0], u.Scheme...), "://"...), u.Host...), rec.TargetBasepath...)
			bufs.target = t
			rec.TargetURL = unsafe.String(unsafe.SliceData(t), len(t))
			rec.TargetSentStart = ms(x.TargetSentStart)
			rec.TargetReceivedStart = ms(x.TargetReceivedStart)
			rec.TargetReceivedEnd = ms(x.TargetReceivedEnd)
			rec.TargetResponseCode = x.TargetStatus
		}
		if rec.GatewayFlowID == "" {
			rec.GatewayFlowID = x.RequestID
		}
	}
	bufs.out = rec.appendJSON(bufs.out[:0])
	p.sink.Record(bufs.out) // the sink copies it
}

// buffers are one record's scratch space: its request URI, its target's
// URL and its JSON.
type buffers struct{ uri, target, out []byte }

var bufPool = sync.Pool{New: func() any {
	return &buffers{uri: make([]byte, 0, 256), target: make([]byte, 0, 256), out: make([]byte, 0, 1024)}
}}
