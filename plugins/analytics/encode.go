package analytics

import (
	"strconv"
	"unicode/utf8"
)

// appendJSON appends r as a JSON object, with the field names and
// omissions of its struct tags. It is written out by hand because it runs
// once per request: encoding/json's reflection costs more than the rest of
// the plugin.
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, '{')
	b = num(b, "client_received_start_timestamp", r.ClientReceivedStart, false)
	b = num(b, "client_received_end_timestamp", r.ClientReceivedEnd, false)
	b = str(b, "recordType", r.RecordType, false)
	b = str(b, "apiproxy", r.APIProxy, false)
	b = str(b, "request_uri", r.RequestURI, false)
	b = str(b, "request_path", r.RequestPath, false)
	b = str(b, "request_verb", r.RequestVerb, false)
	b = str(b, "client_ip", r.ClientIP, false)
	b = str(b, "useragent", r.UserAgent, false)
	b = str(b, "apiproxy_revision", r.APIProxyRevision, false)
	b = num(b, "response_status_code", int64(r.ResponseStatusCode), false)
	b = num(b, "client_sent_start_timestamp", r.ClientSentStart, false)
	b = num(b, "client_sent_end_timestamp", r.ClientSentEnd, false)
	b = str(b, "developer_email", r.DeveloperEmail, true)
	b = str(b, "developer_app", r.DeveloperApp, true)
	b = str(b, "access_token", r.AccessToken, true)
	b = str(b, "client_id", r.ClientID, true)
	b = str(b, "api_product", r.APIProduct, true)
	b = num(b, "target_sent_start_timestamp", r.TargetSentStart, true)
	b = num(b, "target_received_start_timestamp", r.TargetReceivedStart, true)
	b = num(b, "target_received_end_timestamp", r.TargetReceivedEnd, true)
	b = str(b, "target_basepath", r.TargetBasepath, true)
	b = str(b, "target_host", r.TargetHost, true)
	b = str(b, "target_url", r.TargetURL, true)
	b = num(b, "target_response_code", int64(r.TargetResponseCode), true)
	b = str(b, "gateway_flow_id", r.GatewayFlowID, true)
	b[len(b)-1] = '}' // the last comma
	return b
}

func key(b []byte, k string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func num(b []byte, k string, v int64, omitZero bool) []byte {
	if omitZero && v == 0 {
		return b
	}
	b = strconv.AppendInt(key(b, k), v, 10)
	return append(b, ',')
}

func str(b []byte, k, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = appendString(key(b, k), v)
	return append(b, ',')
}

const hex = "0123456789abcdef"

// plainJSON marks the bytes appendString copies as they are: printable
// ASCII other than the quote, the backslash and the three it escapes for
// HTML safety.
var plainJSON = func() (t [256]bool) {
	for c := ' '; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// appendString appends s as a JSON string, escaping as encoding/json does
// (invalid UTF-8 becomes U+FFFD; <, > and & are escaped for HTML safety).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Most of a value needs no escape: append each run of such
		// bytes at once rather than byte by byte.
		j := i
		for j < len(s) && plainJSON[s[j]] {
			j++
		}
		if j > i {
			b = append(b, s[i:j]...)
			if i = j; i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
