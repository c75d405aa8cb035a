package fakeedge

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
)

// The stand-in management API: the calls `mgw configure`, `genkeys`,
// `revokekeys`, `cert`, `rotatekey`, `upgradekvm` and `upgradeauth` make,
// on the same server as the runtime endpoints, so that credentials made
// by genkeys work for bootstrap at once. API proxies are revisions
// imported from bundles and one revision deployed to the env, as Edge
// keeps them.

// MgmtCall is one management call as received.
type MgmtCall struct {
	Method, Path string
	// Query is the raw query; ContentType the request's Content-Type.
	Query, ContentType string
	// Auth is "basic <user>", "bearer <token>", "basic-key <key>" (an
	// edgemicro key and secret) or "" for none.
	Auth string
	Body string
}

type mgmtState struct {
	mu          sync.Mutex
	user        string
	password    string
	token       string
	calls       []MgmtCall
	kvm         map[string]string // nil: no microgateway KVM
	credentials map[string]string // key → secret registered by genkeys
	failNext    map[string]failure
	// revisions counts each API proxy's imported revisions (absent: no
	// such proxy); deployed is the revision deployed to the env.
	revisions map[string]int
	deployed  map[string]int
	// pending is how many polls of a new deployment answer it is not
	// deployed yet; deployError, when set, is the error the next
	// deployment ends in, as a message processor reports it.
	pending     int
	deployError string
	// failedDeploy is the revision of each API proxy whose deployment
	// ended in failedMessage.
	failedDeploy  map[string]int
	failedMessage string
}

// failure is an answer planned with FailNextMgmt.
type failure struct {
	status  int
	message string
}

// MgmtUser returns the management username, password and OAuth token
// the stand-in accepts.
func (s *Server) MgmtUser() (user, password, token string) {
	return s.mgmt.user, s.mgmt.password, s.mgmt.token
}

// MgmtCalls returns the management calls received, in order.
func (s *Server) MgmtCalls() []MgmtCall {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	return append([]MgmtCall(nil), s.mgmt.calls...)
}

// SetAuthDeployed says whether edgemicro-auth is deployed to the env:
// revision 3 of 3, or no such proxy in the org at all.
func (s *Server) SetAuthDeployed(d bool) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	if d {
		s.mgmt.revisions["edgemicro-auth"], s.mgmt.deployed["edgemicro-auth"] = 3, 3
	} else {
		delete(s.mgmt.revisions, "edgemicro-auth")
		delete(s.mgmt.deployed, "edgemicro-auth")
	}
}

// APIRevisions returns how many revisions of an API proxy were imported
// and which one is deployed to the env (0: none).
func (s *Server) APIRevisions(name string) (revisions, deployed int) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	return s.mgmt.revisions[name], s.mgmt.deployed[name]
}

// SetDeployError makes the next deployment accepted, then reported in
// state error with message as a message processor's error.
func (s *Server) SetDeployError(message string) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	s.mgmt.deployError = message
}

// SetDeployPending makes the next deployment answer n polls with a state
// other than deployed before it is.
func (s *Server) SetDeployPending(n int) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	s.mgmt.pending = n
}

// KVM returns the microgateway KVM's entries, or nil when there is none.
func (s *Server) KVM() map[string]string {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	if s.mgmt.kvm == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.mgmt.kvm {
		out[k] = v
	}
	return out
}

// SetKVM replaces the microgateway KVM's entries (nil: no KVM).
func (s *Server) SetKVM(entries map[string]string) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	s.mgmt.kvm = entries
}

// FailNextMgmt makes the next call of method and path pattern (as
// registered, e.g. "GET /v1/o/{org}/apis/edgemicro-auth/deployments")
// answer status with an Apigee-style error.
func (s *Server) FailNextMgmt(route string, status int) {
	msgs := map[int]string{401: "Invalid credentials", 404: "Resource not found", 409: "Resource already exists"}
	s.FailNextMgmtWith(route, status, msgs[status])
}

// FailNextMgmtWith is FailNextMgmt with Edge's message.
func (s *Server) FailNextMgmtWith(route string, status int, message string) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	if s.mgmt.failNext == nil {
		s.mgmt.failNext = map[string]failure{}
	}
	s.mgmt.failNext[route] = failure{status, message}
}

func (s *Server) validCredential(key, secret string) bool {
	if key == s.Key && secret == s.Secret {
		return true
	}
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	return s.mgmt.credentials[key] == secret && secret != ""
}

func apigeeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// handleMgmt wraps a management handler: it records the call, checks the
// management credentials (or, with keyAuth, an edgemicro key and secret)
// and answers a failure planned with FailNextMgmt.
func (s *Server) handleMgmt(route string, keyAuth bool, h func(w http.ResponseWriter, r *http.Request, body []byte)) (string, http.HandlerFunc) {
	return route, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		auth := ""
		user, pass, basic := r.BasicAuth()
		switch {
		case basic && keyAuth:
			auth = "basic-key " + user
		case basic:
			auth = "basic " + user
		case strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
			auth = "bearer " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		s.mgmt.mu.Lock()
		s.mgmt.calls = append(s.mgmt.calls, MgmtCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Auth: auth, Body: string(body)})
		fail, planned := s.mgmt.failNext[route]
		delete(s.mgmt.failNext, route)
		s.mgmt.mu.Unlock()
		if planned {
			apigeeError(w, fail.status, "fake.failure", fail.message)
			return
		}
		ok := false
		switch {
		case keyAuth:
			ok = basic && s.validCredential(user, pass)
		case basic:
			ok = user == s.mgmt.user && pass == s.mgmt.password
		default:
			ok = auth == "bearer "+s.mgmt.token
		}
		if !ok {
			apigeeError(w, http.StatusUnauthorized, "keymanagement.service.invalid_credentials", "Invalid credentials")
			return
		}
		if r.PathValue("org") != "" && r.PathValue("org") != s.Org {
			apigeeError(w, http.StatusNotFound, "organizations.OrganizationDoesNotExist", "Organization "+r.PathValue("org")+" does not exist")
			return
		}
		h(w, r, body)
	}
}

