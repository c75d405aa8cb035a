package configs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SSL is [edgemicro.ssl]: TLS for clients of the gateway (northbound).
type SSL struct {
	// Cert and Key are PEM files of the server certificate (chain first).
	Cert string `toml:"cert" json:"cert"`
	Key  string `toml:"key" json:"key"`
	// CA is a PEM file of the CAs that sign client certificates (mTLS).
	CA string `toml:"ca" json:"ca,omitempty"`
	// RequestCert asks clients for a certificate; RejectUnauthorized
	// (default true) then refuses those without a valid one.
	RequestCert        bool  `toml:"requestCert" json:"requestCert,omitempty"`
	RejectUnauthorized *bool `toml:"rejectUnauthorized" json:"rejectUnauthorized,omitempty"`
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string `toml:"min_version" json:"min_version,omitempty"`
}

// Target is one [[targets]] entry: TLS settings for calls to a target
// host (southbound). An entry without host applies to every host; the
// last entry that matches wins, as in edgemicro.
type Target struct {
	Host string    `toml:"host" json:"host,omitempty"`
	SSL  TargetSSL `toml:"ssl" json:"ssl"`
}

// TargetSSL is [targets.ssl].
type TargetSSL struct {
	Client TLSClient `toml:"client" json:"client"`
}

// TLSClient is a TLS client configuration: a client certificate, the CAs
// to trust, and whether to check the server at all.
type TLSClient struct {
	Cert               string `toml:"cert" json:"cert,omitempty"`
	Key                string `toml:"key" json:"key,omitempty"`
	CA                 string `toml:"ca" json:"ca,omitempty"`
	RejectUnauthorized *bool  `toml:"rejectUnauthorized" json:"rejectUnauthorized,omitempty"`
	Servername         string `toml:"servername" json:"servername,omitempty"`
}

// TLSMaterial is the content of the files named by [edgemicro.ssl] and
// [[targets]], read by the master so that workers never read files.
type TLSMaterial struct {
	ServerCert string `json:"server_cert,omitempty"`
	ServerKey  string `json:"server_key,omitempty"`
	ClientCA   string `json:"client_ca,omitempty"`
	// Targets holds, in order, the material of each [[targets]] entry.
	Targets []TargetMaterial `json:"targets,omitempty"`
}

// TargetMaterial is one [[targets]] entry's files.
type TargetMaterial struct {
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	CA   string `json:"ca,omitempty"`
}

// LoadTLS reads the TLS files of s's configuration, relative to the
// config file's directory, and checks that they make valid certificates.
func LoadTLS(s *Snapshot) error {
	base := "."
	if s.Source != DefaultSource && s.Source != "" {
		base = filepath.Dir(s.Source)
	}
	read := func(key, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, ExplainAccess(err))
		}
		return string(b), nil
	}
	var errs []error
	m := TLSMaterial{}
	c := &s.Config
	if ssl := c.Edgemicro.SSL; ssl != nil {
		var err error
		if ssl.Cert == "" || ssl.Key == "" {
			errs = append(errs, errors.New("edgemicro.ssl: cert and key are both required"))
		}
		if m.ServerCert, err = read("edgemicro.ssl.cert", ssl.Cert); err != nil {
			errs = append(errs, err)
		}
		if m.ServerKey, err = read("edgemicro.ssl.key", ssl.Key); err != nil {
			errs = append(errs, err)
		}
		if m.ClientCA, err = read("edgemicro.ssl.ca", ssl.CA); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			if _, err := tls.X509KeyPair([]byte(m.ServerCert), []byte(m.ServerKey)); err != nil {
				errs = append(errs, fmt.Errorf("edgemicro.ssl: %w", err))
			}
			if m.ClientCA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(m.ClientCA)) {
				errs = append(errs, errors.New("edgemicro.ssl.ca: no certificate in it"))
			}
		}
		switch ssl.MinVersion {
		case "", "1.2", "1.3":
		default:
			errs = append(errs, fmt.Errorf("edgemicro.ssl.min_version %q is not 1.2 or 1.3", ssl.MinVersion))
		}
	}
	for i, t := range c.Targets {
		where := fmt.Sprintf("targets[%d]", i)
		var tm TargetMaterial
		var err error
		cl := t.SSL.Client
		if tm.Cert, err = read(where+".ssl.client.cert", cl.Cert); err != nil {
			errs = append(errs, err)
		}
		if tm.Key, err = read(where+".ssl.client.key", cl.Key); err != nil {
			errs = append(errs, err)
		}
		if tm.CA, err = read(where+".ssl.client.ca", cl.CA); err != nil {
			errs = append(errs, err)
		}
		if (tm.Cert == "") != (tm.Key == "") {
			errs = append(errs, fmt.Errorf("%s.ssl.client: cert and key go together", where))
		} else if tm.Cert != "" {
			if _, err := tls.X509KeyPair([]byte(tm.Cert), []byte(tm.Key)); err != nil {
				errs = append(errs, fmt.Errorf("%s.ssl.client: %w", where, err))
			}
		}
		m.Targets = append(m.Targets, tm)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.TLS = m
	sum := sha256.Sum256([]byte(s.Checksum + m.ServerCert + m.ServerKey + m.ClientCA + fmt.Sprint(m.Targets)))
	s.Checksum = hex.EncodeToString(sum[:])
	return nil
}

// TargetTLS returns the TLS client configuration for host (a URL host,
// port included or not) from [[targets]]: the last entry whose host
// matches, or that has none. Nil means Go's defaults.
func (s *Snapshot) TargetTLS(host string) (*tls.Config, error) {
	name := host
	if h, _, found := strings.Cut(host, ":"); found {
		name = h
	}
	idx := -1
	for i, t := range s.Config.Targets {
		if t.Host == "" || strings.EqualFold(t.Host, name) || strings.EqualFold(t.Host, host) {
			idx = i
		}
	}
	if idx < 0 || idx >= len(s.TLS.Targets) {
		return nil, nil
	}
	cl, tm := s.Config.Targets[idx].SSL.Client, s.TLS.Targets[idx]
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cl.Servername}
	if cl.RejectUnauthorized != nil && !*cl.RejectUnauthorized {
		tc.InsecureSkipVerify = true //nolint:gosec // the operator's explicit rejectUnauthorized = false
	}
	if tm.CA != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(tm.CA))
		tc.RootCAs = pool
	}
	if tm.Cert != "" {
		cert, err := tls.X509KeyPair([]byte(tm.Cert), []byte(tm.Key))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ServerTLS returns the northbound TLS configuration, or nil without
// [edgemicro.ssl].
func (s *Snapshot) ServerTLS() (*tls.Config, error) {
	ssl := s.Config.Edgemicro.SSL
	if ssl == nil {
		return nil, nil
	}
	cert, err := tls.X509KeyPair([]byte(s.TLS.ServerCert), []byte(s.TLS.ServerKey))
	if err != nil {
		return nil, fmt.Errorf("edgemicro.ssl: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if ssl.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	if s.TLS.ClientCA != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(s.TLS.ClientCA))
		tc.ClientCAs = pool
	}
	if ssl.RequestCert {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		if ssl.RejectUnauthorized != nil && !*ssl.RejectUnauthorized {
			tc.ClientAuth = tls.RequestClientCert
		}
	}
	return tc, nil
}
