package oauth

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
)

// FuzzJWKS feeds JWKS documents a hostile or broken Edge might serve:
// parsing never panics, every key it keeps has a kid and a positive
// modulus, and the keys written back as a JWKS parse to the same keys.
func FuzzJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k1","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e1","crv":"P-256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"big-e","n":"AQ","e":"AQIDBAU"}]}`))
	f.Add([]byte(`{"keys":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseJWKS(b)
		if err != nil {
			return
		}
		type jwk struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		}
		var again struct {
			Keys []jwk `json:"keys"`
		}
		for kid, k := range keys {
			if kid == "" || k == nil || k.N == nil || k.N.Sign() <= 0 || k.E < 0 {
				t.Fatalf("key %q: %+v", kid, k)
			}
			again.Keys = append(again.Keys, jwk{"RSA", kid,
				base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		}
		doc, _ := json.Marshal(again)
		back, err := ParseJWKS(doc)
		if err != nil || len(back) != len(keys) {
			t.Fatalf("the keys written back: %d keys, %v; want %d", len(back), err, len(keys))
		}
		for kid, k := range keys {
			if b := back[kid]; b == nil || b.N.Cmp(k.N) != 0 || b.E != k.E {
				t.Fatalf("key %q changed on the way back", kid)
			}
		}
	})
}
