package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MgmtAuth is how management calls authenticate: a username and password
// (Basic) or an OAuth token (Bearer). Neither is ever printed or logged.
type MgmtAuth struct {
	Username, Password, Token string
}

func (a MgmtAuth) set(r *http.Request) error {
	switch {
	case a.Token != "":
		r.Header.Set("Authorization", "Bearer "+a.Token)
	case a.Username != "" && a.Password != "":
		r.SetBasicAuth(a.Username, a.Password)
	default:
		return errors.New("management calls need -u USER and -p PASSWORD, or -t TOKEN")
	}
	return nil
}

// MgmtError is a management answer other than 2xx: the status and
// Edge's own message, with a hint for the usual causes.
type MgmtError struct {
	Method, URL string
	Status      int
	Message     string
}

func (e *MgmtError) Error() string {
	hint := map[int]string{
		http.StatusUnauthorized: " (check the username and password, or the token)",
		http.StatusForbidden:    " (the user lacks the permission)",
		http.StatusNotFound:     " (check the org, the env and that the resource exists)",
		http.StatusConflict:     " (it exists already)",
	}[e.Status]
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s%s", e.Method, e.URL, e.Status, msg, hint)
}

// Mgmt calls the Edge management API and the edgemicro services. GETs
// are retried on network errors and 5xx answers; nothing else is.
type Mgmt struct {
	HTTP  *http.Client
	Auth  MgmtAuth
	Tries int // attempts for a GET; defaults to 3
	Pause time.Duration
}

// NewMgmt returns a client with a 30 s timeout per call.
func NewMgmt(auth MgmtAuth) *Mgmt {
	return &Mgmt{HTTP: &http.Client{Timeout: 30 * time.Second}, Auth: auth, Tries: 3, Pause: 500 * time.Millisecond}
}

// Do makes one call with the management credentials, sending body as
// JSON, and decodes a JSON answer into out.
func (m *Mgmt) Do(ctx context.Context, method, url string, body any, out any) error {
	payload, err := jsonBody(body)
	if err != nil {
		return err
	}
	return m.do(ctx, method, url, "application/json", payload, out, nil)
}

// DoRaw is Do with a body that is not JSON: payload, of contentType (a
// proxy bundle's zip, a form).
func (m *Mgmt) DoRaw(ctx context.Context, method, url, contentType string, payload []byte, out any) error {
	return m.do(ctx, method, url, contentType, payload, out, nil)
}

// DoWithKey is Do authenticated with an edgemicro key and secret.
func (m *Mgmt) DoWithKey(ctx context.Context, method, url, key, secret string, body, out any) error {
	payload, err := jsonBody(body)
	if err != nil {
		return err
	}
	return m.do(ctx, method, url, "application/json", payload, out, func(r *http.Request) error { r.SetBasicAuth(key, secret); return nil })
}

// WithTimeout returns a copy of m whose calls may each take up to d (an
// import or a deployment takes longer than the usual call).
func (m *Mgmt) WithTimeout(d time.Duration) *Mgmt {
	c := *m
	hc := *m.HTTP
	hc.Timeout = d
	c.HTTP = &hc
	return &c
}

func jsonBody(body any) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	return json.Marshal(body)
}

func (m *Mgmt) do(ctx context.Context, method, url, contentType string, payload []byte, out any, auth func(*http.Request) error) error {
	tries := 1
	if method == http.MethodGet {
		tries = max(1, m.Tries)
	}
	var last error
	for i := range tries {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(m.Pause << (i - 1)):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if payload != nil {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Accept", "application/json")
		if auth == nil {
			auth = m.Auth.set
		}
		if err := auth(req); err != nil {
			return err
		}
		resp, err := m.HTTP.Do(req)
		if err != nil {
			last = fmt.Errorf("%s %s: %w", method, url, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			last = &MgmtError{Method: method, URL: url, Status: resp.StatusCode, Message: edgeMessage(b)}
			continue
		}
		if resp.StatusCode >= 300 {
			return &MgmtError{Method: method, URL: url, Status: resp.StatusCode, Message: edgeMessage(b)}
		}
		if out != nil && len(bytes.TrimSpace(b)) > 0 {
			if s, ok := out.(*string); ok {
				*s = string(b)
				return nil
			}
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, url, err)
			}
		}
		return nil
	}
	return last
}

// edgeMessage takes the message out of an Apigee error body.
func edgeMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
		Error   string `json:"error"`
		Desc    string `json:"error_description"`
		Fault   struct {
			Faultstring string `json:"faultstring"`
		} `json:"fault"`
	}
	if json.Unmarshal(b, &e) == nil {
		for _, m := range []string{e.Message, e.Desc, e.Fault.Faultstring, e.Error} {
			if m != "" {
				return m
			}
		}
	}
	return short(b)
}

// IsStatus reports whether err is a management answer with status.
func IsStatus(err error, status int) bool {
	var me *MgmtError
	return errors.As(err, &me) && me.Status == status
}

// FormatURI fills the %s of an edgemicro URI template in order, as
// util.format does, but never appends values a template has no place for.
func FormatURI(tmpl string, values ...string) string {
	for _, v := range values {
		tmpl = strings.Replace(tmpl, "%s", v, 1)
	}
	return tmpl
}