func (s *Server) mgmtRoutes(mux *http.ServeMux) {
	kvmPath := "/v1/organizations/{org}/environments/{env}/keyvaluemaps"
	mux.HandleFunc(s.handleMgmt("GET /v1/o/{org}/apis/edgemicro-auth/deployments", false, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		s.mgmt.mu.Lock()
		revisions, deployed := s.mgmt.revisions["edgemicro-auth"], s.mgmt.deployed["edgemicro-auth"]
		s.mgmt.mu.Unlock()
		if revisions == 0 {
			apigeeError(w, http.StatusNotFound, "messaging.config.beans.ApplicationDoesNotExist", "APIProxy named edgemicro-auth does not exist in organization "+s.Org)
			return
		}
		envs := []map[string]any{}
		if deployed > 0 {
			envs = append(envs, map[string]any{"name": s.Env, "revision": []map[string]string{{"name": strconv.Itoa(deployed), "state": "deployed"}}})
		}
		writeJSON(w, map[string]any{"environment": envs, "name": "edgemicro-auth", "organization": s.Org})
	}))
	mux.HandleFunc(s.handleMgmt("POST /v1/o/{org}/apis", false, s.importProxy))
	deployPath := "/v1/o/{org}/e/{env}/apis/{api}/revisions/{rev}/deployments"
	mux.HandleFunc(s.handleMgmt("POST "+deployPath, false, s.deployRevision))
	mux.HandleFunc(s.handleMgmt("GET "+deployPath, false, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		api, rev, ok := s.revision(w, r)
		if !ok {
			return
		}
		s.mgmt.mu.Lock()
		state, failed := "undeployed", s.mgmt.failedDeploy[api] == rev
		if s.mgmt.deployed[api] == rev {
			state = "deployed"
			if s.mgmt.pending > 0 {
				s.mgmt.pending--
				state = "pending"
			}
		}
		msg := s.mgmt.failedMessage
		s.mgmt.mu.Unlock()
		answer := s.deploymentState(api, rev, state)
		if failed {
			answer["state"] = "error"
			answer["server"] = []map[string]any{{"status": "error", "type": []string{"message-processor"}, "error": msg}}
		}
		writeJSON(w, answer)
	}))
	mux.HandleFunc(s.handleMgmt("POST "+kvmPath, false, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var kvm struct {
			Name  string `json:"name"`
			Entry []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"entry"`
		}
		if json.Unmarshal(body, &kvm) != nil || kvm.Name != "microgateway" {
			apigeeError(w, http.StatusBadRequest, "keymanagement.service.bad_request", "bad KVM")
			return
		}
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if s.mgmt.kvm != nil {
			apigeeError(w, http.StatusConflict, "keymanagement.service.kvm_already_exists", "KeyValueMap microgateway already exists")
			return
		}
		s.mgmt.kvm = map[string]string{}
		for _, e := range kvm.Entry {
			s.mgmt.kvm[e.Name] = e.Value
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	}))
	mux.HandleFunc(s.handleMgmt("GET "+kvmPath+"/microgateway", false, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if s.noKVM(w) {
			return
		}
		entries := []map[string]string{}
		for k, v := range s.mgmt.kvm {
			entries = append(entries, map[string]string{"name": k, "value": v})
		}
		writeJSON(w, map[string]any{"name": "microgateway", "encrypted": true, "entry": entries})
	}))
	mux.HandleFunc(s.handleMgmt("PUT "+kvmPath+"/microgateway", false, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var kvm struct {
			Entry []struct{ Name, Value string } `json:"entry"`
		}
		_ = json.Unmarshal(body, &kvm)
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if s.noKVM(w) {
			return
		}
		for _, e := range kvm.Entry {
			s.mgmt.kvm[e.Name] = e.Value
		}
		_, _ = w.Write(body)
	}))
	mux.HandleFunc(s.handleMgmt("DELETE "+kvmPath+"/microgateway", false, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if s.noKVM(w) {
			return
		}
		s.mgmt.kvm = nil
		writeJSON(w, map[string]string{"name": "microgateway"})
	}))
	mux.HandleFunc(s.handleMgmt("GET "+kvmPath+"/microgateway/entries/{entry}", false, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		v, ok := s.mgmt.kvm[r.PathValue("entry")]
		if !ok {
			apigeeError(w, http.StatusNotFound, "keymanagement.service.entry_does_not_exist", "entry does not exist")
			return
		}
		writeJSON(w, map[string]string{"name": r.PathValue("entry"), "value": v})
	}))
	credPath := "/edgemicro/credential/organization/{org}/environment/{env}"
	mux.HandleFunc(s.handleMgmt("POST "+credPath, false, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var c struct{ Key, Secret string }
		if json.Unmarshal(body, &c) != nil || c.Key == "" || c.Secret == "" {
			apigeeError(w, http.StatusBadRequest, "bad_request", "key and secret required")
			return
		}
		s.mgmt.mu.Lock()
		if s.mgmt.credentials == nil {
			s.mgmt.credentials = map[string]string{}
		}
		s.mgmt.credentials[c.Key] = c.Secret
		s.mgmt.mu.Unlock()
		writeJSON(w, map[string]string{"key": c.Key})
	}))
	mux.HandleFunc(s.handleMgmt("DELETE "+credPath, false, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var c struct{ Key string }
		_ = json.Unmarshal(body, &c)
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if _, ok := s.mgmt.credentials[c.Key]; !ok {
			apigeeError(w, http.StatusNotFound, "credential_not_found", "no such key")
			return
		}
		delete(s.mgmt.credentials, c.Key)
		writeJSON(w, map[string]string{"key": c.Key, "revoked": "true"})
	}))
	mux.HandleFunc(s.handleMgmt("GET /edgemicro/region/organization/{org}/environment/{env}", true, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, map[string]string{"region": "us-east-1", "host": r.Host})
	}))
	mux.HandleFunc(s.handleMgmt("POST /edgemicro-auth/rotateKey", true, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		var rk struct {
			PrivateKey string `json:"private_key"`
			PublicKey  string `json:"public_key"`
			Kid        string `json:"kid"`
		}
		if json.Unmarshal(body, &rk) != nil || rk.PrivateKey == "" || rk.PublicKey == "" || rk.Kid == "" {
			apigeeError(w, http.StatusBadRequest, "bad_request", "private_key, public_key and kid required")
			return
		}
		s.mgmt.mu.Lock()
		defer s.mgmt.mu.Unlock()
		if s.noKVM(w) {
			return
		}
		// The old key stays for the tokens it signed.
		s.mgmt.kvm["private_key_old"], s.mgmt.kvm["public_key_old"], s.mgmt.kvm["private_key_kid_old"] =
			s.mgmt.kvm["private_key"], s.mgmt.kvm["public_key"], s.mgmt.kvm["private_key_kid"]
		s.mgmt.kvm["private_key"], s.mgmt.kvm["public_key"], s.mgmt.kvm["private_key_kid"] = rk.PrivateKey, rk.PublicKey, rk.Kid
		writeJSON(w, map[string]string{"kid": rk.Kid})
	}))
}

// noKVM answers Apigee's 404 when the microgateway KVM does not exist, and
// reports whether it did. Called with s.mgmt.mu held.
func (s *Server) noKVM(w http.ResponseWriter) bool {
	if s.mgmt.kvm != nil {
		return false
	}
	apigeeError(w, http.StatusNotFound, "keymanagement.service.kvm_does_not_exist", "KeyValueMap microgateway does not exist")
	return true
}

// importProxy is Edge's import of a proxy bundle as the next revision:
// ?action=import&name=NAME, the zip as application/octet-stream.
func (s *Server) importProxy(w http.ResponseWriter, r *http.Request, body []byte) {
	q := r.URL.Query()
	name := q.Get("name")
	if q.Get("action") != "import" || name == "" {
		apigeeError(w, http.StatusBadRequest, "messaging.config.beans.InvalidAction", "action=import and a name are required")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" && !strings.HasPrefix(ct, "multipart/form-data") {
		apigeeError(w, http.StatusUnsupportedMediaType, "messaging.config.beans.UnsupportedMediaType", "Content-Type "+ct+" is not supported")
		return
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		apigeeError(w, http.StatusBadRequest, "messaging.config.beans.ImportFailed", "Bundle is invalid. Unable to read the zip: "+err.Error())
		return
	}
	root, endpoint := false, false
	for _, f := range zr.File {
		dir, file := path.Split(f.Name)
		root = root || dir == "apiproxy/" && strings.HasSuffix(file, ".xml")
		endpoint = endpoint || dir == "apiproxy/proxies/" && strings.HasSuffix(file, ".xml")
	}
	if !root || !endpoint {
		apigeeError(w, http.StatusBadRequest, "messaging.config.beans.ImportFailed", "Bundle is invalid. No apiproxy/ descriptor or proxy endpoint found")
		return
	}
	s.mgmt.mu.Lock()
	s.mgmt.revisions[name]++
	rev := s.mgmt.revisions[name]
	s.mgmt.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"name": name, "revision": strconv.Itoa(rev), "type": "Application",
		"contextInfo": "Revision " + strconv.Itoa(rev) + " of application " + name + ", in organization " + s.Org,
	})
}

// deployRevision deploys a revision to the env in place of the one
// deployed, as a form action=deploy&override=true asks.
func (s *Server) deployRevision(w http.ResponseWriter, r *http.Request, body []byte) {
	api, rev, ok := s.revision(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || form.Get("action") != "deploy" {
		apigeeError(w, http.StatusBadRequest, "messaging.config.beans.InvalidAction", "a form with action=deploy is required")
		return
	}
	s.mgmt.mu.Lock()
	if cur := s.mgmt.deployed[api]; cur != 0 && cur != rev && form.Get("override") != "true" {
		s.mgmt.mu.Unlock()
		apigeeError(w, http.StatusBadRequest, "distribution.ApplicationAlreadyDeployed",
			"Deployment of revision "+strconv.Itoa(rev)+" failed: revision "+strconv.Itoa(cur)+" is deployed; use override")
		return
	}
	state := "deployed"
	if s.mgmt.deployError != "" {
		// Accepted, then failed on the message processors: the revision
		// deployed before stays.
		if s.mgmt.failedDeploy == nil {
			s.mgmt.failedDeploy = map[string]int{}
		}
		s.mgmt.failedDeploy[api], s.mgmt.failedMessage, s.mgmt.deployError = rev, s.mgmt.deployError, ""
		state = "pending"
	} else {
		s.mgmt.deployed[api] = rev
		if s.mgmt.pending > 0 {
			state = "pending"
		}
	}
	s.mgmt.mu.Unlock()
	writeJSON(w, s.deploymentState(api, rev, state))
}

// revision reads {api} and {rev} of a deployment path and answers 404
// when there is no such revision.
func (s *Server) revision(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	api := r.PathValue("api")
	rev, err := strconv.Atoi(r.PathValue("rev"))
	if r.PathValue("env") != s.Env {
		apigeeError(w, http.StatusNotFound, "messaging.config.beans.EnvironmentDoesNotExist", "Environment "+r.PathValue("env")+" does not exist")
		return "", 0, false
	}
	s.mgmt.mu.Lock()
	n := s.mgmt.revisions[api]
	s.mgmt.mu.Unlock()
	if err != nil || rev < 1 || rev > n {
		apigeeError(w, http.StatusNotFound, "messaging.config.beans.RevisionDoesNotExist", "API proxy "+api+" revision "+r.PathValue("rev")+" does not exist")
		return "", 0, false
	}
	return api, rev, true
}

func (s *Server) deploymentState(api string, rev int, state string) map[string]any {
	return map[string]any{"aPIProxy": api, "environment": s.Env, "name": strconv.Itoa(rev), "organization": s.Org,
		"revision": strconv.Itoa(rev), "state": state}
}
