package fakeedge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// The stand-in management API: the calls `mgw configure`, `genkeys`,
// `revokekeys`, `cert`, `rotatekey`, `upgradekvm` and `upgradeauth` make,
// on the same server as the runtime endpoints, so that credentials made
// by genkeys work for bootstrap at once.

// MgmtCall is one management call as received.
type MgmtCall struct {
	Method, Path string
	// Auth is "basic <user>", "bearer <token>", "basic-key <key>" (an
	// edgemicro key and secret) or "" for none.
	Auth string
	Body string
}

type mgmtState struct {
	mu           sync.Mutex
	user         string
	password     string
	token        string
	authDeployed bool
	calls        []MgmtCall
	kvm          map[string]string // nil: no microgateway KVM
	credentials  map[string]string // key → secret registered by genkeys
	failNext     map[string]int    // route → status to answer once
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

// SetAuthDeployed says whether edgemicro-auth is deployed to the env.
func (s *Server) SetAuthDeployed(d bool) {
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	s.mgmt.authDeployed = d
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
	s.mgmt.mu.Lock()
	defer s.mgmt.mu.Unlock()
	if s.mgmt.failNext == nil {
		s.mgmt.failNext = map[string]int{}
	}
	s.mgmt.failNext[route] = status
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
		s.mgmt.calls = append(s.mgmt.calls, MgmtCall{Method: r.Method, Path: r.URL.Path, Auth: auth, Body: string(body)})
		fail := s.mgmt.failNext[route]
		delete(s.mgmt.failNext, route)
		s.mgmt.mu.Unlock()
		if fail != 0 {
			msgs := map[int]string{401: "Invalid credentials", 404: "Resource not found", 409: "Resource already exists"}
			apigeeError(w, fail, "fake.failure", msgs[fail])
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
		deployed := s.mgmt.authDeployed
		s.mgmt.mu.Unlock()
		envs := []map[string]any{}
		if deployed {
			envs = append(envs, map[string]any{"name": s.Env, "revision": []map[string]string{{"name": "3", "state": "deployed"}}})
		}
		writeJSON(w, map[string]any{"environment": envs, "name": "edgemicro-auth", "organization": s.Org})
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
