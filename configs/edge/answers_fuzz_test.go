package edge

import (
	"encoding/json"
	"testing"
)

// FuzzVerifyAPIKeyAnswer feeds verifyApiKey answers a hostile or broken
// Edge might send: reading one never panics, and a token is taken only
// from a JSON object whose token field is a non-empty string.
func FuzzVerifyAPIKeyAnswer(f *testing.F) {
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`{"token":3}`))
	f.Add([]byte(`{"error":"invalid_request"}`))
	f.Add([]byte(`[{"token":"x"}]`))
	f.Add([]byte(`{"token":"a.b.c"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := verifyAPIKeyToken(b)
		if err != nil {
			if tok != "" {
				t.Fatalf("an error with a token %q", tok)
			}
			return
		}
		var obj map[string]json.RawMessage
		if tok == "" || !json.Valid(b) || json.Unmarshal(b, &obj) != nil {
			t.Fatalf("token %q from %q, which is no JSON object with one", tok, b)
		}
	})
}
